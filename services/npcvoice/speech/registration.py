"""How the runtime starts the speech service."""

from __future__ import annotations

from typing import Any

import grpc

from npcvoice.api.npc.speech.v1 import speech_pb2, speech_pb2_grpc
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.server import Cleanup, Health, Registration
from npcvoice.runtime.workers import WorkerPool
from npcvoice.speech.engine import SpeechEngine
from npcvoice.speech.options import SpeechOptions
from npcvoice.speech.servicer import SpeechServicer
from npcvoice.speech.vad import SileroStream

GRPC_SERVICE = speech_pb2.DESCRIPTOR.services_by_name["SpeechService"].full_name


async def register(
    server: grpc.aio.Server, engine_options: dict[str, Any], health: Health, settings: ServerSettings
) -> Cleanup | None:
    options = SpeechOptions(**engine_options)
    engine = SpeechEngine(options)
    SileroStream()  # load the voice-activity model before SERVING
    workers = WorkerPool("whisper", options.workers, options.max_waiting)
    speech_pb2_grpc.add_SpeechServiceServicer_to_server(SpeechServicer(engine, workers), server)

    return workers.aclose


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
