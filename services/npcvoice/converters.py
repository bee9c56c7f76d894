"""Conversions between the shared audio protos (npc.audio.v1) and domain values, used by every servicer."""

from __future__ import annotations

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.audio import Encoding, check_sample_rate
from npcvoice.runtime.errors import InvalidArgument


def encoding_from_proto(value: int, field: str) -> Encoding:
    """UNSPECIFIED means PCM16, the format game engines play directly."""
    if value in (audio_pb2.AUDIO_ENCODING_UNSPECIFIED, audio_pb2.AUDIO_ENCODING_PCM16):
        return "pcm16"
    if value == audio_pb2.AUDIO_ENCODING_FLOAT32:
        return "float32"
    raise InvalidArgument(
        field, f"unsupported encoding {value}; use AUDIO_ENCODING_PCM16 or AUDIO_ENCODING_FLOAT32"
    )


def encoding_to_proto(encoding: Encoding) -> audio_pb2.AudioEncoding.ValueType:
    return audio_pb2.AUDIO_ENCODING_PCM16 if encoding == "pcm16" else audio_pb2.AUDIO_ENCODING_FLOAT32


def input_format(audio_format: audio_pb2.AudioFormat, field: str) -> tuple[Encoding, int]:
    """Encoding and rate of audio a client sends, checked; ``field`` names the AudioFormat in errors."""
    encoding = encoding_from_proto(audio_format.encoding, f"{field}.encoding")
    check_sample_rate(audio_format.sample_rate_hz, f"{field}.sample_rate_hz")
    return encoding, audio_format.sample_rate_hz
