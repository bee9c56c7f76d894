"""How the runtime starts the face service."""

from __future__ import annotations

from typing import Any

import grpc
from pydantic import BaseModel, ConfigDict

from npcvoice.api.npc.face.v1 import face_pb2, face_pb2_grpc
from npcvoice.face.servicer import FaceServicer
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.server import Cleanup, Health, Registration


class FaceOptions(BaseModel):
    """Options of the face service; frame rate and emotion come with each request."""

    model_config = ConfigDict(extra="forbid")


GRPC_SERVICE = face_pb2.DESCRIPTOR.services_by_name["FaceService"].full_name


async def register(
    server: grpc.aio.Server, engine_options: dict[str, Any], health: Health, settings: ServerSettings
) -> Cleanup | None:
    FaceOptions(**engine_options)  # none yet: an unknown option is reported like any other service's
    face_pb2_grpc.add_FaceServiceServicer_to_server(FaceServicer(), server)
    return None


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
