"""How the runtime starts the conversation gateway."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from redis.exceptions import RedisClusterException, RedisError

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.memory import MemoryStore
from npcvoice.conversation.options import GatewayOptions
from npcvoice.conversation.redis_urls import memory_client
from npcvoice.conversation.servicer import ConversationServicer
from npcvoice.personas import PersonaStore
from npcvoice.redis_server import without_password
from npcvoice.runtime.channels import InternalCredentials
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.server import Cleanup, Health, Registration

GRPC_SERVICE = conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name

log = logging.getLogger("npcvoice.conversation")


async def register(
    server: grpc.aio.Server, engine_options: dict[str, Any], health: Health, settings: ServerSettings
) -> Cleanup | None:
    options = GatewayOptions(**engine_options)
    personas = PersonaStore(options.persona_dir)
    log.info("%d personas in %s", len(personas.all()), options.persona_dir)
    memory = memory_client(options.redis_url)
    where = without_password(options.redis_url)
    try:
        await memory.ping()
        log.info("memory store reachable at %s", where)
    except (RedisError, RedisClusterException) as exc:
        log.warning("memory store at %s not reachable yet: %s", where, exc)
    credentials = InternalCredentials.from_settings(settings)
    gateway = Gateway(options, personas, MemoryStore(memory), health, credentials)
    log.info("calls to the other services: %s", credentials.describe())
    await gateway.start()
    conversation_pb2_grpc.add_ConversationServiceServicer_to_server(ConversationServicer(gateway), server)

    async def close() -> None:
        await gateway.aclose()
        await memory.aclose()

    return close


REGISTRATION = Registration(grpc_service=GRPC_SERVICE, register=register)
