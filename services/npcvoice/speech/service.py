"""How the runtime starts the speech service."""

from __future__ import annotations

from typing import Any

import grpc

from npcvoice.api.npc.speech.v1 import speech_pb2
from npcvoice.runtime.server import Cleanup, Registration

GRPC_SERVICE = speech_pb2.DESCRIPTOR.services_by_name["SpeechService"].full_name


async def register(server: grpc.aio.Server, options: dict[str, Any]) -> Cleanup | None:
    # The engine arrives with the speech service's own issue. Until then no servicer is registered and
    # gRPC answers every call UNIMPLEMENTED; the service still starts, reports health and metrics.
    return None


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
