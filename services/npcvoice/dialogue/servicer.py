"""gRPC adapter of the dialogue service: protobuf in (see ``convert``), domain calls, protobuf out.

A reply's steps (prompt chunks, then one token each) go through the worker pool one at a time, so
replies being generated at once interleave token by token and none waits for another to finish. At most
``max_active`` replies are in progress; more get RESOURCE_EXHAUSTED at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.dialogue.convert import (
    event_to_proto,
    request_from_proto,
    summary_request_from_proto,
    summary_response_to_proto,
    summary_to_proto,
)
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.runtime.errors import ResourceExhausted, ServiceError
from npcvoice.runtime.server import Context
from npcvoice.runtime.workers import WorkerPool

log = logging.getLogger("npcvoice.dialogue")


class DialogueServicer(dialogue_pb2_grpc.DialogueServiceServicer):
    def __init__(self, engine: DialogueEngine, workers: WorkerPool) -> None:
        self._engine = engine
        self._workers = workers
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()

    def warm(self, persona_id: str) -> None:
        """Prefill ``persona_id``'s fixed prompt in the background (interleaved with replies)."""
        try:
            job = self._engine.begin_warm(persona_id)
        except ServiceError as error:
            log.warning("cannot prepare persona %s ahead: %s", persona_id, error.message)
            return
        if job is None:
            return

        async def run() -> None:
            try:
                while True:
                    await self._idle.wait()  # background work: only while no reply or summary runs
                    if await self._workers.run(job.step):
                        break
            except (ResourceExhausted, asyncio.CancelledError):
                self._engine.warm_done(job.key)  # the service is busy or stopping: not an error
            except Exception:
                self._engine.warm_done(job.key)
                log.exception("prefilling persona %s ahead failed", persona_id)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Stop the background work (prefilling personas ahead) before the worker pool goes."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._workers.aclose()

    def _admit(self) -> None:
        limit = self._engine.options.max_active
        if self._active >= limit:
            raise ResourceExhausted(f"{limit} replies and summaries are being generated; retry later")
        self._active += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._active -= 1
        if not self._active:
            self._idle.set()

    async def Generate(
        self, request: dialogue_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[dialogue_pb2.GenerateResponse]:
        generation = self._engine.begin(request_from_proto(request))
        self._admit()
        try:
            while not await self._workers.run(generation.prefill_step):
                pass
            while not generation.done:
                for event in await self._workers.run(generation.decode_step):
                    yield event_to_proto(event)
            yield summary_to_proto(generation.summary())
        finally:
            self._leave()
            generation.close()
            self.warm(generation.persona.id)  # the next new conversation with this NPC starts fast

    async def Summarize(
        self, request: dialogue_pb2.SummarizeRequest, context: Context
    ) -> dialogue_pb2.SummarizeResponse:
        summarize = summary_request_from_proto(request)
        job = self._engine.begin_summary(summarize.persona_id, summarize.previous_summary, summarize.turns)
        self._admit()
        try:
            while not await self._workers.run(job.step):
                pass
        finally:
            self._leave()
        return summary_response_to_proto(*job.result())
