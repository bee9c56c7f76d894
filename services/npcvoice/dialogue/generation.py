"""One reply: its prompt prefilled in chunks, then its tokens decoded one per step.

Second turns are fast because a conversation keeps its generator (and so its KV cache) between turns:
the new prompt is compared token by token with what the generator already holds, the generator is
rewound to the first difference and only the rest is prefilled. Past turns are written into the prompt
exactly as they were the first time (the player's line with the context it came with, the NPC's raw
output with its tags), so the shared prefix reaches the newest line. Tokens are picked here from the
logits (see ``sampling``), which lets every turn bring its own sampling settings to a reused generator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from copy import copy
from typing import Any

import numpy as np

from npcvoice.dialogue.address import mender
from npcvoice.dialogue.aids import aid_set
from npcvoice.dialogue.cache import Conversation, prefill
from npcvoice.dialogue.jobs import WARM_CHUNK
from npcvoice.dialogue.metrics import (
    COMPLETION_TOKENS,
    DROPPED_EVENTS,
    FALLBACK_REPLIES,
    FIRST_TOKEN,
    RETRIED_SENTENCES,
)
from npcvoice.dialogue.model import LoadedModel
from npcvoice.dialogue.parts import EngineParts
from npcvoice.dialogue.prompt import Message
from npcvoice.dialogue.reply import ReplyEvent, ReplyFilter, Sentence
from npcvoice.dialogue.reuse import open_prompt, rendered_turns
from npcvoice.dialogue.sampling import Sampler, SamplingSettings, StopMatcher
from npcvoice.dialogue.steering import MAX_RETRIES, Mark, Steering, fallback_line
from npcvoice.dialogue.types import FINISH_LENGTH, FINISH_STOP, GenerationSummary, TurnRequest
from npcvoice.personas.schema import Persona
from npcvoice.text import ends_clause

# Replies a cached conversation remembers having said, beyond the request's turns.
MAX_SAID = 100
# The reply's first chosen tokens whose probabilities make its confidence (dialogue.escalate: hard).
CONFIDENCE_TOKENS = 12


class Generation:
    """One reply. ``prefill_step`` until it returns True, then ``decode_step`` until ``done``; ``close``.

    Steps run in worker threads, one at a time. ``close`` may come from another thread while a step is
    still running (a cancelled call): the conversation is handed back when that step ends.
    """

    def __init__(
        self,
        engine: EngineParts,
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
        chosen = engine.options.aids
        aids = model.aids if chosen is None else aid_set(chosen)
        prior = engine.emotion_priors.get(engine.warm_key(model, persona))
        # The pieces the reply may have: its sentences, one more if the first is a clause alone.
        self._max_pieces = persona.dialogue.max_sentences or model.max_sentences
        if self._max_pieces != 1:  # a reply of several sentences goes on past its first clause
            aids = aids - {"one_clause"}
        self._steer = Steering(engine.vocabulary(model), persona, request, model.end_ids, aids, prior)
        steer, mend = self._steer, mender(persona, request)
        self.filter = ReplyFilter(persona, request.first_clause, steer.earlier, steer.phrases, mend)
        self._checkpoint: Mark | None = None  # where the sentence being written began
        self._retries = 0
        self._repeats = 0  # the filter's count of repeats when last looked at
        self._sampler = Sampler(sampling)
        self._stop = StopMatcher(sampling.stop)
        self._stream = model.tokenizer.create_stream()
        self._conversation: Conversation | None = None
        self._keep = bool(request.conversation_id)  # whether the conversation goes back to the cache
        self._pending: list[int] = []
        self._held: list[int] = []  # tokens chosen but not yet run through the model (see _decode_step)
        self._messages: list[Message] = []
        self._reply_tokens: list[int] = []
        self._log_probs: list[float] = []  # of the first chosen tokens, under the model's own distribution
        self._raw = ""
        self._lead = ""  # the text of the reply's opening, prefilled with the prompt, not yet released
        self._opening = 0  # its tokens
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

    @property
    def closed(self) -> bool:
        return self._closed

    def prefill_step(self) -> bool:
        """Prefill the next chunk of the prompt; True when the whole prompt is in."""
        return bool(self._guarded(self._prefill_step))

    def decode_step(self) -> list[ReplyEvent]:
        """Pick one token and return the events it completes (often none)."""
        return self._guarded(self._decode_step) or []

    def confidence(self) -> float:
        """How sure the model was of its first words: the geometric mean of the probabilities it gave the
        tokens it chose (the tags' fixed text not counted), before any aid moved them; 1 before any."""
        return float(np.exp(np.mean(self._log_probs))) if self._log_probs else 1.0

    @property
    def action_chance(self) -> float | None:
        """The probability the model gave taking an action, where it was offered one to choose; else None."""
        return self._steer.tags.action_chance

    def close(self) -> None:
        with self._state:
            self._closed = True
            if not self._in_flight:
                self._release()

    def summary(self) -> GenerationSummary:
        now = time.perf_counter()
        first = self._first_token_at or now
        decode_s = now - first
        tokens = len(self._reply_tokens) - self._opening  # the reply's opening was prefilled, not decoded
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
            answered_by=self._model.model_id,
            confidence=self.confidence(),
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
        if self._conversation is None and not self._start():
            self.finish_reason = FINISH_STOP  # a prefill ahead with nothing to do
            return True
        conversation = self._conversation
        assert conversation is not None
        size = self._engine.options.prefill_chunk
        if self.request.prefill_only:  # small chunks: a reply that arrives meanwhile waits for one at most
            size = min(size, WARM_CHUNK)
        self._pending = prefill(conversation.generator, self._pending, size, conversation.tokens)
        if not self._pending and self.request.prefill_only:
            self.finish_reason = FINISH_STOP  # nothing to generate; nothing to remember either
        return not self._pending

    def _start(self) -> bool:
        """Build the prompt and take the conversation (see ``reuse``); False for a prefill ahead that is
        skipped: a reply of the same conversation holds it."""
        opened = open_prompt(self._engine, self._model, self.persona, self.request, self.sampling.max_tokens)
        if opened is None:
            return False
        self._conversation, self._keep = opened.conversation, self._keep and opened.keep
        self._messages, self._pending = opened.messages, opened.pending
        self._prompt_tokens, self._cached_tokens = opened.prompt_tokens, opened.cached_tokens
        self.filter.also_said(opened.conversation.said)
        if not self.request.prefill_only:
            # The reply's fixed opening ("[emotion:") goes in with the prompt: no decoding step for it.
            self._reply_tokens = self._steer.forced(self.sampling.max_tokens - 1)
            self._lead = "".join(self._stream.decode(token) for token in self._reply_tokens)
            self._opening = len(self._reply_tokens)
            self._pending += self._reply_tokens
        return True

    def _decode_step(self) -> list[ReplyEvent]:
        conversation = self._conversation
        assert conversation is not None and not self._pending
        self._feed_held()
        logits = conversation.generator.get_logits()[0, -1]
        # The reply may end once it said something and its last sentence is finished.
        may_end = bool(self.filter.text) and self._raw.rstrip()[-1:] in (".", "!", "?", '"', "'")
        if len(self._log_probs) < CONFIDENCE_TOKENS:
            raw = np.array(logits, copy=True)  # the aids may change the logits in place
            top = float(raw.max())
            normalizer = top + float(np.log(np.exp(raw - top).sum(dtype=np.float64)))  # float32 exp: 0.3 ms
        token = self._steer.choose(self._sampler, logits, self._reply_tokens, may_end)
        if len(self._log_probs) < CONFIDENCE_TOKENS:
            self._log_probs.append(float(raw[token] - normalizer))
        if self._first_token_at is None:
            self._first_token_at = time.perf_counter()
            FIRST_TOKEN.labels(str(self._cached_tokens > 0).lower()).observe(
                self._first_token_at - self.started
            )
        if token in self._model.end_ids:
            return self._finish(FINISH_STOP, "")
        # A tag's fixed text after the token needs no choice: all of it goes through the model in one pass.
        room = min(
            self.sampling.max_tokens - len(self._reply_tokens),
            conversation.max_length - len(conversation.tokens),
        )
        run = [token, *self._steer.forced(room - 2)]
        self._reply_tokens += run
        COMPLETION_TOKENS.inc(len(run))
        released = self._stop.feed(self._lead + "".join(self._stream.decode(t) for t in run))
        self._lead = ""
        self._raw += released
        if self._stop.stopped:
            return self._finish(FINISH_STOP, released)
        if (
            len(self._reply_tokens) >= self.sampling.max_tokens
            or len(conversation.tokens) + 1 >= conversation.max_length
        ):
            return self._finish(FINISH_LENGTH, released)
        events = self.filter.feed(released)
        # A piece the voice can speak goes out before the model runs the token that completed it (one
        # forward pass, 15-20 ms on 2 cores, sooner): the next step runs it first.
        self._held = run
        if not any(isinstance(e, Sentence) for e in events):
            self._feed_held()
        if self._rolled_back(events):
            return events
        first = self._checkpoint is None and self._steer.tags.done
        if first or any(isinstance(e, Sentence) for e in events):
            self._checkpoint = self._mark()
        # a first clause released alone for the voice: the rest of its sentence follows
        if any(isinstance(e, Sentence) and e.index == 0 and ends_clause(e.text) for e in events):
            self._max_pieces += 1
        if self.filter.sentences >= self._max_pieces:
            self.finish_reason = FINISH_STOP
            self._remember()
            conversation.held, self._held = self._held, []  # for the next prompt (reuse.open_prompt)
        return events

    def _feed_held(self) -> None:
        """Run the tokens chosen last through the model, if the step that chose them left them."""
        conversation, run = self._conversation, self._held
        if run and conversation is not None:
            self._held = []
            conversation.generator.append_tokens(run)
            conversation.tokens.extend(run)

    def _finish(self, reason: str, released: str) -> list[ReplyEvent]:
        self.finish_reason = reason
        tail = self._stop.flush()
        self._raw += tail
        events = self.filter.feed(released + tail) + self.filter.finish(complete_only=reason == FINISH_LENGTH)
        if self._rolled_back(events):
            self.finish_reason = ""
            return events
        if not self.filter.text:  # the last resort: a line the writer gave the NPC, never silence
            line = fallback_line(self.persona, self._steer.earlier)
            events += self.filter.fallback(line)
            self._raw = line
            FALLBACK_REPLIES.labels(self.persona.id).inc()
        DROPPED_EVENTS.inc(self.filter.dropped_events)
        self._remember()
        return events

    def _mark(self) -> Mark:
        conversation = self._conversation
        assert conversation is not None
        filtered, stop = self.filter.checkpoint(), copy(self._stop)
        tokens = len(conversation.tokens) + len(self._held)  # as if the held tokens were in
        return Mark(tokens, len(self._reply_tokens), len(self._raw), filtered, stop)

    def _rolled_back(self, events: list[ReplyEvent]) -> bool:
        """If the sentence just finished was dropped as a repeat, go back to where it began (KV cache,
        tokens, text, filter) and write it again with its first token ruled out; a bounded number of
        times, and never past a sentence already released."""
        repeated, self._repeats = self.filter.repeats > self._repeats, self.filter.repeats
        mark, conversation = self._checkpoint, self._conversation
        if not repeated or mark is None or conversation is None or self._retries >= MAX_RETRIES:
            return False
        if any(isinstance(e, Sentence) for e in events) or len(self._reply_tokens) <= mark.reply:
            return False
        self._retries += 1
        self._steer.retry(mark.reply, self._reply_tokens[mark.reply])
        # Rewound one token further and that token appended again, so the logits are the ones after it.
        conversation.generator.rewind_to(mark.tokens - 1)
        conversation.generator.append_tokens([conversation.tokens[mark.tokens - 1]])
        del conversation.tokens[mark.tokens :], self._reply_tokens[mark.reply :]
        self._raw = self._raw[: mark.raw]
        self._stream = self._model.tokenizer.create_stream()
        self._stop = copy(mark.stop)
        self.filter.restore(mark.filter)
        RETRIED_SENTENCES.labels(self.persona.id).inc()
        return True

    def _remember(self) -> None:
        """Record how this turn's lines were written, for the next prompt to repeat them exactly."""
        conversation = self._conversation
        if conversation is None:
            return
        said = self.filter.text
        raw = self._raw.strip()
        if said and (self.finish_reason == FINISH_LENGTH or self.filter.sentences >= self._max_pieces):
            end = max(raw.rfind(mark) for mark in ".!?")
            raw = raw[: end + 1] if end > 0 else raw  # the unfinished sentence was never said
        conversation.rendered = rendered_turns(
            self.persona, self.request, self._messages, said, raw, self._model.prompt_style
        )
        if said:
            conversation.said = [*conversation.said, said][-MAX_SAID:]

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
