"""Audio helpers shared by the services: sample formats, resampling and validation of client audio."""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr

from npcvoice.runtime.errors import InvalidArgument

Encoding = Literal["pcm16", "float32"]
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000
_PCM16_SCALE = 32767.0


def check_sample_rate(rate: int, field: str) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidArgument(
            field, f"must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {rate}"
        )


def encode(samples: np.ndarray, encoding: Encoding) -> bytes:
    """Mono float samples in [-1, 1] as little-endian PCM16 or float32 bytes."""
    clipped = np.clip(samples, -1.0, 1.0)
    if encoding == "pcm16":
        return bytes((clipped * _PCM16_SCALE).round().astype("<i2").tobytes())
    return bytes(clipped.astype("<f4").tobytes())


def decode(data: bytes, encoding: Encoding, field: str) -> np.ndarray:
    """Client audio as float32 samples, or InvalidArgument naming ``field`` if it is malformed."""
    width = 2 if encoding == "pcm16" else 4
    if len(data) % width:
        raise InvalidArgument(field, f"{encoding} audio must be a whole number of {width}-byte samples, "
                                     f"got {len(data)} bytes")  # fmt: skip
    if encoding == "pcm16":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / _PCM16_SCALE
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise InvalidArgument(field, "float32 audio contains NaN or infinite samples")
    return samples


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(samples.astype(np.float32), from_rate, to_rate, quality="HQ"), np.float32)


def rescale_durations(durations: list[int], total_samples: int) -> list[int]:
    """Durations in samples at one rate, rescaled to add up exactly to ``total_samples`` at another.

    Boundaries are rounded, not lengths, so rounding errors never accumulate along a sentence.
    """
    original_total = sum(durations)
    if original_total == 0:
        return [0] * len(durations)
    boundaries = np.round(np.cumsum([0, *durations]) * (total_samples / original_total)).astype(np.int64)
    boundaries[-1] = total_samples
    return [int(b) for b in np.diff(boundaries)]
