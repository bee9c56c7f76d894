"""gRPC adapter of the speech service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import soxr

from npcvoice.api.npc.speech.v1 import speech_pb2, speech_pb2_grpc
from npcvoice.audio import decode, resample
from npcvoice.converters import input_format
from npcvoice.runtime.errors import InvalidArgument, ResourceExhausted
from npcvoice.runtime.server import Context
from npcvoice.runtime.streams import open_stream
from npcvoice.runtime.workers import WorkerPool
from npcvoice.speech.engine import SAMPLE_RATE, RecognitionRequest, SpeechEngine, Transcript
from npcvoice.speech.stream import SpeechEnded, SpeechStarted, UtteranceAudio, UtteranceDetector
from npcvoice.speech.vad import Endpointing

_ACTIVITY = {
    SpeechStarted: speech_pb2.SPEECH_ACTIVITY_TYPE_STARTED,
    SpeechEnded: speech_pb2.SPEECH_ACTIVITY_TYPE_ENDED,
}
_FINAL_REASONS = {
    None: speech_pb2.FINAL_REASON_UNSPECIFIED,
    "endpoint": speech_pb2.FINAL_REASON_ENDPOINT,
    "max_duration": speech_pb2.FINAL_REASON_MAX_DURATION,
    "end_of_stream": speech_pb2.FINAL_REASON_END_OF_STREAM,
}


def request_from_proto(config: speech_pb2.RecognitionConfig) -> RecognitionRequest:
    return RecognitionRequest(
        language=config.language,
        hotwords=tuple(h.strip() for h in config.hotwords if h.strip()),
        initial_prompt=config.initial_prompt,
        word_timings=config.word_timings,
    )


def words_to_proto(transcript: Transcript, offset_s: float) -> list[speech_pb2.WordTiming]:
    return [
        speech_pb2.WordTiming(
            word=w.word,
            start_seconds=w.start_s + offset_s,
            end_seconds=w.end_s + offset_s,
            probability=w.probability,
        )
        for w in transcript.words
    ]


class SpeechServicer(speech_pb2_grpc.SpeechServiceServicer):
    def __init__(self, engine: SpeechEngine, workers: WorkerPool) -> None:
        self._engine = engine
        self._workers = workers

    async def Recognize(
        self, request: speech_pb2.RecognizeRequest, context: Context
    ) -> speech_pb2.RecognizeResponse:
        options = self._engine.options
        encoding, rate = input_format(request.config.audio_format, "config.audio_format")
        recognition = self._engine.check(request_from_proto(request.config))
        samples = decode(request.audio, encoding, "audio")
        if len(samples) == 0:
            raise InvalidArgument("audio", "is empty")
        if len(samples) / rate > options.max_recognize_s:
            seconds = len(samples) / rate
            raise InvalidArgument(
                "audio",
                f"must be at most {options.max_recognize_s:.0f} s, got {seconds:.1f} s (stream it instead)",
            )
        started = time.perf_counter()
        transcript = await self._workers.run(
            self._engine.transcribe, resample(samples, rate, SAMPLE_RATE), recognition, options.final_window
        )
        return speech_pb2.RecognizeResponse(
            text=transcript.text,
            words=words_to_proto(transcript, 0.0),
            language=transcript.language,
            audio_seconds=len(samples) / rate,
            processing_seconds=time.perf_counter() - started,
        )

    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[speech_pb2.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[speech_pb2.StreamingRecognizeResponse]:
        first, requests = await open_stream(request_iterator)
        stream = _RecognitionStream(self._engine, self._workers, first.config)
        async for response in stream.run(requests):
            yield response


class _RecognitionStream:
    """One StreamingRecognize call: reads audio, detects utterances, transcribes them in order."""

    def __init__(
        self, engine: SpeechEngine, workers: WorkerPool, config: speech_pb2.StreamingRecognitionConfig
    ) -> None:
        options = engine.options
        self._engine = engine
        self._workers = workers
        self._encoding, self._rate = input_format(
            config.recognition.audio_format, "config.recognition.audio_format"
        )
        self._recognition = engine.check(request_from_proto(config.recognition))
        ep = config.endpointing
        if ep.speech_threshold and not 0 < ep.speech_threshold < 1:
            raise InvalidArgument(
                "config.endpointing.speech_threshold", f"must be between 0 and 1, got {ep.speech_threshold}"
            )
        for name in ("min_silence_ms", "min_speech_ms", "speech_pad_ms"):
            if getattr(ep, name) < 0 or getattr(ep, name) > 5000:
                raise InvalidArgument(
                    f"config.endpointing.{name}", f"must be between 0 and 5000, got {getattr(ep, name)}"
                )
        if config.interim_interval_ms < 0:
            raise InvalidArgument("config.interim_interval_ms", "must not be negative")
        endpointing = Endpointing(
            speech_threshold=ep.speech_threshold or options.speech_threshold,
            min_silence_ms=ep.min_silence_ms or options.min_silence_ms,
            min_speech_ms=ep.min_speech_ms or options.min_speech_ms,
            speech_pad_ms=ep.speech_pad_ms or options.speech_pad_ms,
        )
        interim_s = (
            (config.interim_interval_ms or options.interim_interval_ms) / 1000
            if config.interim_results
            else None
        )
        self._detector = UtteranceDetector(endpointing, options.max_utterance_s, interim_s)
        self._resampler = soxr.ResampleStream(self._rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._received_s = 0.0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._interim_running = False
        self._speculation: tuple[UtteranceAudio, asyncio.Task[Transcript]] | None = None
        self._finalised = -1  # index of the last utterance whose final was sent

    def _audio(self, data: bytes) -> np.ndarray:
        options = self._engine.options
        if not data:
            raise InvalidArgument("audio", "empty audio message")
        if len(data) > options.max_chunk_bytes:
            raise InvalidArgument(
                "audio", f"message of {len(data)} bytes exceeds the limit of {options.max_chunk_bytes}"
            )
        samples = decode(data, self._encoding, "audio")
        self._received_s += len(samples) / self._rate
        if self._received_s > options.max_stream_s:
            raise InvalidArgument("audio", f"stream longer than the limit of {options.max_stream_s:.0f} s")
        return np.asarray(self._resampler.resample_chunk(samples), np.float32)

    def _transcribe(self, utterance: UtteranceAudio) -> asyncio.Task[Transcript]:
        options = self._engine.options
        window = options.final_window if utterance.final or utterance.speculative else options.interim_window
        return asyncio.ensure_future(
            self._workers.run(self._engine.transcribe, utterance.audio, self._recognition, window)
        )

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

    def _dispatch(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted | SpeechEnded):
                activity = speech_pb2.SpeechActivity(
                    type=_ACTIVITY[type(event)],
                    utterance_index=event.utterance_index,
                    stream_time_seconds=event.stream_time_s,
                )
                self._queue.put_nowait(speech_pb2.StreamingRecognizeResponse(activity=activity))
            elif event.speculative:
                if self._speculation is not None:
                    self._speculation[1].cancel()
                self._speculation = (event, self._transcribe(event))
            elif event.final:
                self._queue.put_nowait((event, self._final_task(event)))
            elif not self._interim_running and not self._workers.busy:  # interims never delay a final
                self._interim_running = True
                self._queue.put_nowait((event, self._transcribe(event)))

    async def _read(self, request_iterator: AsyncIterator[speech_pb2.StreamingRecognizeRequest]) -> None:
        try:
            async for request in request_iterator:
                self._dispatch(self._detector.feed(self._audio(request.audio)))
            tail = np.asarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True), np.float32)
            self._dispatch(self._detector.feed(tail) + self._detector.finish())
            self._queue.put_nowait(None)
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def run(
        self, request_iterator: AsyncIterator[speech_pb2.StreamingRecognizeRequest]
    ) -> AsyncIterator[speech_pb2.StreamingRecognizeResponse]:
        reader = asyncio.ensure_future(self._read(request_iterator))
        pending: list[asyncio.Task[Transcript]] = []
        try:
            while (item := await self._queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, speech_pb2.StreamingRecognizeResponse):
                    yield item
                    continue
                utterance, task = item
                pending.append(task)
                try:
                    transcript = await task
                except ResourceExhausted:
                    if utterance.final:
                        raise
                    continue
                finally:
                    if not utterance.final:
                        self._interim_running = False
                if utterance.final:
                    self._finalised = utterance.utterance_index
                elif utterance.utterance_index <= self._finalised or not transcript.text:
                    continue
                yield speech_pb2.StreamingRecognizeResponse(transcript=speech_pb2.StreamingTranscript(
                    utterance_index=utterance.utterance_index,
                    text=transcript.text,
                    is_final=utterance.final,
                    start_seconds=utterance.start_s,
                    end_seconds=utterance.end_s,
                    words=words_to_proto(transcript, utterance.start_s),
                    final_reason=_FINAL_REASONS[utterance.reason],
                    finalize_seconds=time.perf_counter() - utterance.decided_at if utterance.final else 0.0,
                ))  # fmt: skip
        finally:
            reader.cancel()
            for task in pending:
                task.cancel()
            if self._speculation is not None:
                self._speculation[1].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
