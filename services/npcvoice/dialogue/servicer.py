"""gRPC adapter of the dialogue service: protobuf in, a call to the scheduler, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.dialogue.convert import (
    output_to_proto,
    request_from_proto,
    summary_request_from_proto,
    summary_response_to_proto,
)
from npcvoice.dialogue.scheduler import DialogueScheduler
from npcvoice.runtime.server import Context


class DialogueServicer(dialogue_pb2_grpc.DialogueServiceServicer):
    def __init__(self, scheduler: DialogueScheduler) -> None:
        self._scheduler = scheduler

    async def Generate(
        self, request: dialogue_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[dialogue_pb2.GenerateResponse]:
        turn = request_from_proto(request)
        if turn.prefill_only:
            yield output_to_proto(await self._scheduler.prefill(turn))
            return
        # aclosing: a call that ends early (cancelled) lets go of the reply at once, not when collected.
        async with aclosing(self._scheduler.generate(turn)) as outputs:
            async for output in outputs:
                yield output_to_proto(output)

    async def Summarize(
        self, request: dialogue_pb2.SummarizeRequest, context: Context
    ) -> dialogue_pb2.SummarizeResponse:
        summary, player_facts = await self._scheduler.summarize(summary_request_from_proto(request))
        return summary_response_to_proto(summary, player_facts)
