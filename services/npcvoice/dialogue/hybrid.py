"""Hybrid dialogue: the small local model answers first, and a larger model behind the OpenAI protocol
takes the turns it cannot handle (a persona's ``dialogue.escalate``), or every turn of a persona whose
model is a remote one.

When a turn is hard is decided before any audio, from what the service has:

- at once, from the player's line: a topic the writer listed (``escalate_topics``) or a long, multi-part
  line ("long": two questions or more, or over ``LONG_LINE_WORDS`` words); ``always`` escalates every turn;
- at the small model's opening clause (the first piece the voice would speak), which is held while it is
  judged: a lore question whose matching lore line has no word in it ("lore"), a question about what the
  player told the NPC whose answering words are not in it ("memory"), or the model's confidence in its
  first words under ``escalate_below`` ("unsure").

The wait is covered: the player hears the small model's opening clause, in character, at the small model's
usual time, and the larger model is asked to go on from it. When escalation is known at once, the larger
model is asked straight away as well; if its first sentence comes before the small model's opening, it
answers alone. Its text goes through the same filter as the small model's (tags, hygiene, secrets,
recitation, repeats). If it fails (timeout, connection, status, its circuit breaker open, nothing usable)
before any of its sentences is out, the small model goes on with its own reply, which was only paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import replace

from npcvoice.dialogue.address import mender
from npcvoice.dialogue.engine import DialogueEngine, check_turn
from npcvoice.dialogue.generation import Generation
from npcvoice.dialogue.lore import called_up
from npcvoice.dialogue.metrics import ESCALATIONS, REMOTE_TOKENS_PER_TURN
from npcvoice.dialogue.prompt import LABELS, Message, build_messages
from npcvoice.dialogue.recall import asks_about_the_player, content_stems, remembered
from npcvoice.dialogue.remote import RemoteFailure, RemoteModel, Spent
from npcvoice.dialogue.repetition import scaffolding_phrases
from npcvoice.dialogue.reply import Action, ReplyEvent, ReplyFilter, Sentence
from npcvoice.dialogue.steering import earlier_lines, player_statements
from npcvoice.dialogue.types import FINISH_STOP, GenerationSummary, ReplyOutput, TurnRequest
from npcvoice.personas.schema import DEFAULT_MAX_SENTENCES, Persona

LONG_LINE_WORDS = 35
_QUESTION = re.compile(
    r"\?|^\s*(what|where|who|whom|whose|when|why|how|which|tell me|do|does|did|is|are|was|were|can|could|"
    r"have|has|will|would)\b",
    re.IGNORECASE,
)
CONTINUE = (
    'You have already begun your reply, aloud: "{cover}" Go on from there: write only what comes next, '
    "without repeating it."
)
# What a model asked to go on may echo of that request (a small one does): never said.
CONTINUE_PHRASES = ("begun your reply", "go on from there", "what comes next", "without repeating it")

LocalReply = Callable[[Generation], AsyncGenerator[ReplyOutput, None]]


def early_reasons(persona: Persona, request: TurnRequest) -> list[str]:
    """Why the turn goes to the larger model, as far as the player's line alone tells."""
    d, line = persona.dialogue, request.player_text
    if d.escalate == "always":
        return ["always"]
    reasons = []
    lowered = line.lower()
    if any(re.search(rf"\b{re.escape(topic.lower())}\b", lowered) for topic in d.escalate_topics):
        reasons.append("topic")
    if line.count("?") >= 2 or len(line.split()) > LONG_LINE_WORDS:
        reasons.append("long")
    return reasons


def draft_reasons(persona: Persona, request: TurnRequest, opening: str, confidence: float) -> list[str]:
    """Why the turn goes to the larger model, judging the small model's ``opening`` clause (and its
    ``confidence`` in it) against the player's line."""
    line = request.player_text
    said = content_stems(opening)
    asked = content_stems(line) | content_stems(persona.display_name)
    reasons = []
    lore = [entry.text for entry in called_up(persona, line)] if _QUESTION.search(line) else []
    if lore:
        answers = set().union(*map(content_stems, lore)) - asked
        if answers and not said & answers:
            reasons.append("lore")
    if asks_about_the_player(line):
        answers = {
            w.lower()[:5] for w in remembered(line, player_statements(request), persona.display_name).words
        }
        if answers and not said & answers:
            reasons.append("memory")
    if confidence < persona.dialogue.escalate_below:
        reasons.append("unsure")
    return reasons


def remote_messages(
    persona: Persona, request: TurnRequest, budget_chars: int, cover: str = ""
) -> list[Message]:
    """The same prompt a local model gets (persona, lore, memory, context), every rule spelled out, fitted
    to ``budget_chars``; with ``cover``, asking the model to go on from that opening."""

    def count(messages: list[Message]) -> int:
        return sum(len(m["content"]) for m in messages)

    messages = build_messages(
        persona,
        request.memory,
        request.player_text,
        count,
        budget_chars,
        request.player_name,
        cue=request.cue,
        style="full",
    )
    if cover:
        last = messages[-1]
        messages[-1] = {**last, "content": last["content"] + "\n\n" + CONTINUE.format(cover=cover)}
    return messages


class RemoteReply:
    """A remote model's reply in progress, streamed through a reply filter in a task of its own. Its
    events are queued as they come; ``ready`` is set at its first sentence, its end or its failure."""

    def __init__(
        self,
        remote: RemoteModel,
        persona: Persona,
        request: TurnRequest,
        messages: list[Message],
        filter: ReplyFilter,
        spent: Spent,
    ) -> None:
        self.remote = remote
        self.filter = filter
        self.failure: RemoteFailure | None = None
        self.sentences = 0
        self.first_sentence_at: float | None = None
        self.ready = asyncio.Event()
        self._queue: asyncio.Queue[ReplyEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(persona, request, messages, spent))

    @property
    def answered(self) -> bool:
        """Whether a sentence of it is out (it answers; a later failure only ends the reply early)."""
        return self.sentences > 0

    async def events(self) -> AsyncIterator[ReplyEvent]:
        while (event := await self._queue.get()) is not None:
            yield event

    async def cancel(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(
        self, persona: Persona, request: TurnRequest, messages: list[Message], spent: Spent
    ) -> None:
        d, options = persona.dialogue, self.remote.options
        temperature = options.temperature
        if temperature is None:
            temperature = request.sampling.temperature
        if temperature is None:
            temperature = 0.7 if d.temperature is None else d.temperature
        seed = request.sampling.seed if request.sampling.seed is not None else d.seed
        try:
            async with aclosing(
                self.remote.stream(
                    messages,
                    temperature,
                    d.top_p if request.sampling.top_p is None else request.sampling.top_p,
                    d.max_tokens if request.sampling.max_tokens is None else request.sampling.max_tokens,
                    seed,
                    request.sampling.stop,
                    spent,
                )
            ) as texts:
                full = False
                async for text in texts:
                    self._put(self.filter.feed(text))
                    if self.sentences >= (d.max_sentences or DEFAULT_MAX_SENTENCES):
                        full = True
                        break
            if not full:
                self._put(self.filter.finish())
            if not self.sentences:
                self.failure = RemoteFailure("empty", f"{self.remote.model_id} said nothing usable")
        except RemoteFailure as failure:
            self.failure = failure
        finally:
            self.ready.set()
            self._queue.put_nowait(None)

    def _put(self, events: list[ReplyEvent]) -> None:
        for event in events:
            self._queue.put_nowait(event)
            if isinstance(event, Sentence):
                self.sentences += 1
                if self.first_sentence_at is None:
                    self.first_sentence_at = time.perf_counter()
                self.ready.set()


async def _until_piece(local: AsyncGenerator[ReplyOutput, None]) -> list[ReplyOutput]:
    """The local reply's outputs up to its first piece (or its end), the rest left in ``local``."""
    held: list[ReplyOutput] = []
    async for output in local:
        held.append(output)
        if isinstance(output, Sentence | GenerationSummary):
            break
    return held


async def _stop(task: asyncio.Future[list[ReplyOutput]]) -> None:
    """Cancel ``task`` and wait until it has stopped (the local reply it reads is then free again)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class HybridTurn:
    """One turn of a persona that may be answered by a larger model (see the module's docstring)."""

    def __init__(
        self,
        engine: DialogueEngine,
        local_reply: LocalReply,
        request: TurnRequest,
        persona: Persona,
        remote: RemoteModel,
    ) -> None:
        self._engine, self._local_reply = engine, local_reply
        self._request, self._persona, self._remote = request, persona, remote
        self._spent = Spent()
        self._started = time.perf_counter()
        self._reasons: list[str] = []
        self._failure = ""
        self._replies: list[RemoteReply] = []

    async def run(self) -> AsyncGenerator[ReplyOutput, None]:
        check_turn(self._request, self._engine.options)
        try:
            if self._persona.dialogue.model == self._remote.model_id:
                stream = self._remote_first()
            else:
                stream = self._local_first()
            async with aclosing(stream) as outputs:
                async for output in outputs:
                    yield output
        finally:
            for reply in self._replies:
                await reply.cancel()
            if self._replies:
                REMOTE_TOKENS_PER_TURN.labels(self._remote.model_id).observe(self._spent.tokens)

    def _ask(self, filter: ReplyFilter, cover: str = "") -> RemoteReply:
        budget = self._remote.options.context_chars
        messages = remote_messages(self._persona, self._request, budget, cover)
        reply = RemoteReply(self._remote, self._persona, self._request, messages, filter, self._spent)
        self._replies.append(reply)
        return reply

    def _fresh_filter(self) -> ReplyFilter:
        persona, request = self._persona, self._request
        return ReplyFilter(
            persona,
            request.first_clause,
            earlier_lines(persona, request),
            scaffolding_phrases(persona, LABELS),
            mender(persona, request),
        )

    def _escalated(self, reasons: list[str]) -> None:
        self._reasons = reasons
        for reason in reasons:
            ESCALATIONS.labels(self._persona.id, reason).inc()

    async def _remote_first(self) -> AsyncGenerator[ReplyOutput, None]:
        """A persona whose model is the remote one: it answers; if it cannot, the small model does."""
        self._escalated(["remote"])
        reply = self._ask(self._fresh_filter())
        await reply.ready.wait()
        if reply.answered:
            async for output in self._answer(reply):
                yield output
            return
        self._failure = reply.failure.reason if reply.failure else "empty"
        async for output in self._local(self._engine.begin(self._request)):
            yield output

    async def _local_first(self) -> AsyncGenerator[ReplyOutput, None]:
        request = self._request
        early = early_reasons(self._persona, request)
        ahead = self._ask(self._fresh_filter()) if early and self._remote.options.race else None
        # The opening comes as its own piece: it is what covers the wait.
        generation = self._engine.begin(replace(request, first_clause=True))
        local = self._local_reply(generation)
        async with aclosing(local):
            opening = asyncio.ensure_future(_until_piece(local))
            try:
                if ahead is not None:
                    answered = asyncio.ensure_future(ahead.ready.wait())
                    await asyncio.wait({opening, answered}, return_when=asyncio.FIRST_COMPLETED)
                    answered.cancel()
                    if ahead.answered:  # the larger model's first sentence came before the opening
                        await _stop(opening)
                        self._escalated(early)
                        async for output in self._answer(ahead):
                            yield output
                        return
                held = await opening
            finally:
                await _stop(opening)  # (done by then, unless this turn is being cancelled)
            piece = next((o for o in held if isinstance(o, Sentence)), None)
            reasons = early
            if piece is not None and not reasons:
                reasons = draft_reasons(self._persona, request, piece.text, generation.confidence())
            if piece is None or not reasons:  # the small model answers (or has already finished)
                if ahead is not None:
                    await ahead.cancel()
                for output in held:
                    yield output
                async for output in local:
                    yield output
                return
            self._escalated(reasons)
            if ahead is not None:
                await ahead.cancel()
            for output in held:  # the opening; its actions are the larger model's to decide
                if not isinstance(output, Action):
                    yield output
            going_on = self._ask(generation.filter.continuation(CONTINUE_PHRASES), cover=piece.text)
            await going_on.ready.wait()
            if going_on.answered:
                await local.aclose()
                async for output in self._answer(going_on):
                    yield output
                return
            self._failure = going_on.failure.reason if going_on.failure else "empty"
            async for output in local:  # the small model goes on with its own reply
                yield self._annotated(output)

    async def _local(self, generation: Generation) -> AsyncGenerator[ReplyOutput, None]:
        async with aclosing(self._local_reply(generation)) as outputs:
            async for output in outputs:
                yield self._annotated(output)

    def _annotated(self, output: ReplyOutput) -> ReplyOutput:
        if not isinstance(output, GenerationSummary):
            return output
        return replace(
            output,
            escalation=tuple(self._reasons),
            remote_tokens=self._spent.tokens,
            remote_failure=self._failure,
        )

    async def _answer(self, reply: RemoteReply) -> AsyncGenerator[ReplyOutput, None]:
        async for event in reply.events():
            yield event
        now = time.perf_counter()
        first = reply.first_sentence_at or now
        yield GenerationSummary(
            text=reply.filter.text,
            finish_reason=FINISH_STOP,
            prompt_tokens=0,
            cached_prompt_tokens=0,
            completion_tokens=0,
            time_to_first_token_s=first - self._started,
            total_s=now - self._started,
            decode_tokens_per_s=0.0,
            dropped_events=reply.filter.dropped_events,
            execution_provider="remote",
            answered_by=reply.remote.model_id,
            escalation=tuple(self._reasons),
            remote_tokens=self._spent.tokens,
            remote_failure=reply.failure.reason if reply.failure else "",
        )
