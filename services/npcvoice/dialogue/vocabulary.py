"""A model's tokens as text, for the decoding constraints that reason about what a token would write."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

import numpy as np

T = TypeVar("T")


class TokenTexts:
    """Encodes text and decodes single tokens, remembering each token's text (decoding is the slow part)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._texts: dict[int, str] = {}
        self._containing: dict[str, frozenset[int]] = {}
        self._memo: dict[Hashable, object] = {}
        # What the tokenizer puts before any text (Gemma's and Llama's BOS): not part of the text's tokens.
        self._added = len(tokenizer.encode(""))
        self._continues: dict[int, bool] = {}
        self._anchor = self.encode("x")[-1]  # a token to decode another after (see continues_word)
        self._anchor_text = self._decode([self._anchor])

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._tokenizer.encode(text)][self._added :]

    def _decode(self, tokens: list[int]) -> str:
        return str(self._tokenizer.decode(np.array(tokens, dtype=np.int32)))

    def text(self, token: int) -> str:
        known = self._texts.get(token)
        if known is None:
            known = self._texts[token] = self._decode([token])
        return known

    def continues_word(self, token: int) -> bool:
        """Whether ``token`` goes on with the word before it (``eller`` after `` trav``) rather than starting
        a word or writing punctuation. Decoded after another token, since some tokenizers (SentencePiece)
        drop a lone token's leading space."""
        known = self._continues.get(token)
        if known is None:
            after = self._decode([self._anchor, token])[len(self._anchor_text) :]
            known = self._continues[token] = bool(after) and after[0].isalnum()
        return known

    def matching(self, logits: np.ndarray, pattern: re.Pattern[str], among: int = 256) -> list[int]:
        """Tokens whose whole text matches ``pattern``, from the ``among`` likeliest, likeliest first."""
        scores = np.asarray(logits, dtype=np.float32).reshape(-1)
        among = min(among, scores.size)
        best = np.argpartition(scores, -among)[-among:]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [int(t) for t in best if pattern.fullmatch(self.text(int(t)))]

    def words(self, tokens: list[int], min_letters: int = 3) -> set[int]:
        """Those of ``tokens`` that start a word (not a piece inside one) of at least ``min_letters``
        letters."""
        stripped = {t: self.text(t).strip() for t in tokens if not self.continues_word(t)}
        return {t for t, text in stripped.items() if len(text) >= min_letters and text.isalpha()}

    def containing(self, char: str, size: int) -> frozenset[int]:
        """Every token of a ``size``-token vocabulary whose text holds ``char`` (found once, then kept)."""
        found = self._containing.get(char)
        if found is None:
            found = self._containing[char] = frozenset(t for t in range(size) if char in self.text(t))
        return found

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """What ``build`` makes for ``key`` on this model, made once (a persona's fixed tables)."""
        if key not in self._memo:
            self._memo[key] = build()
        return cast(T, self._memo[key])
