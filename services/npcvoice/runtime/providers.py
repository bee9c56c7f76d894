"""Which onnxruntime build and execution providers this process really has.

piper-tts depends on the CPU onnxruntime; installed next to onnxruntime-gpu, the CPU build can silently win
and CUDA disappears. Every service logs what it got so that an operator sees it at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("npcvoice.providers")

Device = Literal["cpu", "cuda"]


def available_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def pick_device(requested: str, has_cuda: Callable[[], bool], lacking_cuda: str) -> Device:
    """Where a model configured for ``requested`` ("auto", "cpu" or "cuda") runs.

    "auto" takes CUDA when ``has_cuda()``; "cuda" insists on it and raises, with ``lacking_cuda`` saying
    what this build has instead and what to install. ``has_cuda`` is only asked when the answer matters:
    a CUDA build may load its CUDA libraries to answer.
    """
    if requested == "cpu":
        return "cpu"
    if has_cuda():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError(f"device 'cuda' was asked for, but {lacking_cuda} (./dev install-gpu)")
    return "cpu"


def choose_providers(device: str) -> list[str]:
    """Providers for a session on ``device`` ("auto", "cpu" or "cuda"), best first."""
    available = available_providers()
    lacking = f"this onnxruntime build has only {available}: install the GPU build alone"
    if pick_device(device, lambda: "CUDAExecutionProvider" in available, lacking) == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
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
