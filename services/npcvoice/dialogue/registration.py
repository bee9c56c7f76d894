"""How the runtime starts the dialogue service."""

from __future__ import annotations

from typing import Any

import grpc

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DEFAULT_MODEL_ID, DialogueOptions
from npcvoice.dialogue.scheduler import DialogueScheduler
from npcvoice.dialogue.servicer import DialogueServicer
from npcvoice.runtime.asgi import start_asgi
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.errors import NotFound
from npcvoice.runtime.server import Cleanup, Health, Registration

GRPC_SERVICE = dialogue_pb2.DESCRIPTOR.services_by_name["DialogueService"].full_name


async def register(
    server: grpc.aio.Server, engine_options: dict[str, Any], health: Health, settings: ServerSettings
) -> Cleanup | None:
    options = DialogueOptions(**engine_options)
    engine = DialogueEngine(options)
    try:
        engine.model(DEFAULT_MODEL_ID)  # load before SERVING, so the first request is not slow
    except NotFound as missing:
        raise RuntimeError(
            f"the dialogue model is not prepared: {DEFAULT_MODEL_ID} is not in {options.models_dir}. Run "
            f"`./dev prepare-model` (or `npcvoice prepare-model --models-dir {options.models_dir}`) once."
        ) from missing
    scheduler = DialogueScheduler(engine)
    dialogue_pb2_grpc.add_DialogueServiceServicer_to_server(DialogueServicer(scheduler), server)
    if options.prewarm:
        for persona in engine.personas.all():
            scheduler.warm(persona.id)
    stop_endpoint = await serve_openai(scheduler, engine, options, settings) if options.openai_port else None

    async def cleanup() -> None:
        if stop_endpoint is not None:
            await stop_endpoint()
        await scheduler.aclose()
        await engine.aclose()  # the remote models' connections

    return cleanup


async def serve_openai(
    scheduler: DialogueScheduler, engine: DialogueEngine, options: DialogueOptions, settings: ServerSettings
) -> Cleanup:
    """The OpenAI-compatible endpoint (see ``openai_api``) under uvicorn in this event loop, with the
    service's API keys and TLS certificate; returns what stops it."""
    from npcvoice.dialogue.openai_api import create_app

    app = create_app(scheduler, engine.personas, settings.api_keys)
    tls = settings.tls_cert_file and settings.tls_key_file
    return await start_asgi(
        app,
        options.openai_host,
        options.openai_port,
        lifespan="off",
        ssl_certfile=str(settings.tls_cert_file) if tls else None,
        ssl_keyfile=str(settings.tls_key_file) if tls else None,
    )


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
