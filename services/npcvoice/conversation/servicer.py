"""gRPC adapter of the conversation gateway: translates protobuf to domain calls and back."""

from __future__ import annotations

from collections.abc import AsyncIterator

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.conversation import convert
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.memory import Retention, check_id
from npcvoice.conversation.session import Session
from npcvoice.runtime.server import Context
from npcvoice.runtime.streams import open_stream, read_in_background


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._memory = gateway.memory

    async def ListNpcs(
        self, request: conversation_pb2.ListNpcsRequest, context: Context
    ) -> conversation_pb2.ListNpcsResponse:
        return conversation_pb2.ListNpcsResponse(
            npcs=[convert.npc_info(p) for p in self._gateway.personas.all()]
        )

    async def ExportMemory(
        self, request: conversation_pb2.ExportMemoryRequest, context: Context
    ) -> conversation_pb2.ExportMemoryResponse:
        self._gateway.persona(request.npc_id)
        memory = await self._memory.load(request.npc_id, check_id(request.player_id, "player_id"))
        return conversation_pb2.ExportMemoryResponse(snapshot=convert.memory_to_proto(memory))

    async def ImportMemory(
        self, request: conversation_pb2.ImportMemoryRequest, context: Context
    ) -> conversation_pb2.ImportMemoryResponse:
        memory = convert.memory_from_proto(request.snapshot)
        persona = self._gateway.persona(memory.npc_id, "snapshot.npc_id")
        await self._memory.replace(memory, Retention.of(persona.memory).ttl_s)
        return conversation_pb2.ImportMemoryResponse()

    async def ResetMemory(
        self, request: conversation_pb2.ResetMemoryRequest, context: Context
    ) -> conversation_pb2.ResetMemoryResponse:
        self._gateway.persona(request.npc_id)
        await self._memory.reset(request.npc_id, check_id(request.player_id, "player_id"))
        return conversation_pb2.ResetMemoryResponse()

    async def Converse(
        self, request_iterator: AsyncIterator[conversation_pb2.ConverseRequest], context: Context
    ) -> AsyncIterator[conversation_pb2.ConverseResponse]:
        first, requests = await open_stream(request_iterator)
        session = Session(self._gateway, convert.config_from_proto(first.config))
        yield await session.start()
        try:
            async with read_in_background(session.read(requests), session.out) as events:
                async for event in events:
                    yield event
        finally:
            await session.interrupt_quietly()
