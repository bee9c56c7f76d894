"""gRPC adapter of the conversation gateway: translates protobuf to domain calls and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.personas import PersonaStore


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, personas: PersonaStore) -> None:
        self._personas = personas

    async def ListNpcs(
        self, request: conversation_pb2.ListNpcsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> conversation_pb2.ListNpcsResponse:
        return conversation_pb2.ListNpcsResponse(
            npcs=[
                conversation_pb2.NpcInfo(
                    npc_id=p.id,
                    display_name=p.display_name,
                    description=p.description,
                    voice_id=p.voice.voice_id,
                )
                for p in self._personas.all()
            ]
        )

    # The gateway's turn pipeline and Redis memory come with the conversation gateway's own issue; until
    # then these answer UNIMPLEMENTED through the runtime.
    def Converse(
        self,
        request_iterator: AsyncIterator[conversation_pb2.ConverseRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[conversation_pb2.ConverseResponse]:
        raise NotImplementedError

    async def ExportMemory(
        self, request: conversation_pb2.ExportMemoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> conversation_pb2.ExportMemoryResponse:
        raise NotImplementedError

    async def ImportMemory(
        self, request: conversation_pb2.ImportMemoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> conversation_pb2.ImportMemoryResponse:
        raise NotImplementedError

    async def ResetMemory(
        self, request: conversation_pb2.ResetMemoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> conversation_pb2.ResetMemoryResponse:
        raise NotImplementedError
