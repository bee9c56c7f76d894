"""Which onnxruntime build and execution providers this process really has.

piper-tts depends on the CPU onnxruntime; installed next to onnxruntime-gpu, the CPU build can silently win
and CUDA disappears. Every service logs what it got so that an operator sees it at start-up.
"""

from __future__ import annotations

import logging

log = logging.getLogger("npcvoice.providers")


def available_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def choose_providers(device: str) -> list[str]:
    """Providers for a session on ``device`` ("auto", "cpu" or "cuda"), best first.

    "cuda" insists on CUDA and raises if this onnxruntime build lacks it; "auto" takes CUDA when present.
    """
    available = available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise RuntimeError(
            "device 'cuda' was asked for, but this onnxruntime build has only "
            f"{available}: install the GPU build alone (./dev install-gpu)"
        )
    return ["CPUExecutionProvider"]


def log_providers(service: str) -> None:
    try:
        import onnxruntime
    except ImportError:
        return
    log.info(
        "%s: onnxruntime %s, available execution providers %s",
        service,
        onnxruntime.__version__,
        available_providers(),
        extra={"onnxruntime_providers": available_providers()},
    )
