"""How the runtime starts the face service."""

from __future__ import annotations

from typing import Any

import grpc

from npcvoice.api.npc.face.v1 import face_pb2, face_pb2_grpc
from npcvoice.face.servicer import FaceServicer
from npcvoice.runtime.server import Cleanup, Registration

GRPC_SERVICE = face_pb2.DESCRIPTOR.services_by_name["FaceService"].full_name


async def register(server: grpc.aio.Server, options: dict[str, Any]) -> Cleanup | None:
    if options:
        raise ValueError(f"the face service takes no engine options, got {sorted(options)}")
    face_pb2_grpc.add_FaceServiceServicer_to_server(FaceServicer(), server)
    return None


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
