"""Conversions between the voice service's protos and its domain values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.voice.v1 import voice_pb2
from npcvoice.audio import Encoding, encode
from npcvoice.converters import encoding_to_proto
from npcvoice.voice.engine import SpeechChunk, SynthesisSettings, VoiceFile
from npcvoice.voice.utterance import Fragment


def settings_from_proto(config: voice_pb2.SynthesisConfig) -> SynthesisSettings:
    voice = config.voice
    return SynthesisSettings(
        voice_id=voice.voice_id,
        speaker_id=voice.speaker_id,
        speed=voice.speed if voice.HasField("speed") else 1.0,
        variation=voice.variation if voice.HasField("variation") else None,
        volume=voice.volume if voice.HasField("volume") else 1.0,
        pitch_semitones=voice.pitch_semitones,
        sample_rate=config.output_format.sample_rate_hz,
        first_clause=config.split_mode == voice_pb2.SPLIT_MODE_FIRST_CLAUSE,
    )


async def fragments_from_proto(
    requests: AsyncIterator[voice_pb2.SynthesizeStreamRequest],
) -> AsyncIterator[Fragment]:
    async for request in requests:
        yield Fragment(request.fragment.text, request.fragment.flush)


def chunk_to_proto(chunk: SpeechChunk, encoding: Encoding) -> voice_pb2.AudioChunk:
    return voice_pb2.AudioChunk(
        audio=encode(chunk.audio, encoding),
        format=audio_pb2.AudioFormat(encoding=encoding_to_proto(encoding), sample_rate_hz=chunk.sample_rate),
        start_sample=chunk.start_sample,
        num_samples=chunk.num_samples,
        phonemes=[
            audio_pb2.PhonemeTiming(phoneme=p.phoneme, start_sample=p.start_sample, num_samples=p.num_samples)
            for p in chunk.phonemes
        ],
        text=chunk.text,
        sentence_index=chunk.sentence_index,
    )


def voices_to_proto(voices: Iterable[VoiceFile], default_voice_id: str) -> voice_pb2.ListVoicesResponse:
    return voice_pb2.ListVoicesResponse(
        voices=[
            voice_pb2.VoiceInfo(
                voice_id=v.voice_id,
                language=v.language,
                native_sample_rate_hz=v.sample_rate,
                num_speakers=v.num_speakers,
            )
            for v in voices
        ],
        default_voice_id=default_voice_id,
    )
