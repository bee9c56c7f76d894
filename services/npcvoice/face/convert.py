"""Conversions between the face service's protos and its domain values."""

from __future__ import annotations

from npcvoice.api.npc.face.v1 import face_pb2
from npcvoice.face.engine import ARKIT_SHAPES, Animation
from npcvoice.face.visemes import OVR_VISEMES, Phoneme

_OVR_FIELDS = [v.lower() for v in OVR_VISEMES]
_VISEME_ENUM = {v: face_pb2.Viseme.Value(f"VISEME_{v.upper()}") for v in OVR_VISEMES}


def phonemes_from_proto(track: face_pb2.PhonemeTrack) -> list[Phoneme]:
    return [Phoneme(p.phoneme, p.start_sample, p.num_samples) for p in track.phonemes]


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
