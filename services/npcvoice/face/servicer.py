"""gRPC adapter of the face service: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio

import numpy as np

from npcvoice.api.npc.face.v1 import face_pb2, face_pb2_grpc
from npcvoice.audio import check_sample_rate, decode
from npcvoice.converters import input_format
from npcvoice.face.audio_mode import animate_audio
from npcvoice.face.engine import (
    ARKIT_SHAPES,
    Animation,
    animate_phonemes,
    check_emotion,
    check_frame_rate,
)
from npcvoice.face.visemes import OVR_VISEMES, Phoneme
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.runtime.server import Context

MAX_PHONEMES = 20_000
MAX_SECONDS = 600.0
_OVR_FIELDS = [v.lower() for v in OVR_VISEMES]
_VISEME_ENUM = {v: face_pb2.Viseme.Value(f"VISEME_{v.upper()}") for v in OVR_VISEMES}


def phonemes_from_proto(track: face_pb2.PhonemeTrack) -> list[Phoneme]:
    if len(track.phonemes) > MAX_PHONEMES:
        raise InvalidArgument(
            "phonemes.phonemes", f"at most {MAX_PHONEMES} phonemes, got {len(track.phonemes)}"
        )
    check_sample_rate(track.sample_rate_hz, "phonemes.sample_rate_hz")
    phonemes: list[Phoneme] = []
    expected_start = track.phonemes[0].start_sample if track.phonemes else 0
    for index, p in enumerate(track.phonemes):
        where = f"phonemes.phonemes[{index}]"
        if p.num_samples < 0 or p.start_sample < 0:
            raise InvalidArgument(where, "start_sample and num_samples must not be negative")
        if p.start_sample != expected_start:
            raise InvalidArgument(
                where,
                f"start_sample {p.start_sample} leaves a gap or overlap; expected {expected_start} "
                "(phonemes must tile the audio in order)",
            )
        expected_start = p.start_sample + p.num_samples
        phonemes.append(Phoneme(p.phoneme, p.start_sample, p.num_samples))
    if expected_start / track.sample_rate_hz > MAX_SECONDS:
        raise InvalidArgument("phonemes", f"at most {MAX_SECONDS:.0f} s of audio per request")
    return phonemes


def animation_to_proto(animation: Animation, frame_set: int) -> face_pb2.AnimateResponse:
    want_ovr = frame_set in (face_pb2.FRAME_SET_UNSPECIFIED, face_pb2.FRAME_SET_OVR, face_pb2.FRAME_SET_BOTH)
    want_arkit = frame_set in (
        face_pb2.FRAME_SET_UNSPECIFIED,
        face_pb2.FRAME_SET_ARKIT,
        face_pb2.FRAME_SET_BOTH,
    )
    frames = []
    for index in range(animation.num_frames):
        frame = face_pb2.VisemeFrame(index=index, time_seconds=index / animation.frame_rate)
        if want_ovr:
            frame.ovr.CopyFrom(
                face_pb2.OvrVisemeWeights(
                    **dict(zip(_OVR_FIELDS, map(float, animation.ovr[index]), strict=True))
                )
            )
        if want_arkit:
            frame.arkit.CopyFrom(
                face_pb2.ArkitMouthWeights(
                    **dict(zip(ARKIT_SHAPES, map(float, animation.arkit[index]), strict=True))
                )
            )
        frames.append(frame)
    return face_pb2.AnimateResponse(
        frame_rate=animation.frame_rate,
        frames=frames,
        events=[
            face_pb2.VisemeEvent(
                viseme=_VISEME_ENUM[e.viseme], start_seconds=e.start_s, duration_seconds=e.duration_s
            )
            for e in animation.events
        ],
        duration_seconds=animation.duration_s,
    )


def animate_request(request: face_pb2.AnimateRequest) -> Animation:
    frame_rate = check_frame_rate(request.frame_rate)
    emotion, intensity = check_emotion(
        request.emotion, request.emotion_intensity if request.HasField("emotion_intensity") else None
    )
    source = request.WhichOneof("source")
    if source == "phonemes":
        phonemes = phonemes_from_proto(request.phonemes)
        origin = phonemes[0].start if phonemes else 0
        relative = [Phoneme(p.symbol, p.start - origin, p.length) for p in phonemes]
        return animate_phonemes(relative, request.phonemes.sample_rate_hz, frame_rate, emotion, intensity)
    if source == "audio":
        clip = request.audio
        encoding, rate = input_format(clip.format, "audio.format")
        samples = decode(clip.audio, encoding, "audio.audio")
        if len(samples) == 0:
            raise InvalidArgument("audio.audio", "is empty")
        if len(samples) / rate > MAX_SECONDS:
            raise InvalidArgument("audio.audio", f"at most {MAX_SECONDS:.0f} s of audio per request")
        return animate_audio(np.asarray(samples), rate, frame_rate, emotion, intensity)
    raise InvalidArgument("source", "give either phonemes or audio")


class FaceServicer(face_pb2_grpc.FaceServiceServicer):
    async def Animate(self, request: face_pb2.AnimateRequest, context: Context) -> face_pb2.AnimateResponse:
        # Milliseconds of numpy for a sentence; long clips go to a thread so the loop stays responsive.
        animation = await asyncio.to_thread(animate_request, request)
        return animation_to_proto(animation, request.frame_set)
