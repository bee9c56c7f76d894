"""Recordings of real people with their reference transcripts (tests/data/realspeech/manifest.json), for
accuracy tests and benchmarks: synthetic speech is too easy to be the only evidence."""

from __future__ import annotations

import json
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

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


def spoken_lines(finals: Iterable[Any]) -> list[str]:
    """What the player said, line by line, from a stream's final transcripts (StreamingTranscript): a
    final that continues the one before (its ``line_text`` set) replaces that line with the whole."""
    said: list[str] = []
    for final in finals:
        if final.line_text:
            said[-1:] = [final.line_text]
        elif final.text:
            said.append(final.text)
    return said
