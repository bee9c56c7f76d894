"""When the dialogue's model work runs: replies, summaries and personas prefilled ahead, on one worker pool.

A reply's steps (prompt chunks, then one token each) go through the worker pool one at a time, so
replies being generated at once interleave token by token and none waits for another to finish. At most
``max_active`` replies (and as many summaries, counted apart) are in progress; more get RESOURCE_EXHAUSTED
at once: on an overloaded machine a clear "busy, try again" beats every reply slowing down until the
gateway's deadline fails them (8 conversations replying at once on a loaded 2-core machine had turns past
60 s). Prefilling a persona's prompt ahead is background work: it steps only while no reply or summary runs.

What the player hears first comes first. A summary (for memory, never urgent) steps only while no reply
is being generated. And once a reply's first piece is out, its decoding waits a moment, in proportion to
the piece's length, while the voice synthesizes that piece on the same cores: the rest of the reply is
needed only once the first piece has played, a second or more later. With several replies at once, the
steps of a reply whose first piece is not out yet go first in the worker pool: the replies already being
spoken are ahead of their playback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator
from contextlib import aclosing

from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.generation import Generation
from npcvoice.dialogue.hybrid import HybridTurn
from npcvoice.dialogue.reply import ReplyEvent, Sentence
from npcvoice.dialogue.types import GenerationSummary, ReplyOutput, SummaryRequest, TurnRequest
from npcvoice.runtime.errors import InvalidArgument, ResourceExhausted, ServiceError
from npcvoice.runtime.workers import WorkerPool

log = logging.getLogger("npcvoice.dialogue")
# piper needs about 5 ms per character of text on two cores of this CPU class (80 ms for a clause of 15)
CPU_YIELD_MS_PER_CHAR = 6.0
MAX_YIELD_MS = 500.0
SUMMARY_MAX_WAIT_S = 1.0  # longest a summary's step waits for the replies in progress to end
# Priorities of the steps in the worker pool, lowest first (see runtime.workers).
FIRST_PIECE = 0  # a reply whose first piece is not out yet: the player is waiting in silence
SPEAKING = 1  # a reply already being spoken: it only needs to stay ahead of playback
BACKGROUND = 2  # a summary; a prompt prefilled while the player is still speaking
WARM = 3  # a persona's fixed prompt prefilled for the next new conversation
FIRST_PIECE_BURST = 8  # most tokens one call decodes for a reply waiting for its first piece


def burst(generation: Generation) -> list[ReplyEvent]:
    """Decode steps of a reply waiting for its first piece, in one worker call, up to the first event:
    between two calls the freed worker would go to a reply already speaking, one token each time."""
    for _ in range(FIRST_PIECE_BURST):
        events = generation.decode_step()
        if events or generation.done:
            return events
    return []


ACTIVE_PER_CORE = 2
ACTIVE_ON_GPU = 16


def admission_limit(max_active: int, device: str, threads: int) -> int:
    """Replies in progress at once (and summaries): ``max_active``, or for 0 one that fits the device."""
    if max_active:
        return max_active
    if device == "cuda":
        return ACTIVE_ON_GPU
    return ACTIVE_PER_CORE * (threads or len(os.sched_getaffinity(0)))


class DialogueScheduler:
    def __init__(self, engine: DialogueEngine) -> None:
        self._engine = engine
        options = engine.options
        self._limit = admission_limit(options.max_active, engine.device, options.threads)
        # Every active reply or summary has at most one step waiting, and so has each persona being
        # prefilled ahead, so the pool's queue does not refuse a reply that was admitted.
        max_waiting = self._limit + len(engine.personas.all()) + 8
        self._workers = WorkerPool("dialogue", options.workers, max_waiting)
        self._active = 0
        self._idle = asyncio.Event()  # no reply nor summary in progress
        self._idle.set()
        self._replies = 0
        self._no_replies = asyncio.Event()
        self._no_replies.set()
        self._background: set[asyncio.Task[None]] = set()
        self._prefills: dict[str, Generation] = {}  # prefills ahead in progress, by conversation

    async def generate(self, request: TurnRequest) -> AsyncGenerator[ReplyOutput, None]:
        """The reply's events as they are decoded, then its summary. A persona whose model is a remote
        one, or that escalates to one, is answered by a ``HybridTurn``."""
        remote = self._engine.remote_for(request)
        if remote is None:
            replies = self.local_reply(self._engine.begin(request))
        else:
            persona = self._engine.persona(request.persona_id)
            replies = HybridTurn(self._engine, self.local_reply, request, persona, remote).run()
        async with aclosing(replies) as outputs:
            async for output in outputs:
                yield output

    async def local_reply(self, generation: Generation) -> AsyncGenerator[ReplyOutput, None]:
        """``generation``'s events as the local model decodes them, then its summary."""
        request = generation.request
        self._stop_prefill(request.conversation_id)  # the reply replaces it (and takes what it prefilled)
        self._admit()
        self._replies += 1
        self._no_replies.clear()
        try:
            # Until its first piece is out, a reply's steps go before those of replies being spoken.
            urgent = FIRST_PIECE if self._engine.options.first_piece_priority else SPEAKING
            while not await self._workers.run_at(urgent, generation.prefill_step):
                pass
            first_piece = True
            while not generation.done:
                events: list[ReplyEvent]
                if first_piece and urgent == FIRST_PIECE:
                    events = await self._workers.run_at(FIRST_PIECE, burst, generation)
                else:
                    events = await self._workers.run_at(SPEAKING, generation.decode_step)
                for event in events:
                    yield event
                piece = next((e for e in events if isinstance(e, Sentence)), None)
                if piece is not None and first_piece:
                    first_piece = False
                    await asyncio.sleep(self._yield_s(piece.text))
            yield generation.summary()
        finally:
            self._replies -= 1
            if not self._replies:
                self._no_replies.set()
            self._leave()
            generation.close()
            self.warm(generation.persona.id)  # the next new conversation with this NPC starts fast

    async def prefill(self, request: TurnRequest) -> GenerationSummary:
        """Prefill ``request``'s prompt into its conversation's cache without generating (the player is
        still speaking: ``player_text`` is their line so far). Background work: it never holds a reply
        up for more than one small chunk, and a newer prefill or a reply of the conversation stops it."""
        if not request.conversation_id:
            raise InvalidArgument("conversation_id", "must be set to prefill (the cache is per conversation)")
        generation = self._engine.begin(request)
        self._stop_prefill(request.conversation_id)
        self._prefills[request.conversation_id] = generation
        try:
            while not generation.closed and not await self._workers.run_as(
                "prefill ahead", BACKGROUND, generation.prefill_step
            ):
                pass
            return generation.summary()
        finally:
            if self._prefills.get(request.conversation_id) is generation:
                del self._prefills[request.conversation_id]
            generation.close()

    def _stop_prefill(self, conversation_id: str) -> None:
        stale = self._prefills.pop(conversation_id, None) if conversation_id else None
        if stale is not None:
            stale.close()  # what it prefilled so far goes back to the cache after its step in flight

    async def summarize(self, request: SummaryRequest) -> tuple[str, list[str]]:
        """The summary (the earlier one extended) and the facts the player told."""
        job = self._engine.begin_summary(request.persona_id, request.previous_summary, request.turns)
        self._admit(summary=True)
        try:
            while True:
                # A turn's reply goes first; under a steady stream of replies the summary still takes a
                # step now and then, so that it ends.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._no_replies.wait(), SUMMARY_MAX_WAIT_S)
                if await self._workers.run_as("summary", BACKGROUND, job.step):
                    break
        finally:
            self._leave()
        return job.result()

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
                    if await self._workers.run_as("warm", WARM, job.step):
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

    def _yield_s(self, piece: str) -> float:
        """How long a reply's decoding waits after its first piece (``piece``) is out."""
        per_char = self._engine.options.first_piece_yield_ms_per_char
        if per_char < 0:
            per_char = 0.0 if self._engine.device == "cuda" else CPU_YIELD_MS_PER_CHAR
        return min(per_char * len(piece), MAX_YIELD_MS) / 1000

    def _admit(self, summary: bool = False) -> None:
        # Replies and summaries are counted apart: a summary (never urgent) never takes a reply's place.
        running, kind = (self._active - self._replies, "summaries") if summary else (self._replies, "replies")
        if running >= self._limit:
            raise ResourceExhausted(f"{self._limit} {kind} are being generated; retry later")
        self._active += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._active -= 1
        if not self._active:
            self._idle.set()
