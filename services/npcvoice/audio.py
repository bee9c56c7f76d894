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


def resample(samples: np.ndarray, from_rate: float, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(samples.astype(np.float32), from_rate, to_rate, quality="HQ"), np.float32)


def stretch(samples: np.ndarray, ratio: float, rate: int) -> np.ndarray:
    """``samples`` made ``ratio`` times longer at the same pitch, by WSOLA (waveform-similarity overlap-add):
    30 ms Hann windows laid every 15 ms at the output, each taken from near where the input's time maps to,
    shifted by up to 7.5 ms so that it continues the waveform already laid down (no phase jumps)."""
    samples = np.asarray(samples, np.float32)
    if ratio == 1.0 or len(samples) == 0:
        return samples
    size = max(16, int(rate * 0.030)) // 2 * 2
    hop = size // 2  # Hann windows at 50 % overlap add up to one
    tolerance = hop // 2
    window = np.hanning(size + 1)[:size].astype(np.float32)
    length = round(len(samples) * ratio)
    tail = np.zeros(size + 2 * tolerance, np.float32)
    padded = np.concatenate([np.zeros(tolerance, np.float32), samples, tail])
    out = np.zeros(length + size, np.float32)
    previous = tolerance  # where, in ``padded``, the last window was taken from
    for at in range(0, length, hop):
        nominal = tolerance + int(at / ratio)
        if at == 0:
            start = nominal
        else:
            target = padded[previous + hop : previous + hop + size]  # what would continue the last window
            region = padded[nominal - tolerance : nominal + tolerance + size]
            scores = np.correlate(region, target, mode="valid")
            start = nominal - tolerance + int(np.argmax(scores))
        out[at : at + size] += padded[start : start + size] * window
        previous = start
    return out[:length]


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
