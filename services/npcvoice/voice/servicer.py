"""gRPC adapter of the voice service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.voice.v1 import voice_pb2, voice_pb2_grpc
from npcvoice.audio import Encoding, encode
from npcvoice.converters import encoding_from_proto
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.runtime.server import Context
from npcvoice.runtime.streams import open_stream
from npcvoice.runtime.workers import WorkerPool
from npcvoice.text import SentenceBuffer, split_for_synthesis
from npcvoice.voice.engine import SpeechChunk, SynthesisSettings, VoiceEngine

# A stream may carry many sentences, but not without end.
STREAM_TEXT_LIMIT_FACTOR = 10


def settings_from_proto(config: voice_pb2.SynthesisConfig) -> SynthesisSettings:
    voice = config.voice
    return SynthesisSettings(
        voice_id=voice.voice_id,
        speaker_id=voice.speaker_id,
        speed=voice.speed if voice.HasField("speed") else 1.0,
        variation=voice.variation if voice.HasField("variation") else None,
        volume=voice.volume if voice.HasField("volume") else 1.0,
        sample_rate=config.output_format.sample_rate_hz,
        first_clause=config.split_mode == voice_pb2.SPLIT_MODE_FIRST_CLAUSE,
    )


def chunk_to_proto(chunk: SpeechChunk, encoding: Encoding) -> voice_pb2.AudioChunk:
    return voice_pb2.AudioChunk(
        audio=encode(chunk.audio, encoding),
        format=audio_pb2.AudioFormat(
            encoding=audio_pb2.AUDIO_ENCODING_PCM16
            if encoding == "pcm16"
            else audio_pb2.AUDIO_ENCODING_FLOAT32,
            sample_rate_hz=chunk.sample_rate,
        ),
        start_sample=chunk.start_sample,
        num_samples=chunk.num_samples,
        phonemes=[
            audio_pb2.PhonemeTiming(phoneme=p.phoneme, start_sample=p.start_sample, num_samples=p.num_samples)
            for p in chunk.phonemes
        ],
        text=chunk.text,
        sentence_index=chunk.sentence_index,
    )


class _Utterance:
    """Sentences of one request, spoken in order, positioned one after another."""

    def __init__(self, engine: VoiceEngine, workers: WorkerPool, settings: SynthesisSettings) -> None:
        self._engine = engine
        self._workers = workers
        self._settings = settings
        self._next_sample = 0
        self._next_index = 0

    async def speak(self, piece: str) -> SpeechChunk:
        chunk = await self._workers.run(
            self._engine.synthesize_piece, piece, self._settings, self._next_sample, self._next_index
        )
        self._next_sample += chunk.num_samples
        self._next_index += 1
        return chunk


class VoiceServicer(voice_pb2_grpc.VoiceServiceServicer):
    def __init__(self, engine: VoiceEngine, workers: WorkerPool) -> None:
        self._engine = engine
        self._workers = workers

    async def Synthesize(
        self, request: voice_pb2.SynthesizeRequest, context: Context
    ) -> AsyncIterator[voice_pb2.SynthesizeResponse]:
        settings = self._engine.check(settings_from_proto(request.config))
        encoding = encoding_from_proto(request.config.output_format.encoding, "config.output_format.encoding")
        text = self._engine.check_text(request.text)
        utterance = _Utterance(self._engine, self._workers, settings)
        for piece in split_for_synthesis(text, settings.first_clause):
            chunk = await utterance.speak(piece)
            yield voice_pb2.SynthesizeResponse(chunk=chunk_to_proto(chunk, encoding))

    async def SynthesizeStream(
        self, request_iterator: AsyncIterator[voice_pb2.SynthesizeStreamRequest], context: Context
    ) -> AsyncIterator[voice_pb2.SynthesizeStreamResponse]:
        first, requests = await open_stream(request_iterator)
        settings = self._engine.check(settings_from_proto(first.config))
        encoding = encoding_from_proto(first.config.output_format.encoding, "config.output_format.encoding")
        utterance = _Utterance(self._engine, self._workers, settings)
        buffer = SentenceBuffer(first_clause=settings.first_clause)
        limit = self._engine.options.max_text_chars * STREAM_TEXT_LIMIT_FACTOR

        async def sentences() -> AsyncIterator[str]:
            """Each sentence (or first clause) as soon as the fragments complete it; the rest at the end."""
            received = 0
            async for request in requests:
                received += len(request.fragment.text)
                if received > limit:
                    raise InvalidArgument("fragment.text", f"a stream may carry at most {limit} characters")
                for piece in buffer.add(request.fragment.text) + (
                    buffer.flush() if request.fragment.flush else []
                ):
                    yield piece
            for piece in buffer.flush():
                yield piece

        async for piece in sentences():
            chunk = await utterance.speak(piece)
            yield voice_pb2.SynthesizeStreamResponse(chunk=chunk_to_proto(chunk, encoding))

    async def ListVoices(
        self, request: voice_pb2.ListVoicesRequest, context: Context
    ) -> voice_pb2.ListVoicesResponse:
        return voice_pb2.ListVoicesResponse(
            voices=[
                voice_pb2.VoiceInfo(
                    voice_id=v.voice_id,
                    language=v.language,
                    native_sample_rate_hz=v.sample_rate,
                    num_speakers=v.num_speakers,
                )
                for v in self._engine.voices.values()
            ],
            default_voice_id=self._engine.default_voice,
        )
