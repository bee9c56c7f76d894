"""What every conversation on this gateway shares: personas, the downstream services, and memory that
survives Redis going away.

A finished turn is acknowledged to the game (TurnEnd) only once its memory write is either in Redis or in
the gateway's replay queue (``replay``). While Redis is away, turns go on from each session's own copy of
the memory, the health name ``MEMORY_HEALTH`` reports NOT_SERVING, and the queue is written back, in
order, as soon as Redis answers again. Older turns are folded into a summary by the dialogue model in
the background, never on a turn's path.
"""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health_pb2

from npcvoice.conversation import convert
from npcvoice.conversation.downstream import Downstream
from npcvoice.conversation.memory import Memory, MemoryStore, Retention, TurnRecord, check_id
from npcvoice.conversation.options import GatewayOptions
from npcvoice.conversation.replay import ReplayQueue
from npcvoice.personas import Persona, PersonaStore
from npcvoice.runtime.channels import InternalCredentials
from npcvoice.runtime.errors import NotFound, ServiceError, Unavailable
from npcvoice.runtime.server import Health

log = logging.getLogger("npcvoice.conversation")

MEMORY_HEALTH = "npcvoice.conversation.memory"


class Gateway:
    def __init__(
        self,
        options: GatewayOptions,
        personas: PersonaStore,
        memory: MemoryStore,
        health: Health | None,
        credentials: InternalCredentials | None = None,
    ) -> None:
        self.options = options
        self.personas = personas
        self.memory = memory
        self.downstream = Downstream(options, credentials)
        self._health = health
        self.replay = ReplayQueue(
            memory,
            self.retention,
            limit=options.max_pending_turns,
            spool_file=options.spool_file,
            retry_interval_s=options.replay_interval_s,
            write_timeout_s=options.memory_timeout_s,
            on_degraded=self._degraded,
        )
        self._summarizing: dict[str, asyncio.Task[None]] = {}  # conversation -> its summary being written
        self._background: set[asyncio.Task[None]] = set()

    def persona(self, npc_id: str, field_name: str = "npc_id") -> Persona:
        persona = self.personas.get(check_id(npc_id, field_name))
        if persona is None:
            raise NotFound("NPC", npc_id, [p.id for p in self.personas.all()])
        return persona

    def retention(self, npc_id: str) -> Retention:
        """How much the NPC keeps of a player (the defaults if its persona is gone)."""
        persona = self.personas.get(npc_id)
        return Retention.of(persona.memory if persona else None)

    # --- memory ------------------------------------------------------------------------------------------

    async def load_memory(self, npc_id: str, player_id: str) -> Memory | None:
        """The stored memory, with any queued writes flushed first; None while Redis is away. With
        ``settle_summaries``, once a summary of the conversation still being written is done."""
        summary = self._summarizing.get(f"{npc_id}:{player_id}")
        if summary is not None and self.options.settle_summaries:
            await asyncio.wait({summary}, timeout=self.options.summary_timeout_s)
        try:
            async with asyncio.timeout(self.options.memory_timeout_s):
                await self.replay.flush()
                if len(self.replay):
                    return None
                return await self.memory.load(npc_id, player_id)
        except (Unavailable, TimeoutError) as error:
            log.warning("memory of %s/%s not readable, going on without Redis: %s", npc_id, player_id, error)
            return None

    async def record(self, record: TurnRecord, persona: Persona) -> None:
        """Store a finished turn, or queue it for replay; either way it is not lost once this returns."""
        if await self.replay.add(record):
            self._summarize_later(persona, record.player_id)

    async def _degraded(self, degraded: bool) -> None:
        if self._health is not None:
            status = (
                health_pb2.HealthCheckResponse.NOT_SERVING
                if degraded
                else health_pb2.HealthCheckResponse.SERVING
            )
            await self._health.set(MEMORY_HEALTH, status)

    async def start(self) -> None:
        await self._degraded(False)
        await self.replay.restore()

    # --- summaries, off the hot path ---------------------------------------------------------------------

    def _summarize_later(self, persona: Persona, player_id: str) -> None:
        key = f"{persona.id}:{player_id}"
        if key in self._summarizing:
            return
        task = asyncio.create_task(self._summarize(persona, player_id))
        self._summarizing[key] = task
        self._background.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._background.discard(finished)
            self._summarizing.pop(key, None)

        task.add_done_callback(done)

    async def _summarize(self, persona: Persona, player_id: str) -> None:
        """Fold the turns beyond the persona's ``summarize_after`` into the summary."""
        try:
            memory = await self.memory.load(persona.id, player_id)
            if len(memory.turns) <= persona.memory.summarize_after:
                return
            folded = memory.turns[: len(memory.turns) - persona.memory.recent_turns]
            response = await self.downstream.summarize(
                convert.summarize_request(persona, memory.summary, folded)
            )
            # The facts the summary lists were stored with each turn already (the same rule finds them), and
            # adding them again would bring back those the fact limit dropped.
            await self.memory.fold_summary(
                persona.id, player_id, len(folded), response.summary, Retention.of(persona.memory)
            )
            log.info("summarized %d old turns of %s/%s", len(folded), persona.id, player_id)
        except ServiceError as error:
            log.warning("summary of %s/%s postponed: %s", persona.id, player_id, error.message)

    async def aclose(self) -> None:
        self.replay.cancel()
        for task in self._background:
            task.cancel()
        await self.downstream.aclose()
