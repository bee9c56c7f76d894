"""gRPC adapter of the voice service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from npcvoice.api.npc.voice.v1 import voice_pb2, voice_pb2_grpc
from npcvoice.converters import encoding_from_proto
from npcvoice.runtime.server import Context
from npcvoice.runtime.streams import open_stream
from npcvoice.runtime.workers import WorkerPool
from npcvoice.voice.convert import chunk_to_proto, fragments_from_proto, settings_from_proto, voices_to_proto
from npcvoice.voice.engine import VoiceEngine
from npcvoice.voice.utterance import Utterance


class VoiceServicer(voice_pb2_grpc.VoiceServiceServicer):
    def __init__(self, engine: VoiceEngine, workers: WorkerPool) -> None:
        self._engine = engine
        self._workers = workers

    async def Synthesize(
        self, request: voice_pb2.SynthesizeRequest, context: Context
    ) -> AsyncIterator[voice_pb2.SynthesizeResponse]:
        settings = self._engine.check(settings_from_proto(request.config))
        encoding = encoding_from_proto(request.config.output_format.encoding, "config.output_format.encoding")
        utterance = Utterance(self._engine, self._workers, settings)
        async for chunk in utterance.say(request.text):
            yield voice_pb2.SynthesizeResponse(chunk=chunk_to_proto(chunk, encoding))

    async def SynthesizeStream(
        self, request_iterator: AsyncIterator[voice_pb2.SynthesizeStreamRequest], context: Context
    ) -> AsyncIterator[voice_pb2.SynthesizeStreamResponse]:
        first, requests = await open_stream(request_iterator)
        settings = self._engine.check(settings_from_proto(first.config))
        encoding = encoding_from_proto(first.config.output_format.encoding, "config.output_format.encoding")
        utterance = Utterance(self._engine, self._workers, settings)
        async for chunk in utterance.say_fragments(fragments_from_proto(requests)):
            yield voice_pb2.SynthesizeStreamResponse(chunk=chunk_to_proto(chunk, encoding))

    async def ListVoices(
        self, request: voice_pb2.ListVoicesRequest, context: Context
    ) -> voice_pb2.ListVoicesResponse:
        return voices_to_proto(self._engine.voices.values(), self._engine.default_voice)
