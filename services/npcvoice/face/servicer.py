"""gRPC adapter of the face service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio

from npcvoice.api.npc.face.v1 import face_pb2, face_pb2_grpc
from npcvoice.converters import input_format
from npcvoice.face.audio_mode import animate_clip
from npcvoice.face.convert import animation_to_proto, phonemes_from_proto
from npcvoice.face.engine import Animation, animate_track, check_emotion, check_frame_rate
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.runtime.server import Context


def animate_request(request: face_pb2.AnimateRequest) -> Animation:
    frame_rate = check_frame_rate(request.frame_rate)
    emotion, intensity = check_emotion(
        request.emotion, request.emotion_intensity if request.HasField("emotion_intensity") else None
    )
    source = request.WhichOneof("source")
    if source == "phonemes":
        track = request.phonemes
        return animate_track(phonemes_from_proto(track), track.sample_rate_hz, frame_rate, emotion, intensity)
    if source == "audio":
        encoding, rate = input_format(request.audio.format, "audio.format")
        return animate_clip(request.audio.audio, encoding, rate, frame_rate, emotion, intensity)
    raise InvalidArgument("source", "give either phonemes or audio")


class FaceServicer(face_pb2_grpc.FaceServiceServicer):
    async def Animate(self, request: face_pb2.AnimateRequest, context: Context) -> face_pb2.AnimateResponse:
        # Milliseconds of numpy for a sentence; long clips go to a thread so the loop stays responsive.
        animation = await asyncio.to_thread(animate_request, request)
        return animation_to_proto(animation, request.frame_set)
