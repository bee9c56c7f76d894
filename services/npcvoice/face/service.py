"""How the runtime starts the face service."""

from __future__ import annotations

from typing import Any

import grpc

from npcvoice.api.npc.face.v1 import face_pb2
from npcvoice.runtime.server import Cleanup, Registration

GRPC_SERVICE = face_pb2.DESCRIPTOR.services_by_name["FaceService"].full_name


async def register(server: grpc.aio.Server, options: dict[str, Any]) -> Cleanup | None:
    # The engine arrives with the face service's own issue. Until then no servicer is registered and
    # gRPC answers every call UNIMPLEMENTED; the service still starts, reports health and metrics.
    return None


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
