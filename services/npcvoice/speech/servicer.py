"""gRPC adapter of the speech service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from npcvoice.api.npc.speech.v1 import speech_pb2, speech_pb2_grpc
from npcvoice.converters import input_format
from npcvoice.runtime.server import Context
from npcvoice.runtime.streams import open_stream
from npcvoice.runtime.workers import WorkerPool
from npcvoice.speech.convert import (
    audio_from_proto,
    event_to_proto,
    recognition_to_proto,
    request_from_proto,
    stream_config_from_proto,
)
from npcvoice.speech.engine import SpeechEngine
from npcvoice.speech.recognition import Recognizer


class SpeechServicer(speech_pb2_grpc.SpeechServiceServicer):
    def __init__(self, engine: SpeechEngine, workers: WorkerPool) -> None:
        self._recognizer = Recognizer(engine, workers)

    async def Recognize(
        self, request: speech_pb2.RecognizeRequest, context: Context
    ) -> speech_pb2.RecognizeResponse:
        encoding, rate = input_format(request.config.audio_format, "config.audio_format")
        recognition = await self._recognizer.recognize(
            request.audio, encoding, rate, request_from_proto(request.config)
        )
        return recognition_to_proto(recognition)

    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[speech_pb2.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[speech_pb2.StreamingRecognizeResponse]:
        first, requests = await open_stream(request_iterator)
        stream = self._recognizer.stream(stream_config_from_proto(first.config))
        async for event in stream.run(audio_from_proto(requests)):
            yield event_to_proto(event)
