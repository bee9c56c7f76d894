"""Model work that is not a reply: a persona's fixed prompt prefilled ahead, and a conversation's summary.

Both run a prompt chunk or a token per step, like a reply, so replies keep flowing while they run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from npcvoice.dialogue.cache import Conversation, new_conversation, prefill
from npcvoice.dialogue.feelings import calibration
from npcvoice.dialogue.metrics import WARM_PREFIXES
from npcvoice.dialogue.model import LoadedModel
from npcvoice.dialogue.parts import EngineParts
from npcvoice.dialogue.sampling import Sampler, SamplingSettings
from npcvoice.turns import Turn, player_facts

WARM_CHUNK = 32


class WarmJob:
    """Prefills a persona's fixed prompt into a spare generator, a chunk per step, then caches it. The
    first time for that prompt, it also measures the model's usual leaning among the persona's emotions
    (``feelings.calibration``): each content-free line's ``tails`` (the rest of its prompt, up to where the
    emotion is chosen among ``choices``) appended, its logits read, and the generator rewound, one a step."""

    def __init__(
        self,
        engine: EngineParts,
        model: LoadedModel,
        key: str,
        ids: list[int],
        persona_id: str,
        tails: list[list[int]] | None = None,
        choices: dict[int, str] | None = None,
        usual: str = "",
    ) -> None:
        self._engine = engine
        self.persona_id = persona_id
        self._model = model
        self.key = key
        self._pending = ids
        self._conversation: Conversation | None = None
        self._tails = list(tails or []) if choices and len(choices) > 1 else []
        self._choices = choices or {}
        self._usual = usual
        self._log_probs: list[dict[int, float]] = []

    def step(self) -> bool:
        try:
            options = self._engine.options
            if self._conversation is None:
                max_length = min(options.context_tokens, self._model.context_length)
                self._conversation = new_conversation(self._model, self.key, max_length)
            # Small chunks: a reply that arrives meanwhile waits for one chunk at most.
            size = min(options.prefill_chunk, WARM_CHUNK)
            if self._pending:
                self._pending = prefill(
                    self._conversation.generator, self._pending, size, self._conversation.tokens
                )
            elif self._tails:
                self._measure(self._conversation, self._tails.pop(0))
        except BaseException:
            self._engine.warm_done(self.key)
            raise
        if self._pending or self._tails:
            return False
        if self._log_probs:
            self._engine.emotion_priors[self.key] = calibration(self._log_probs, self._choices, self._usual)
        self._engine.cache.put(self._conversation)
        self._engine.warm_done(self.key)
        WARM_PREFIXES.labels("built", self.persona_id).inc()
        return True

    def _measure(self, conversation: Conversation, tail: list[int]) -> None:
        generator = conversation.generator
        generator.append_tokens(tail)
        tokens = list(self._choices)
        logits = np.asarray(generator.get_logits()[0, -1], dtype=np.float64)[tokens]
        shifted = logits - logits.max()
        log_probs = shifted - np.log(np.exp(shifted).sum())
        self._log_probs.append(dict(zip(tokens, map(float, log_probs), strict=True)))
        generator.rewind_to(len(conversation.tokens))  # the fixed prompt alone again


class _Decode:
    """Greedy decoding of one prompt, a prompt chunk or a token per step, to at most ``max_tokens``."""

    def __init__(self, model: LoadedModel, ids: list[int], chunk: int, max_tokens: int) -> None:
        self._model = model
        self._pending = ids
        self._chunk = chunk
        self._max_tokens = max_tokens
        self._generator: Any = None  # made in the first step, in a worker thread
        self._sampler = Sampler(SamplingSettings(temperature=0.0, repetition_penalty=1.1))
        self._stream = model.tokenizer.create_stream()
        self._output: list[int] = []
        self._text = ""

    def step(self) -> bool:
        """One prompt chunk or one token; True when the text is complete."""
        if self._generator is None:
            self._generator = self._model.new_generator(len(self._pending) + self._max_tokens)
        if self._pending:
            self._pending = prefill(self._generator, self._pending, self._chunk)
            return False
        token = self._sampler.pick(self._generator.get_logits()[0, -1], self._output)
        if token in self._model.end_ids or len(self._output) + 1 >= self._max_tokens:
            return True
        self._output.append(token)
        self._text += self._stream.decode(token)
        self._generator.append_tokens([token])
        return False

    def text(self) -> str:
        text = " ".join(self._text.split())
        if len(self._output) + 1 >= self._max_tokens and "." in text:
            text = text[: text.rfind(".") + 1]  # cut the unfinished sentence
        return text


class SummaryJob:
    """A conversation's rolling summary: the earlier summary, then a summary of the new turns, within
    ``budget`` tokens. When the two together are too long, the earlier part is condensed by the model
    (the newest part is never rewritten, so the latest events survive), and if that is still too long its
    oldest sentences go. Steps like a reply, so replies keep flowing while it runs."""

    def __init__(
        self,
        model: LoadedModel,
        prompt: Callable[[str], list[int]],
        first_ids: list[int],
        chunk: int,
        budget: int,
        previous: str,
        turns: list[Turn],
    ) -> None:
        self._model = model
        self._prompt = prompt  # the token ids of a summarising request
        self._chunk = chunk
        self._budget = budget
        self._previous = previous
        self._turns = turns
        self._new = ""
        self._condensed: str | None = None
        self._decode = _Decode(model, first_ids, chunk, budget // 2)

    def step(self) -> bool:
        """One prompt chunk or one token; True when the summary is complete."""
        if not self._decode.step():
            return False
        if self._condensing:
            self._condensed = self._decode.text()
            return True
        self._new = self._decode.text()
        if not self._previous or self._tokens(self._joined(self._previous)) <= self._budget:
            return True
        words = max(8, (self._budget - self._tokens(self._new)) * 3 // 5)
        request = f"Notes:\n{self._previous}\n\nRewrite these notes in at most {words} words. Keep the names."
        self._decode = _Decode(self._model, self._prompt(request), self._chunk, self._budget // 2)
        self._condensed = ""  # condensing from now on
        return False

    @property
    def _condensing(self) -> bool:
        return self._condensed is not None

    def _joined(self, earlier: str) -> str:
        return f"{earlier} {self._new}".strip()

    def _tokens(self, text: str) -> int:
        return len(self._model.tokenizer.encode(text)) if text else 0

    def result(self) -> tuple[str, list[str]]:
        """The rolling summary, at most ``budget`` tokens, and the facts the player told."""
        summary = self._joined(self._previous if self._condensed is None else self._condensed)
        while self._tokens(summary) > self._budget:
            sentences = re.split(r"(?<=[.!?])\s+", summary, maxsplit=1)
            # the oldest sentence goes; a single sentence too long loses its first word
            summary = sentences[1] if len(sentences) > 1 else summary.split(" ", 1)[-1]
        return summary, player_facts(self._turns)
