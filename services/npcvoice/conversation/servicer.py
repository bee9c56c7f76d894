"""gRPC adapter of the conversation gateway: translates protobuf to domain calls and back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.memory import Memory, check_id, check_memory
from npcvoice.conversation.session import Session, settings_from_proto
from npcvoice.personas import Persona
from npcvoice.runtime.server import Context
from npcvoice.runtime.streams import open_stream
from npcvoice.turns import Turn


def memory_to_proto(memory: Memory) -> conversation_pb2.MemorySnapshot:
    return conversation_pb2.MemorySnapshot(
        version=memory.version,
        npc_id=memory.npc_id,
        player_id=memory.player_id,
        turns=[
            conversation_pb2.MemoryTurn(role=t.role, text=t.text, interrupted=t.interrupted, time=t.time)
            for t in memory.turns
        ],
        summary=memory.summary,
        player_facts=list(memory.player_facts),
        affinity=memory.affinity,
        trust=memory.trust,
    )


def memory_from_proto(snapshot: conversation_pb2.MemorySnapshot) -> Memory:
    turns = [
        Turn(role=t.role, text=t.text, interrupted=t.interrupted, time=t.time)  # type: ignore[arg-type]
        for t in snapshot.turns
    ]
    return check_memory(
        Memory(
            npc_id=snapshot.npc_id,
            player_id=snapshot.player_id,
            turns=turns,
            summary=snapshot.summary,
            player_facts=list(snapshot.player_facts),
            affinity=snapshot.affinity,
            trust=snapshot.trust,
            version=snapshot.version,
        )
    )


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._personas = gateway.personas
        self._memory = gateway.memory

    def _persona(self, npc_id: str, field_name: str = "npc_id") -> Persona:
        return self._gateway.persona(npc_id, field_name)

    async def ListNpcs(
        self, request: conversation_pb2.ListNpcsRequest, context: Context
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

    async def ExportMemory(
        self, request: conversation_pb2.ExportMemoryRequest, context: Context
    ) -> conversation_pb2.ExportMemoryResponse:
        self._persona(request.npc_id)
        memory = await self._memory.load(request.npc_id, check_id(request.player_id, "player_id"))
        return conversation_pb2.ExportMemoryResponse(snapshot=memory_to_proto(memory))

    async def ImportMemory(
        self, request: conversation_pb2.ImportMemoryRequest, context: Context
    ) -> conversation_pb2.ImportMemoryResponse:
        memory = memory_from_proto(request.snapshot)
        persona = self._persona(memory.npc_id, "snapshot.npc_id")
        await self._memory.replace(memory, self._gateway.ttl_s(persona))
        return conversation_pb2.ImportMemoryResponse()

    async def ResetMemory(
        self, request: conversation_pb2.ResetMemoryRequest, context: Context
    ) -> conversation_pb2.ResetMemoryResponse:
        self._persona(request.npc_id)
        await self._memory.reset(request.npc_id, check_id(request.player_id, "player_id"))
        return conversation_pb2.ResetMemoryResponse()

    async def Converse(
        self, request_iterator: AsyncIterator[conversation_pb2.ConverseRequest], context: Context
    ) -> AsyncIterator[conversation_pb2.ConverseResponse]:
        first, requests = await open_stream(request_iterator)
        settings = settings_from_proto(first.config)
        session = Session(self._gateway, settings)
        yield conversation_pb2.ConverseResponse(started=await session.start())
        reader = asyncio.create_task(session.read(requests))
        try:
            while (event := await session.out.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader  # so the request stream is not being read when gRPC closes it
            await session.interrupt_quietly()
