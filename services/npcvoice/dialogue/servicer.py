"""gRPC adapter of the dialogue service: protobuf in, domain calls, protobuf out.

A reply's steps (prompt chunks, then one token each) go through the worker pool one at a time, so
replies being generated at once interleave token by token and none waits for another to finish. At most
``max_active`` replies are in progress; more get RESOURCE_EXHAUSTED at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import Action, Emotion, ReplyEvent, Sentence, TextDelta
from npcvoice.dialogue.types import FINISH_LENGTH, GenerationSummary, SamplingOverrides, TurnRequest
from npcvoice.runtime.errors import InvalidArgument, ResourceExhausted, ServiceError
from npcvoice.runtime.server import Context
from npcvoice.runtime.workers import WorkerPool
from npcvoice.turns import Role, Turn

log = logging.getLogger("npcvoice.dialogue")

MAX_SUMMARIZE_TURNS = 200


def _role(value: int, field: str) -> Role:
    if value == dialogue_pb2.ROLE_PLAYER:
        return "player"
    if value == dialogue_pb2.ROLE_NPC:
        return "npc"
    raise InvalidArgument(field, "must be ROLE_PLAYER or ROLE_NPC")


def turns_from_proto(turns: list[dialogue_pb2.Turn], field: str) -> list[Turn]:
    return [Turn(_role(t.role, f"{field}[{i}].role"), t.text, t.interrupted) for i, t in enumerate(turns)]


def request_from_proto(request: dialogue_pb2.GenerateRequest) -> TurnRequest:
    memory, sampling = request.memory, request.sampling

    return TurnRequest(
        persona_id=request.persona_id,
        player_text=request.player_text,
        conversation_id=request.conversation_id,
        memory=MemoryView(
            recent_turns=turns_from_proto(list(memory.recent_turns), "memory.recent_turns"),
            summary=memory.summary,
            player_facts=list(memory.player_facts),
            affinity=memory.relationship.affinity,
            trust=memory.relationship.trust,
        ),
        sampling=SamplingOverrides(
            temperature=sampling.temperature if sampling.HasField("temperature") else None,
            top_p=sampling.top_p if sampling.HasField("top_p") else None,
            top_k=sampling.top_k if sampling.HasField("top_k") else None,
            repetition_penalty=sampling.repetition_penalty
            if sampling.HasField("repetition_penalty")
            else None,
            max_tokens=sampling.max_tokens if sampling.HasField("max_tokens") else None,
            seed=sampling.seed if sampling.HasField("seed") else None,
            stop=tuple(sampling.stop),
        ),
        player_name=request.player_name,
        first_clause=request.first_clause,
    )


def event_to_proto(event: ReplyEvent) -> dialogue_pb2.GenerateResponse:
    if isinstance(event, TextDelta):
        return dialogue_pb2.GenerateResponse(delta=dialogue_pb2.TextDelta(text=event.text))
    if isinstance(event, Sentence):
        return dialogue_pb2.GenerateResponse(
            sentence=dialogue_pb2.Sentence(index=event.index, text=event.text)
        )
    if isinstance(event, Emotion):
        return dialogue_pb2.GenerateResponse(
            emotion=dialogue_pb2.EmotionEvent(emotion=event.emotion, intensity=event.intensity)
        )
    assert isinstance(event, Action)
    return dialogue_pb2.GenerateResponse(
        action=dialogue_pb2.ActionEvent(name=event.name, parameters=event.parameters)
    )


def summary_to_proto(summary: GenerationSummary) -> dialogue_pb2.GenerateResponse:
    return dialogue_pb2.GenerateResponse(
        summary=dialogue_pb2.GenerationSummary(
            text=summary.text,
            finish_reason=dialogue_pb2.FINISH_REASON_LENGTH
            if summary.finish_reason == FINISH_LENGTH
            else dialogue_pb2.FINISH_REASON_STOP,
            prompt_tokens=summary.prompt_tokens,
            cached_prompt_tokens=summary.cached_prompt_tokens,
            completion_tokens=summary.completion_tokens,
            time_to_first_token_seconds=summary.time_to_first_token_s,
            total_seconds=summary.total_s,
            decode_tokens_per_second=summary.decode_tokens_per_s,
            dropped_events=summary.dropped_events,
            execution_provider=summary.execution_provider,
        )
    )


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
        if not request.turns:
            raise InvalidArgument("turns", "must hold at least one turn")
        if len(request.turns) > MAX_SUMMARIZE_TURNS:
            raise InvalidArgument("turns", f"at most {MAX_SUMMARIZE_TURNS} turns")
        turns = turns_from_proto(list(request.turns), "turns")
        job = self._engine.begin_summary(request.persona_id, request.previous_summary, turns)
        self._admit()
        try:
            while not await self._workers.run(job.step):
                pass
        finally:
            self._leave()
        summary, facts = job.result()
        return dialogue_pb2.SummarizeResponse(summary=summary, player_facts=facts)
