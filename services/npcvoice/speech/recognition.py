"""Recognition as clients ask for it: a whole clip at once, or a live stream cut into utterances.

Domain code only: encoded audio bytes and plain dataclasses in, plain dataclasses out. Transcriptions run
on the service's worker pool; a stream never waits for one before reading more audio, so speech activity
(which the gateway uses for barge-in) is reported as soon as it is detected.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import numpy as np
import soxr

from npcvoice.audio import Encoding, decode, resample
from npcvoice.runtime.errors import InvalidArgument, ResourceExhausted
from npcvoice.runtime.streams import read_in_background
from npcvoice.runtime.workers import DEFAULT_PRIORITY, WorkerPool
from npcvoice.speech.engine import (
    SAMPLE_RATE,
    RecognitionRequest,
    SpeechEngine,
    Transcript,
    Word,
    plain_words,
)
from npcvoice.speech.options import SpeechOptions
from npcvoice.speech.stream import (
    FinalReason,
    GuessVoid,
    SpeechEnded,
    SpeechStarted,
    UtteranceAudio,
    UtteranceDetector,
)
from npcvoice.speech.vad import Endpointing

MAX_ENDPOINTING_MS = 5000


@dataclass(frozen=True)
class Recognition:
    transcript: Transcript
    audio_s: float
    processing_s: float


@dataclass(frozen=True)
class EndpointingRequest:
    """A client's endpointing for one stream; None keeps the service's option."""

    speech_threshold: float | None = None
    min_silence_ms: int | None = None
    min_speech_ms: int | None = None
    speech_pad_ms: int | None = None


@dataclass(frozen=True)
class StreamConfig:
    recognition: RecognitionRequest
    encoding: Encoding
    sample_rate: int
    endpointing: EndpointingRequest = field(default_factory=EndpointingRequest)
    interim_results: bool = False
    interim_interval_ms: int | None = None  # None: the service's option


@dataclass(frozen=True)
class UtteranceTranscript:
    """An utterance's transcript so far (interim) or in full (final); times count from the stream's start."""

    utterance_index: int
    text: str
    is_final: bool
    start_s: float
    end_s: float
    words: list[Word]
    reason: FinalReason | None
    finalize_s: float  # finals: from the utterance's cut to its transcript
    # When the utterance continues the one before (the player went on after a short pause): the whole line
    # heard as one, which replaces the earlier final's text; ``text`` is then what came after the pause.
    line_text: str = ""
    # An interim transcribed as the final will be, from the final's audio, once the silence after the speech
    # began: if the silence goes on to end the utterance, the final says the same (see stream.py).
    settled: bool = False


RecognitionEvent = SpeechStarted | SpeechEnded | UtteranceTranscript


def endpointing_for(request: EndpointingRequest, options: SpeechOptions) -> Endpointing:
    """The client's endpointing, checked, over the service's defaults."""
    if request.speech_threshold is not None and not 0 < request.speech_threshold < 1:
        raise InvalidArgument(
            "config.endpointing.speech_threshold", f"must be between 0 and 1, got {request.speech_threshold}"
        )
    for name in ("min_silence_ms", "min_speech_ms", "speech_pad_ms"):
        value = getattr(request, name)
        if value is not None and not 0 <= value <= MAX_ENDPOINTING_MS:
            raise InvalidArgument(
                f"config.endpointing.{name}", f"must be between 0 and {MAX_ENDPOINTING_MS}, got {value}"
            )
    return Endpointing(
        speech_threshold=request.speech_threshold or options.speech_threshold,
        min_silence_ms=request.min_silence_ms or options.min_silence_ms,
        min_speech_ms=request.min_speech_ms or options.min_speech_ms,
        speech_pad_ms=request.speech_pad_ms or options.speech_pad_ms,
    )


def interim_interval_s(config: StreamConfig, options: SpeechOptions) -> float | None:
    """Seconds between interim transcripts, or None when the client wants none."""
    if config.interim_interval_ms is not None and config.interim_interval_ms < 0:
        raise InvalidArgument("config.interim_interval_ms", "must not be negative")
    if not config.interim_results:
        return None
    return (config.interim_interval_ms or options.interim_interval_ms) / 1000


def said_after(line: str, before: str) -> str:
    """The end of ``line`` that goes beyond ``before``, the earlier transcript of its start.

    Both are Whisper's hearing of the same audio start, heard alone and then with what followed, so they
    mostly agree word for word but not always ("Lock!" alone, "ask not" in context): the words are aligned
    and the cut goes after the last word of ``line`` matched to one of ``before``, looked for only where
    ``before`` could reach, so that a word said again later ("you") does not move it.
    """
    line_words, before_words = line.split(), before.split()
    reach = line_words[: len(before_words) + 3]
    matcher = difflib.SequenceMatcher(None, plain_words(before_words), plain_words(reach), autojunk=False)
    cut = max((block.b + block.size for block in matcher.get_matching_blocks() if block.size), default=0)
    return " ".join(line_words[cut:])


def in_stream_time(words: list[Word], offset_s: float) -> list[Word]:
    return [Word(w.word, w.start_s + offset_s, w.end_s + offset_s, w.probability) for w in words]


class Recognizer:
    """The speech engine and the worker pool its transcriptions run on, shared by every request."""

    def __init__(self, engine: SpeechEngine, workers: WorkerPool) -> None:
        self.engine = engine
        self.workers = workers

    async def recognize(
        self, audio: bytes, encoding: Encoding, sample_rate: int, request: RecognitionRequest
    ) -> Recognition:
        options = self.engine.options
        recognition = self.engine.check(request)
        samples = decode(audio, encoding, "audio")
        if len(samples) == 0:
            raise InvalidArgument("audio", "is empty")
        seconds = len(samples) / sample_rate
        if seconds > options.max_recognize_s:
            raise InvalidArgument(
                "audio",
                f"must be at most {options.max_recognize_s:.0f} s, got {seconds:.1f} s (stream it instead)",
            )
        started = time.perf_counter()
        transcript = await self.workers.run(
            self.engine.transcribe,
            resample(samples, sample_rate, SAMPLE_RATE),
            recognition,
            options.final_window,
        )
        return Recognition(transcript, seconds, time.perf_counter() - started)

    def stream(self, config: StreamConfig) -> RecognitionStream:
        """A stream with this config, checked before any audio arrives."""
        return RecognitionStream(self, config)


_Queued = SpeechStarted | SpeechEnded | tuple[UtteranceAudio, asyncio.Task[Transcript]]


class RecognitionStream:
    """One stream: reads audio, detects utterances, transcribes them in order."""

    def __init__(self, recognizer: Recognizer, config: StreamConfig) -> None:
        engine = recognizer.engine
        options = engine.options
        self._engine = engine
        self._workers = recognizer.workers
        self._encoding, self._rate = config.encoding, config.sample_rate
        self._recognition = engine.check(config.recognition)
        endpointing = endpointing_for(config.endpointing, options)
        interim_s = interim_interval_s(config, options)
        self._interims = interim_s is not None
        self._detector = UtteranceDetector(endpointing, options.max_utterance_s, interim_s,
                                           turn_end=engine.turn_end,
                                           continue_within_s=options.continue_within_ms / 1000)  # fmt: skip
        self._resampler = soxr.ResampleStream(self._rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._received_s = 0.0
        self._queue: asyncio.Queue[_Queued | BaseException | None] = asyncio.Queue()
        self._interim_running = False
        self._speculation: tuple[UtteranceAudio, asyncio.Task[Transcript]] | None = None
        self._interim: asyncio.Task[Transcript] | None = None
        self._interim_began = False  # whether that interim's transcription has started
        self._finalised = -1  # index of the last utterance whose final was sent
        self._line = ""  # the last final's whole line, which a continuation goes on from

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[RecognitionEvent]:
        """Activity and transcripts as the audio ``chunks`` bring them; finals in utterance order."""
        pending: list[asyncio.Task[Transcript]] = []
        reading: AbstractAsyncContextManager[AsyncIterator[_Queued]]  # (mypy cannot infer it from the queue)
        reading = read_in_background(self._read(chunks), self._queue)
        async with reading as queued:
            try:
                async for item in queued:
                    if isinstance(item, SpeechStarted | SpeechEnded):
                        yield item
                        continue
                    utterance, task = item
                    pending.append(task)
                    if (transcript := await self._transcript(utterance, task)) is not None:
                        yield transcript
            finally:
                for task in pending:
                    task.cancel()
                if self._speculation is not None:
                    self._speculation[1].cancel()

    async def _transcript(
        self, utterance: UtteranceAudio, task: asyncio.Task[Transcript]
    ) -> UtteranceTranscript | None:
        """The utterance's transcript, or None for an interim that is refused, empty or overtaken (a
        settled one whose speculation was given up: the player went on)."""
        if not utterance.final:  # a guess given up, or an interim made way for a final
            await asyncio.wait([task])
            if task.cancelled():
                if not utterance.speculative:
                    self._interim_running = False
                return None
        try:
            transcript = await task
        except ResourceExhausted:
            if utterance.final:
                raise
            return None
        finally:
            if not utterance.final and not utterance.speculative:
                self._interim_running = False
        if not utterance.final and (utterance.utterance_index <= self._finalised or not transcript.text):
            return None
        text, line = transcript.text, ""
        if utterance.continues:
            text, line = said_after(transcript.text, self._line), transcript.text
        if utterance.final:
            self._finalised = utterance.utterance_index
            self._line = line or text
        return UtteranceTranscript(
            utterance_index=utterance.utterance_index,
            text=text,
            line_text=line,
            is_final=utterance.final,
            start_s=utterance.start_s,
            end_s=utterance.end_s,
            words=in_stream_time(transcript.words, utterance.start_s),
            reason=utterance.reason,
            finalize_s=time.perf_counter() - utterance.decided_at if utterance.final else 0.0,
            settled=utterance.speculative,
        )

    async def _read(self, chunks: AsyncIterator[bytes]) -> None:
        # How far the audio received falls behind the time since it began: when that grows past what it has
        # been, the client sent nothing for a while (a closed microphone). A client that buffers and sends
        # in bursts falls behind by its buffer once, and that is not counted again.
        began, received, behind = time.monotonic(), 0.0, 0.0
        async for chunk in chunks:
            samples = self._samples(chunk)
            received += len(samples) / SAMPLE_RATE  # (a chunk arrives once its audio has been captured)
            lag = time.monotonic() - began - received
            if lag > behind:
                self._detector.idle(lag - behind)
                behind = lag
            self._dispatch(self._detector.feed(samples))
        tail = np.asarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True), np.float32)
        self._dispatch(self._detector.feed(tail) + self._detector.finish())

    def _samples(self, chunk: bytes) -> np.ndarray:
        """A chunk of client audio, checked, at the detector's rate."""
        options = self._engine.options
        if not chunk:
            raise InvalidArgument("audio", "empty audio message")
        if len(chunk) > options.max_chunk_bytes:
            raise InvalidArgument(
                "audio", f"message of {len(chunk)} bytes exceeds the limit of {options.max_chunk_bytes}"
            )
        samples = decode(chunk, self._encoding, "audio")
        self._received_s += len(samples) / self._rate
        if self._received_s > options.max_stream_s:
            raise InvalidArgument("audio", f"stream longer than the limit of {options.max_stream_s:.0f} s")
        return np.asarray(self._resampler.resample_chunk(samples), np.float32)

    def _dispatch(self, events: list[SpeechStarted | SpeechEnded | UtteranceAudio | GuessVoid]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted | SpeechEnded):
                self._queue.put_nowait(event)
            elif isinstance(event, GuessVoid):
                self._give_up_guess()
            elif event.speculative:
                self._give_up_guess()
                self._make_way()
                self._speculation = (event, self._transcribe(event))
                if self._interims:  # its transcript goes out as a settled interim as soon as it is done
                    self._queue.put_nowait(self._speculation)
            elif event.final:
                self._make_way()
                self._queue.put_nowait((event, self._final_task(event)))
            elif not self._interim_running and not self._workers.busy and self._speculation is None:
                # Interims never delay a final: none while a guess is out (its words are newer) or while
                # the pool is busy; and one not started yet when a final comes never runs (_make_way).
                self._interim_running = True
                self._interim_began = False
                self._interim = self._transcribe(event)
                self._queue.put_nowait((event, self._interim))

    def _give_up_guess(self) -> None:
        """The player went on: the speculative final is not used (never run, if it has not started)."""
        if self._speculation is not None:
            self._speculation[1].cancel()
            self._speculation = None

    def _make_way(self) -> None:
        """A final (or its guess) is due: an interim of this stream still waiting for the pool never runs
        (one already running goes on: it cannot be stopped, and its words still go out)."""
        if self._interim is not None and not self._interim.done() and not self._interim_began:
            self._interim.cancel()
        self._interim = None

    def _transcribe(self, utterance: UtteranceAudio) -> asyncio.Task[Transcript]:
        options = self._engine.options
        final = utterance.final or utterance.speculative
        window = options.final_window if final else options.interim_window
        beam = None if final else 1  # an interim is soon replaced: the fastest search will do
        label = "final" if utterance.final else "speculative final" if utterance.speculative else "interim"

        def transcribe() -> Transcript:
            if not final:
                self._interim_began = True  # (in the worker's thread: from here it cannot be stopped)
            return self._engine.transcribe(utterance.audio, self._recognition, window, beam, check_fit=final)

        return asyncio.ensure_future(self._workers.run_as(label, DEFAULT_PRIORITY, transcribe))

    def _final_task(self, final: UtteranceAudio) -> asyncio.Task[Transcript]:
        """The speculative transcription if it was of exactly this audio, else a new one."""
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            guess, task = speculation
            if (guess.utterance_index, guess.start_s, guess.end_s) == (
                final.utterance_index,
                final.start_s,
                final.end_s,
            ):
                return task
            task.cancel()
        return self._transcribe(final)
