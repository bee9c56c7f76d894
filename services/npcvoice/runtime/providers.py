"""Which onnxruntime build and execution providers this process really has.

piper-tts depends on the CPU onnxruntime; installed next to onnxruntime-gpu, the CPU build can silently win
and CUDA disappears. Every service logs what it got so that an operator sees it at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

log = logging.getLogger("npcvoice.providers")

# onnxruntime session entries that stop its threads spin-waiting between runs
NO_SPINNING = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}


class CpuThreadOptions(BaseModel):
    """onnxruntime's threads on a CPU: options of each service whose model runs in onnxruntime."""

    threads: int = Field(
        0, ge=0, description="CPU threads each model run uses (0: onnxruntime's default, one per core)."
    )
    spinning: bool = Field(
        False,
        description="Whether onnxruntime's threads spin-wait between runs (on a CPU): spinning answers the "
        "next run a little sooner but keeps the cores busy meanwhile, away from the other services' "
        "processes on the same machine (off: the same speed for about 20 % less CPU per turn, "
        "bench/capacity.py).",
    )


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
