"""Lip sync for recorded lines that come without phoneme timings: jaw and lip closure from the signal.

Loudness drives the jaw (quiet → closed, loud → open). Bilabial stops and nasals show up as short dips in
loudness inside speech (the lips stop the air), so a dip well below the surrounding peak closes the lips.
Strong high-frequency energy (a hiss) reads as a sibilant. It knows nothing of vowels' shapes, so it is
rougher than the phoneme mode: bench/face_bench.py measures by how much.
"""

from __future__ import annotations

import numpy as np

from npcvoice.audio import Encoding, decode, resample
from npcvoice.face.engine import Animation, arkit_weights, check_clip, frame_count
from npcvoice.face.visemes import OVR_VISEMES

ANALYSIS_RATE = 16000
SILENCE_DB = -35.0  # below the clip's loud level
ABSOLUTE_SILENCE_RMS = 10 ** (-60 / 20)  # -60 dBFS: quieter than this is silence in any clip
DIP_RATIO = 0.3  # a frame this far below its neighbourhood's peak is a closure
DIP_NEIGHBOURHOOD_S = 0.12


def animate_audio(samples: np.ndarray, sample_rate: int, frame_rate: int = 30, emotion: str = "neutral",
                  intensity: float = 1.0) -> Animation:  # fmt: skip
    num_frames = frame_count(len(samples), sample_rate, frame_rate)
    audio = resample(samples.astype(np.float32), sample_rate, ANALYSIS_RATE)
    hop = ANALYSIS_RATE / frame_rate
    window = int(hop * 1.5)
    rms = np.zeros(num_frames)
    hiss = np.zeros(num_frames)
    for i in range(num_frames):
        centre = int((i + 0.5) * hop)
        frame = audio[max(0, centre - window // 2) : centre + window // 2]
        if len(frame) < 8:
            continue
        rms[i] = float(np.sqrt(np.mean(frame**2)))
        spectrum = np.abs(np.fft.rfft(frame * np.hanning(len(frame)))) ** 2
        split = int(len(spectrum) * 4000 / (ANALYSIS_RATE / 2))  # energy above 4 kHz
        hiss[i] = float(spectrum[split:].sum() / max(spectrum.sum(), 1e-12))

    loud = np.percentile(rms, 95) if num_frames else 0.0
    level_db = 20 * np.log10(np.maximum(rms, 1e-9) / max(loud, 1e-9))
    openness = np.clip((level_db - SILENCE_DB) / -SILENCE_DB, 0.0, 1.0)
    speaking = (level_db > SILENCE_DB) & (rms > ABSOLUTE_SILENCE_RMS)
    openness = openness * speaking

    reach = max(1, int(DIP_NEIGHBOURHOOD_S * frame_rate))
    closure = np.zeros(num_frames)
    for i in range(num_frames):
        before, after = rms[max(0, i - reach) : i], rms[i + 1 : i + 1 + reach]
        if len(before) == 0 or len(after) == 0:
            continue
        peak = min(before.max(), after.max())  # speech on both sides
        if peak > 0 and level_db[max(0, i - reach) : i + reach + 1].max() > SILENCE_DB + 10:
            ratio = rms[i] / peak
            if ratio < DIP_RATIO * 2:
                closure[i] = float(np.clip((DIP_RATIO * 2 - ratio) / DIP_RATIO, 0.0, 1.0))

    sibilance = np.clip((hiss - 0.35) / 0.35, 0.0, 1.0) * speaking
    ovr = np.zeros((num_frames, len(OVR_VISEMES)), np.float32)
    ovr[:, OVR_VISEMES.index("PP")] = closure
    ovr[:, OVR_VISEMES.index("SS")] = sibilance * (1 - closure)
    ovr[:, OVR_VISEMES.index("aa")] = openness * (1 - closure) * (1 - sibilance)
    ovr[:, OVR_VISEMES.index("sil")] = np.where(speaking, 0.0, 1.0) * (1 - closure)
    return Animation(frame_rate, len(samples) / sample_rate, ovr, arkit_weights(ovr, emotion, intensity), [])


def animate_clip(audio: bytes, encoding: Encoding, sample_rate: int, frame_rate: int, emotion: str,
                 intensity: float) -> Animation:  # fmt: skip
    """Frames for a client's encoded clip, checked."""
    samples = decode(audio, encoding, "audio.audio")
    check_clip(samples, sample_rate)
    return animate_audio(np.asarray(samples), sample_rate, frame_rate, emotion, intensity)
