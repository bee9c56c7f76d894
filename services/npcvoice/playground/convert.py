"""The gateway's protobuf messages as the page's JSON, and back."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.api.npc.face.v1 import face_pb2
from npcvoice.runtime.errors import InvalidArgument

# The order of OVR weights in a frame sent to the page (the page's mouth table uses the same order).
OVR_VISEMES = ("sil", "pp", "ff", "th", "dd", "kk", "ch", "ss", "nn", "rr", "aa", "e", "ih", "oh", "ou")
# The browser captures the microphone at this rate (its AudioWorklet resamples to it).
INPUT_RATE = 16000


def to_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def session_config(npc_id: str, player_id: str, player_name: str) -> conversation_pb2.ConverseRequest:
    """Voice replies as PCM16 at the voice's own rate (Web Audio plays any rate), OVR visemes only,
    microphone audio as PCM16 at 16 kHz, interim transcripts to show while the writer talks."""
    pcm16 = audio_pb2.AUDIO_ENCODING_PCM16
    config = conversation_pb2.ConverseConfig(
        npc_id=npc_id,
        player_id=player_id,
        player_name=player_name,
        reply_mode=conversation_pb2.REPLY_MODE_VOICE,
        input_audio=audio_pb2.AudioFormat(encoding=pcm16, sample_rate_hz=INPUT_RATE),
        output_audio=audio_pb2.AudioFormat(encoding=pcm16),
        visemes=conversation_pb2.VisemeOptions(frame_set=face_pb2.FRAME_SET_OVR),
        interim_transcripts=True,
    )
    return conversation_pb2.ConverseRequest(config=config)


def browser_request(message: Any) -> conversation_pb2.ConverseRequest:
    """A JSON message from the page (text, end of speech, playback position) as a Converse request."""
    if not isinstance(message, dict):
        raise InvalidArgument("message", "must be a JSON object with a type")
    kind = message.get("type")
    if kind == "text":
        return conversation_pb2.ConverseRequest(text=str(message.get("text", "")))
    if kind == "end_of_speech":
        return conversation_pb2.ConverseRequest(end_of_speech=conversation_pb2.EndOfSpeech())
    if kind == "playback":
        position = conversation_pb2.PlaybackPosition(
            turn_index=int(message.get("turn_index", 0)), played_samples=int(message.get("played_samples", 0))
        )
        return conversation_pb2.ConverseRequest(playback=position)
    raise InvalidArgument("type", f"unknown message type {kind!r} (text, end_of_speech, playback)")


def gateway_event(response: conversation_pb2.ConverseResponse) -> tuple[dict[str, Any], bytes | None]:
    """One event for the page, and the PCM16 audio that follows it as a binary message (audio only)."""
    kind = response.WhichOneof("event")
    if kind is None:
        return {"type": "unknown"}, None  # an event newer than this playground: the page ignores it
    if kind != "audio":
        return {"type": kind, **to_dict(getattr(response, kind))}, None
    chunk = response.audio
    frames = [
        {"t": frame.time_seconds, "w": [round(getattr(frame.ovr, name), 3) for name in OVR_VISEMES]}
        for frame in chunk.visemes
    ]
    event = {
        "type": "audio",
        "turn_index": chunk.turn_index,
        "sentence_index": chunk.sentence_index,
        "sample_rate": chunk.format.sample_rate_hz,
        "start_sample": chunk.start_sample,
        "num_samples": chunk.num_samples,
        "text": chunk.text,
        "frames": frames,
    }
    return event, chunk.audio


def snapshot_to_dict(snapshot: conversation_pb2.MemorySnapshot) -> dict[str, Any]:
    return to_dict(snapshot)


def snapshot_from_dict(data: Any) -> conversation_pb2.MemorySnapshot:
    """A snapshot the writer imports (an exported file, maybe edited by hand); the gateway validates it."""
    if not isinstance(data, dict):
        raise InvalidArgument("snapshot", "must be a JSON object, as the export writes it")
    try:
        return ParseDict(data, conversation_pb2.MemorySnapshot())
    except ParseError as error:
        raise InvalidArgument("snapshot", str(error)) from error
