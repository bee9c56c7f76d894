"""Viseme frames and events from a viseme timeline, with coarticulation and an emotion bias.

Each viseme segment has an envelope that is 1 while it sounds and ramps linearly to 0 over ``ramp_s``
before and after (onset and release), so the mouth moves into and out of each shape instead of snapping.
A frame samples the envelopes at its centre; the frame holding a segment's midpoint always shows that
segment fully, so no sound is skipped, however short. Lip closures (PP) and lip-teeth contact (FF) are
what viewers miss most, so they keep their weight and the other visemes share what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Re-exported (the "as") only until conversation/session.py imports FRAME_RATES from npcvoice.catalog.
from npcvoice.audio import check_sample_rate
from npcvoice.catalog import FRAME_RATES
from npcvoice.face.visemes import OVR_VISEMES, Phoneme, Segment, timeline
from npcvoice.runtime.errors import InvalidArgument

DEFAULT_RAMP_S = 0.035
MAX_PHONEMES = 20_000
MAX_SECONDS = 600.0
CONTACT_VISEMES = ("PP", "FF")

ARKIT_SHAPES = (
    "jaw_open", "mouth_close", "mouth_funnel", "mouth_pucker", "mouth_smile_left", "mouth_smile_right",
    "mouth_stretch_left", "mouth_stretch_right", "mouth_roll_lower", "mouth_roll_upper", "mouth_press_left",
    "mouth_press_right", "mouth_lower_down_left", "mouth_lower_down_right", "mouth_upper_up_left",
    "mouth_upper_up_right",
)  # fmt: skip

# How far each viseme moves each ARKit mouth shape (0-1). Symmetric shapes are given once, by their stem.
_ARKIT_POSE: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"mouth_close": 1.0, "mouth_press": 0.4, "jaw_open": 0.05},
    "FF": {"mouth_roll_lower": 0.6, "mouth_upper_up": 0.3, "jaw_open": 0.1, "mouth_close": 0.2},
    "TH": {"jaw_open": 0.15, "mouth_lower_down": 0.2},
    "DD": {"jaw_open": 0.2, "mouth_stretch": 0.1},
    "kk": {"jaw_open": 0.25, "mouth_stretch": 0.1},
    "CH": {"mouth_funnel": 0.6, "mouth_pucker": 0.3, "jaw_open": 0.15},
    "SS": {"mouth_stretch": 0.4, "jaw_open": 0.1},
    "nn": {"jaw_open": 0.15, "mouth_stretch": 0.1},
    "RR": {"mouth_funnel": 0.4, "mouth_pucker": 0.3, "jaw_open": 0.2},
    "aa": {"jaw_open": 0.7, "mouth_lower_down": 0.3},
    "E": {"jaw_open": 0.4, "mouth_stretch": 0.3, "mouth_upper_up": 0.1},
    "ih": {"jaw_open": 0.25, "mouth_stretch": 0.4},
    "oh": {"jaw_open": 0.5, "mouth_funnel": 0.6},
    "ou": {"jaw_open": 0.2, "mouth_pucker": 0.8, "mouth_funnel": 0.3},
}
# An emotion biases the resting face, scaled by its intensity.
_EMOTION_BIAS: dict[str, dict[str, float]] = {
    "joy": {"mouth_smile": 0.55},
    "anger": {"mouth_press": 0.3, "mouth_stretch": 0.2},
    "sadness": {"mouth_roll_lower": 0.15, "mouth_lower_down": 0.1},
    "fear": {"mouth_stretch": 0.35, "jaw_open": 0.05},
    "surprise": {"jaw_open": 0.2, "mouth_funnel": 0.15},
    "disgust": {"mouth_upper_up": 0.4},
    "neutral": {},
}
EMOTIONS = tuple(_EMOTION_BIAS)


def _expand(pose: dict[str, float]) -> np.ndarray:
    vector = np.zeros(len(ARKIT_SHAPES), np.float32)
    for name, value in pose.items():
        for suffix in ("", "_left", "_right"):
            if name + suffix in ARKIT_SHAPES:
                vector[ARKIT_SHAPES.index(name + suffix)] = value
    return vector


_ARKIT_MATRIX = np.stack([_expand(_ARKIT_POSE[v]) for v in OVR_VISEMES])  # (15, shapes)


@dataclass(frozen=True)
class VisemeEvent:
    viseme: str
    start_s: float
    duration_s: float


@dataclass
class Animation:
    frame_rate: int
    duration_s: float
    ovr: np.ndarray  # (frames, 15) weights in OVR_VISEMES order
    arkit: np.ndarray  # (frames, len(ARKIT_SHAPES))
    events: list[VisemeEvent] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.ovr.shape[0])


def check_frame_rate(frame_rate: int) -> int:
    frame_rate = frame_rate or 30
    if frame_rate not in FRAME_RATES:
        raise InvalidArgument(
            "frame_rate", f"must be one of {', '.join(map(str, FRAME_RATES))}, got {frame_rate}"
        )
    return frame_rate


def check_emotion(emotion: str, intensity: float | None) -> tuple[str, float]:
    if emotion and emotion not in _EMOTION_BIAS:
        raise InvalidArgument("emotion", f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    value = 1.0 if intensity is None else intensity
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument("emotion_intensity", f"must be between 0 and 1, got {value}")
    return emotion or "neutral", value


def check_phonemes(phonemes: list[Phoneme], sample_rate: int) -> None:
    """Phonemes must tile their audio in order, from wherever the first one starts, within the limits."""
    if len(phonemes) > MAX_PHONEMES:
        raise InvalidArgument("phonemes.phonemes", f"at most {MAX_PHONEMES} phonemes, got {len(phonemes)}")
    check_sample_rate(sample_rate, "phonemes.sample_rate_hz")
    expected_start = phonemes[0].start if phonemes else 0
    for index, phoneme in enumerate(phonemes):
        where = f"phonemes.phonemes[{index}]"
        if phoneme.length < 0 or phoneme.start < 0:
            raise InvalidArgument(where, "start_sample and num_samples must not be negative")
        if phoneme.start != expected_start:
            raise InvalidArgument(
                where,
                f"start_sample {phoneme.start} leaves a gap or overlap; expected {expected_start} "
                "(phonemes must tile the audio in order)",
            )
        expected_start = phoneme.start + phoneme.length
    if expected_start / sample_rate > MAX_SECONDS:
        raise InvalidArgument("phonemes", f"at most {MAX_SECONDS:.0f} s of audio per request")


def check_clip(samples: np.ndarray, sample_rate: int) -> None:
    """Audio to animate without phonemes: something, and within the length limit."""
    if len(samples) == 0:
        raise InvalidArgument("audio.audio", "is empty")
    if len(samples) / sample_rate > MAX_SECONDS:
        raise InvalidArgument("audio.audio", f"at most {MAX_SECONDS:.0f} s of audio per request")


def frame_count(num_samples: int, sample_rate: int, frame_rate: int) -> int:
    """Frames that cover the audio: ceil(duration × frame rate), computed exactly in integers."""
    return -(-num_samples * frame_rate // sample_rate)


def ovr_weights(segments: list[Segment], sample_rate: int, frame_rate: int, num_frames: int,
                ramp_s: float = DEFAULT_RAMP_S) -> np.ndarray:  # fmt: skip
    weights = np.zeros((num_frames, len(OVR_VISEMES)), np.float32)
    if num_frames == 0:
        return weights
    # The last frame may reach past the end of the audio; it shows the audio's last moment.
    audio_end = max(s.end for s in segments) / sample_rate if segments else 0.0
    centre = np.minimum((np.arange(num_frames, dtype=np.float64) + 0.5) / frame_rate, audio_end)
    for segment in segments:
        start, end = segment.start / sample_rate, segment.end / sample_rate
        gap = np.maximum(0.0, np.maximum(start - centre, centre - end))  # 0 inside the segment
        envelope = np.clip(1.0 - gap / ramp_s, 0.0, 1.0)
        envelope[min(num_frames - 1, int((start + end) / 2 * frame_rate))] = 1.0
        column = OVR_VISEMES.index(segment.viseme)
        weights[:, column] = np.maximum(weights[:, column], envelope)
    contact = [OVR_VISEMES.index(v) for v in CONTACT_VISEMES]
    others = [i for i in range(len(OVR_VISEMES)) if i not in contact]
    contact_total = np.clip(weights[:, contact].sum(axis=1, keepdims=True), 0.0, 1.0)
    weights[:, contact] /= np.maximum(1.0, weights[:, contact].sum(axis=1, keepdims=True))
    other_total = weights[:, others].sum(axis=1, keepdims=True)
    room = 1.0 - contact_total
    weights[:, others] *= np.where(other_total > room, room / np.maximum(other_total, 1e-9), 1.0)
    silent = weights.sum(axis=1) < 1e-6
    weights[silent, OVR_VISEMES.index("sil")] = 1.0
    return weights


def arkit_weights(ovr: np.ndarray, emotion: str = "neutral", intensity: float = 1.0) -> np.ndarray:
    arkit = ovr @ _ARKIT_MATRIX
    bias = _expand(_EMOTION_BIAS[emotion]) * intensity
    return np.asarray(np.clip(arkit + bias, 0.0, 1.0), np.float32)


def events_from(segments: list[Segment], sample_rate: int) -> list[VisemeEvent]:
    return [VisemeEvent(s.viseme, s.start / sample_rate, s.length / sample_rate) for s in segments]


def animate_phonemes(
    phonemes: list[Phoneme],
    sample_rate: int,
    frame_rate: int = 30,
    emotion: str = "neutral",
    intensity: float = 1.0,
    ramp_s: float = DEFAULT_RAMP_S,
) -> Animation:
    """Frames and events for phonemes whose start samples count from the start of the audio."""
    segments = timeline(phonemes)
    num_samples = max((p.start + p.length for p in phonemes), default=0)
    frames = frame_count(num_samples, sample_rate, frame_rate)
    ovr = ovr_weights(segments, sample_rate, frame_rate, frames, ramp_s)
    return Animation(frame_rate, num_samples / sample_rate, ovr, arkit_weights(ovr, emotion, intensity),
                     events_from(segments, sample_rate))  # fmt: skip


def animate_track(
    phonemes: list[Phoneme], sample_rate: int, frame_rate: int, emotion: str, intensity: float
) -> Animation:
    """Frames and events for a client's phoneme track, checked; times count from its first phoneme."""
    check_phonemes(phonemes, sample_rate)
    origin = phonemes[0].start if phonemes else 0
    relative = [Phoneme(p.symbol, p.start - origin, p.length) for p in phonemes]
    return animate_phonemes(relative, sample_rate, frame_rate, emotion, intensity)
