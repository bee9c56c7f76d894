"""How the runtime starts the voice service."""

from __future__ import annotations

from typing import Any

import grpc

from npcvoice.api.npc.voice.v1 import voice_pb2, voice_pb2_grpc
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.server import Cleanup, Health, Registration
from npcvoice.runtime.workers import WorkerPool
from npcvoice.voice.engine import VoiceEngine
from npcvoice.voice.options import VoiceOptions
from npcvoice.voice.servicer import VoiceServicer

GRPC_SERVICE = voice_pb2.DESCRIPTOR.services_by_name["VoiceService"].full_name


async def register(
    server: grpc.aio.Server, engine_options: dict[str, Any], health: Health, settings: ServerSettings
) -> Cleanup | None:
    options = VoiceOptions(**engine_options)
    engine = VoiceEngine(options)
    engine.load(engine.default_voice)  # load before SERVING, so the first request is not slow
    workers = WorkerPool("piper", options.workers, options.max_waiting)
    voice_pb2_grpc.add_VoiceServiceServicer_to_server(VoiceServicer(engine, workers), server)

    return workers.aclose


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
