"""Recordings of real people with their reference transcripts (tests/data/realspeech/manifest.json), for
accuracy tests and benchmarks: synthetic speech is too easy to be the only evidence."""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

FOLDER = Path(__file__).resolve().parent.parent / "data" / "realspeech"
RATE = 16000


@dataclass(frozen=True)
class Clip:
    name: str
    kind: str
    reference: str
    audio: np.ndarray  # float32, 16 kHz, mono


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2), path
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32) / 32768


@cache
def clips() -> tuple[Clip, ...]:
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    return tuple(
        Clip(
            entry["file"].removesuffix(".wav"),
            entry["kind"],
            entry["reference"],
            read_wav(FOLDER / entry["file"]),
        )
        for entry in manifest["clips"]
    )


def clip(name: str) -> Clip:
    return next(c for c in clips() if c.name == name)
