"""The whole suite on a GPU (issue #13): each service's process environment, and, where a GPU is, the
device each model-running service really gets. Speech's CTranslate2 is built for CUDA 12 while
onnxruntime-gpu is built for CUDA 13, so only the speech process gets the CUDA 12 libraries' folders."""

from __future__ import annotations

import shutil
import sys

import pytest

from npcvoice import service_env
from npcvoice.devtools import gpu_check
from npcvoice.launcher import Launcher
from npcvoice.service_env import cuda12_library_dirs, service_environment

CUDA12 = ["/site/nvidia/cublas/lib", "/site/nvidia/cudnn/lib"]


def test_only_the_speech_process_gets_the_cuda12_libraries_first_on_its_path():
    base = {"LD_LIBRARY_PATH": "/usr/local/cuda-13/lib64", "HOME": "/home/npc"}
    speech = service_environment("speech", base, CUDA12)
    assert speech["LD_LIBRARY_PATH"].split(":") == [*CUDA12, "/usr/local/cuda-13/lib64"]
    assert speech["HOME"] == "/home/npc"
    for other in ("dialogue", "voice", "face", "conversation"):
        assert service_environment(other, base, CUDA12) == base
    # a CPU install has no CUDA 12 packages: nothing changes, and no empty entry is added to the path
    assert service_environment("speech", base, []) == base
    assert service_environment("speech", {}, CUDA12)["LD_LIBRARY_PATH"] == ":".join(CUDA12)


def test_the_cuda12_folders_are_found_in_the_installed_pip_packages(tmp_path, monkeypatch):
    for package in ("cublas", "cudnn", "cuda_runtime"):
        (tmp_path / "nvidia" / package / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "cudnn" / "__init__.py").write_text("")
    for name in [m for m in sys.modules if m == "nvidia" or m.startswith("nvidia.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = cuda12_library_dirs()
    assert [str(tmp_path / "nvidia" / p / "lib") for p in ("cublas", "cudnn")] == [
        d for d in found if d.startswith(str(tmp_path))
    ]


def test_the_launcher_starts_each_service_with_its_own_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(service_env, "cuda12_library_dirs", lambda: CUDA12)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/cuda13")
    launcher = Launcher(["speech", "dialogue", "voice"], data_dir=tmp_path)
    paths = {s.name: (s.env or {}).get("LD_LIBRARY_PATH") for s in launcher.services}
    assert paths == {"speech": ":".join([*CUDA12, "/opt/cuda13"]), "dialogue": "/opt/cuda13",
                     "voice": "/opt/cuda13"}  # fmt: skip


def _gpu() -> str:
    """Why the GPU test cannot run here, or "" when it can."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU here (nvidia-smi is not on the PATH)"
    return ""


@pytest.mark.skipif(bool(_gpu()), reason=_gpu() or "a GPU is here")
@pytest.mark.parametrize("service", ["speech", "dialogue", "voice"])
def test_on_a_gpu_each_service_gets_cuda_in_its_own_environment(service):
    on_cuda, details = gpu_check.probe(service)
    assert on_cuda, f"{service} would run on the CPU: {details} (./dev install-gpu)"
