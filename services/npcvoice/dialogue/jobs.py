"""Model work that is not a reply: a persona's fixed prompt prefilled ahead, and a conversation's summary.

Both run a prompt chunk or a token per step, like a reply, so replies keep flowing while they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from npcvoice.dialogue.cache import Conversation
from npcvoice.dialogue.generation import new_conversation, prefill
from npcvoice.dialogue.metrics import WARM_PREFIXES
from npcvoice.dialogue.model import LoadedModel
from npcvoice.dialogue.sampling import Sampler, SamplingSettings
from npcvoice.turns import Turn, player_facts

if TYPE_CHECKING:
    from npcvoice.dialogue.engine import DialogueEngine

SUMMARY_TOKENS = 96
WARM_CHUNK = 32


class WarmJob:
    """Prefills a persona's fixed prompt into a spare generator, a chunk per step, then caches it."""

    def __init__(
        self, engine: DialogueEngine, model: LoadedModel, key: str, ids: list[int], persona_id: str
    ) -> None:
        self._engine = engine
        self.persona_id = persona_id
        self._model = model
        self.key = key
        self._pending = ids
        self._conversation: Conversation | None = None

    def step(self) -> bool:
        try:
            options = self._engine.options
            if self._conversation is None:
                max_length = min(options.context_tokens, self._model.context_length)
                self._conversation = new_conversation(self._model, self.key, max_length)
            # Small chunks: a reply that arrives meanwhile waits for one chunk at most.
            size = min(options.prefill_chunk, WARM_CHUNK)
            self._pending = prefill(
                self._conversation.generator, self._pending, size, self._conversation.tokens
            )
        except BaseException:
            self._engine.warm_done(self.key)
            raise
        if self._pending:
            return False
        self._engine.cache.put(self._conversation)
        self._engine.warm_done(self.key)
        WARM_PREFIXES.labels("built", self.persona_id).inc()
        return True


class SummaryJob:
    """Greedy decoding of a summary, a prompt chunk or a token per step (so replies keep flowing)."""

    def __init__(
        self, model: LoadedModel, ids: list[int], chunk: int, previous: str, turns: list[Turn]
    ) -> None:
        self._model = model
        self._pending = ids
        self._chunk = chunk
        self._previous = previous
        self._turns = turns
        self._generator: Any = None
        self._max_length = len(ids) + SUMMARY_TOKENS
        self._sampler = Sampler(SamplingSettings(temperature=0.0, repetition_penalty=1.1))
        self._stream = model.tokenizer.create_stream()
        self._output: list[int] = []
        self._text = ""

    def step(self) -> bool:
        """One prompt chunk or one token; True when the summary is complete."""
        if self._generator is None:
            self._generator = self._model.new_generator(self._max_length)
        if self._pending:
            self._pending = prefill(self._generator, self._pending, self._chunk)
            return False
        token = self._sampler.pick(self._generator.get_logits()[0, -1], self._output)
        if token in self._model.end_ids or len(self._output) + 1 >= SUMMARY_TOKENS:
            return True
        self._output.append(token)
        self._text += self._stream.decode(token)
        self._generator.append_tokens([token])
        return False

    def result(self) -> tuple[str, list[str]]:
        """The summary (the earlier one with this one appended) and the facts the player told."""
        summary = " ".join(self._text.split())
        if len(self._output) + 1 >= SUMMARY_TOKENS and "." in summary:
            summary = summary[: summary.rfind(".") + 1]  # cut the unfinished sentence
        joined = (
            f"{self._previous} {summary}".strip() if self._previous and summary else summary or self._previous
        )
        return joined, player_facts(self._turns)
