"""One reply: its prompt prefilled in chunks, then its tokens decoded one per step.

Second turns are fast because a conversation keeps its generator (and so its KV cache) between turns:
the new prompt is compared token by token with what the generator already holds, the generator is
rewound to the first difference and only the rest is prefilled. Past turns are written into the prompt
exactly as they were the first time (the player's line with the context it came with, the NPC's raw
output with its tags), so the shared prefix reaches the newest line. Tokens are picked here from the
logits (see ``sampling``), which lets every turn bring its own sampling settings to a reused generator.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from npcvoice.dialogue.cache import Conversation
from npcvoice.dialogue.metrics import (
    COMPLETION_TOKENS,
    DROPPED_EVENTS,
    FIRST_TOKEN,
    PROMPT_TOKENS,
    WARM_PREFIXES,
)
from npcvoice.dialogue.model import LoadedModel
from npcvoice.dialogue.prompt import Message, build_messages
from npcvoice.dialogue.reply import ReplyEvent, ReplyFilter
from npcvoice.dialogue.sampling import Sampler, SamplingSettings, StopMatcher
from npcvoice.dialogue.types import FINISH_LENGTH, FINISH_STOP, GenerationSummary, TurnRequest
from npcvoice.personas.schema import Persona

if TYPE_CHECKING:
    from npcvoice.dialogue.engine import DialogueEngine


def prefill(generator: Any, pending: list[int], size: int, held: list[int] | None = None) -> list[int]:
    """Run the first ``size`` tokens of ``pending`` through ``generator`` (and note them in ``held``, the
    generator's token list); returns the tokens still to prefill. One chunk per worker step keeps a long
    prompt from holding the worker while other replies wait."""
    chunk = pending[:size]
    generator.append_tokens(chunk)
    if held is not None:
        held.extend(chunk)
    return pending[size:]


def new_conversation(model: LoadedModel, key: str, max_length: int) -> Conversation:
    """A conversation on a fresh generator that holds up to ``max_length`` tokens (counted in its size)."""
    return Conversation(
        key=key,
        model_id=model.model_id,
        generator=model.new_generator(max_length),
        max_length=max_length,
        nbytes=max_length * model.bytes_per_token,
    )


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Generation:
    """One reply. ``prefill_step`` until it returns True, then ``decode_step`` until ``done``; ``close``.

    Steps run in worker threads, one at a time. ``close`` may come from another thread while a step is
    still running (a cancelled call): the conversation is handed back when that step ends.
    """

    def __init__(
        self,
        engine: DialogueEngine,
        model: LoadedModel,
        persona: Persona,
        request: TurnRequest,
        sampling: SamplingSettings,
    ) -> None:
        self._engine = engine
        self._model = model
        self.persona = persona
        self.request = request
        self.sampling = sampling
        self.filter = ReplyFilter(persona, request.first_clause)
        # A first clause released on its own counts as a piece of the first sentence, not a sentence.
        self._max_pieces = persona.dialogue.max_sentences + (1 if request.first_clause else 0)
        self._sampler = Sampler(sampling)
        self._stop = StopMatcher(sampling.stop)
        self._stream = model.tokenizer.create_stream()
        self._conversation: Conversation | None = None
        self._keep = bool(request.conversation_id)  # whether the conversation goes back to the cache
        self._pending: list[int] = []
        self._messages: list[Message] = []
        self._reply_tokens: list[int] = []
        self._raw = ""
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self.started = time.perf_counter()
        self._first_token_at: float | None = None
        self.finish_reason = ""
        self._state = threading.Lock()
        self._in_flight = False
        self._closed = False
        self._released = False

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)

    def prefill_step(self) -> bool:
        """Prefill the next chunk of the prompt; True when the whole prompt is in."""
        return bool(self._guarded(self._prefill_step))

    def decode_step(self) -> list[ReplyEvent]:
        """Pick one token and return the events it completes (often none)."""
        return self._guarded(self._decode_step) or []

    def close(self) -> None:
        with self._state:
            self._closed = True
            if not self._in_flight:
                self._release()

    def summary(self) -> GenerationSummary:
        now = time.perf_counter()
        first = self._first_token_at or now
        decode_s = now - first
        tokens = len(self._reply_tokens)
        return GenerationSummary(
            text=self.filter.text,
            finish_reason=self.finish_reason or FINISH_STOP,
            prompt_tokens=self._prompt_tokens,
            cached_prompt_tokens=self._cached_tokens,
            completion_tokens=tokens,
            time_to_first_token_s=first - self.started,
            total_s=now - self.started,
            decode_tokens_per_s=(tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else 0.0,
            dropped_events=self.filter.dropped_events,
            execution_provider=self._model.provider,
        )

    # --- in worker threads ---------------------------------------------------------------------------

    def _guarded(self, step: Callable[[], Any]) -> Any:
        with self._state:
            if self._closed:
                return None
            self._in_flight = True
        try:
            return step()
        except BaseException:
            self._keep = False  # the generator's state is unknown now
            raise
        finally:
            with self._state:
                self._in_flight = False
                if self._closed:
                    self._release()

    def _prefill_step(self) -> bool:
        if self._conversation is None:
            self._start()
        conversation = self._conversation
        assert conversation is not None
        size = self._engine.options.prefill_chunk
        self._pending = prefill(conversation.generator, self._pending, size, conversation.tokens)
        return not self._pending

    def _start(self) -> None:
        """Build the prompt and find how much of it the conversation's generator already holds."""
        engine, model, key = self._engine, self._model, self.request.conversation_id
        conversation = engine.cache.get(key) if key else None
        if conversation is not None and not conversation.busy.acquire(timeout=engine.options.cache_wait_s):
            conversation, self._keep = None, False  # the previous turn still holds it: start afresh
        if conversation is None:  # a new conversation: start from the persona's prefilled prompt if ready
            conversation = engine.cache.take(engine.warm_key(model, self.persona))
            if conversation is not None:
                conversation.key = key
                conversation.busy.acquire()
                WARM_PREFIXES.labels("taken", self.persona.id).inc()
        limit = min(engine.options.context_tokens, model.context_length)
        max_tokens = self.sampling.max_tokens
        tokenized: dict[str, list[int]] = {}

        def count(messages: list[Message]) -> int:
            # The last prompt counted is the one returned: keep its ids rather than tokenize it twice.
            key = json.dumps(messages)
            if key not in tokenized:
                tokenized.clear()
                tokenized[key] = model.prompt_ids(messages)
            return len(tokenized[key])

        self._messages = build_messages(
            self.persona,
            self.request.memory,
            self.request.line,
            count,
            limit - max_tokens,
            self.request.player_name,
            rendered=conversation.rendered if conversation is not None else None,
        )
        ids = tokenized.get(json.dumps(self._messages)) or model.prompt_ids(self._messages)
        self._prompt_tokens = len(ids)
        shared = 0
        fits = conversation is not None and len(ids) + max_tokens <= conversation.max_length
        if conversation is not None and fits and conversation.model_id == model.model_id:
            shared = min(common_prefix(conversation.tokens, ids), len(ids) - 1)
        if shared > 0 and conversation is not None:
            if shared < len(conversation.tokens):
                conversation.generator.rewind_to(shared)
                del conversation.tokens[shared:]
        else:
            if conversation is not None:
                engine.cache.discard(key, conversation)
                conversation.busy.release()
            # A conversation that will come back gets the whole context at once: a later turn that
            # outgrew a smaller buffer would need a new generator and a full prefill.
            max_length = limit if key else min(limit, len(ids) + max_tokens)
            conversation = new_conversation(model, key, max_length)
            conversation.busy.acquire()
        self._conversation = conversation
        self._cached_tokens = shared
        self._pending = ids[shared:]
        PROMPT_TOKENS.labels("cached").inc(shared)
        PROMPT_TOKENS.labels("prefilled").inc(len(self._pending))

    def _decode_step(self) -> list[ReplyEvent]:
        conversation = self._conversation
        assert conversation is not None and not self._pending
        token = self._sampler.pick(conversation.generator.get_logits()[0, -1], self._reply_tokens)
        if self._first_token_at is None:
            self._first_token_at = time.perf_counter()
            FIRST_TOKEN.labels(str(self._cached_tokens > 0).lower()).observe(
                self._first_token_at - self.started
            )
        if token in self._model.end_ids:
            return self._finish(FINISH_STOP, "")
        self._reply_tokens.append(token)
        COMPLETION_TOKENS.inc()
        released = self._stop.feed(self._stream.decode(token))
        self._raw += released
        if self._stop.stopped:
            return self._finish(FINISH_STOP, released)
        if (
            len(self._reply_tokens) >= self.sampling.max_tokens
            or len(conversation.tokens) + 1 >= conversation.max_length
        ):
            return self._finish(FINISH_LENGTH, released)
        conversation.generator.append_tokens([token])
        conversation.tokens.append(token)
        events = self.filter.feed(released)
        if self.filter.sentences >= self._max_pieces:
            self.finish_reason = FINISH_STOP
            self._remember()
        return events

    def _finish(self, reason: str, released: str) -> list[ReplyEvent]:
        self.finish_reason = reason
        tail = self._stop.flush()
        self._raw += tail
        events = self.filter.feed(released + tail) + self.filter.finish(complete_only=reason == FINISH_LENGTH)
        DROPPED_EVENTS.inc(self.filter.dropped_events)
        self._remember()
        return events

    def _remember(self) -> None:
        """Record how this turn's lines were written, for the next prompt to repeat them exactly."""
        conversation = self._conversation
        if conversation is None:
            return
        rendered: dict[tuple[str, str], str] = {}
        history = self._messages[1:-1]
        turns = self.request.memory.recent_turns[-len(history) :] if history else []
        for turn, message in zip(turns, history, strict=False):
            rendered[(turn.role, turn.text)] = message["content"]
        if self.request.player_text.strip():
            rendered[("player", self.request.player_text)] = self._messages[-1]["content"]
        if self.filter.text:
            raw = self._raw.strip()
            end = max(raw.rfind(mark) for mark in ".!?")
            if self.finish_reason == FINISH_LENGTH or self.filter.sentences >= self._max_pieces:
                raw = raw[: end + 1] if end > 0 else raw  # the unfinished sentence was never said
            rendered[("npc", self.filter.text)] = raw
        conversation.rendered = rendered

    def _release(self) -> None:
        """Hand the conversation back (to the cache if it is still sound). Called once, under _state."""
        if self._released:
            return
        self._released = True
        conversation = self._conversation
        if conversation is None:
            return
        key = self.request.conversation_id
        if self._keep and key:
            self._engine.cache.put(conversation)
        elif key:
            self._engine.cache.discard(key, conversation)
        conversation.busy.release()
        self._engine.cache.trim()
