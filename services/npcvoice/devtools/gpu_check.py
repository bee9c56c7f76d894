"""Which device each model-running service gets here, each asked in its own process with the environment
`npcvoice up` gives that service (``service_env``): one line per service, exit status 1 unless all three
can run on CUDA. `./dev install-gpu` ends with it; tests/test_gpu_env.py runs it where a GPU is.

    python -m npcvoice.devtools.gpu_check
"""

from __future__ import annotations

import subprocess
import sys

from npcvoice.service_env import service_environment

# What each service's own library reports, printed as "<on CUDA: 0 or 1> <details>".
PROBES = {
    "speech": "import ctranslate2 as c; n = c.get_cuda_device_count(); "
    "print(int(n > 0), f'CTranslate2 {c.__version__}, {n} CUDA device(s)')",
    "dialogue": "import onnxruntime_genai as og; "
    "print(int(og.is_cuda_available()), f'onnxruntime-genai {og.__version__}')",
    "voice": "import onnxruntime as ort; p = ort.get_available_providers(); "
    "print(int('CUDAExecutionProvider' in p), f'onnxruntime {ort.__version__} {p}')",
}


def probe(service: str) -> tuple[bool, str]:
    """Whether ``service`` would run on CUDA here, and what its library said (or why it failed)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBES[service]],
            env=service_environment(service),
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        return False, "the check did not answer in 300 s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return False, lines[-1] if lines else f"exit status {done.returncode}"
    flag, _, details = done.stdout.strip().partition(" ")
    return flag == "1", details


def main() -> int:
    verdicts = {service: probe(service) for service in PROBES}
    for service, (cuda, details) in verdicts.items():
        print(f"{service:9} {'CUDA' if cuda else 'CPU only':9} {details}")
    return 0 if all(cuda for cuda, _ in verdicts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
