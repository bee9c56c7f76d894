"""Token by token, what the reply may not write next: it never completes a run of tokens that an earlier
NPC line of this conversation holds, nor one it already wrote itself (a loop), nor the prompt's
scaffolding or a long run of the persona's private text; and the words of earlier replies are made a
little less likely (a presence penalty, on the tokens that start them), so that the model says something
new rather than the next-best copy. Lore is not blocked: the NPC is meant to tell it, in its own words.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from npcvoice.dialogue.vocabulary import TokenTexts

# Tokens in a row that may not come again: from an earlier NPC line, or from this reply itself.
REPEAT_TOKENS = 4
# Tokens in a row of the persona's private text (its description, style, the rules) that may not come.
PRIVATE_TOKENS = 6
# Logit taken off each word an earlier reply used.
PRESENCE_PENALTY = 1.0


Table = dict[tuple[int, ...], set[int]]  # tokens so far (their last few) -> tokens that may not follow


def _add(table: Table, tokens: list[int], size: int) -> None:
    for i in range(len(tokens) - size + 1):
        table.setdefault(tuple(tokens[i : i + size - 1]), set()).add(tokens[i + size - 1])


def fixed_table(texts: TokenTexts, private: Iterable[str], phrases: Iterable[str]) -> Table:
    """What a persona never says, whatever the conversation: long runs of its private text, and the
    scaffolding phrases whole, in the forms a reply may write them. The same every turn: built once."""
    table: Table = {}
    for text in private:
        for variant in (text, " " + text):
            _add(table, texts.encode(variant), PRIVATE_TOKENS)
    for phrase in phrases:
        for variant in {phrase, " " + phrase, phrase[:1].upper() + phrase[1:], " " + phrase.lower()}:
            tokens = texts.encode(variant)
            if len(tokens) >= 2:
                _add(table, tokens, len(tokens))
    return table


class Blocker:
    def __init__(self, texts: TokenTexts, earlier: Iterable[str], fixed: Table) -> None:
        said: list[int] = []
        repeats: Table = {}
        for line in earlier:
            tokens = texts.encode(" " + line)
            said += tokens
            _add(repeats, tokens, REPEAT_TOKENS)
        self._texts = texts
        self._tables = (fixed, repeats)
        self._prefixes = sorted({len(key) for table in self._tables for key in table})
        self.penalized = np.fromiter(texts.words(sorted(set(said))), dtype=np.int64)

    def banned(self, reply: list[int]) -> set[int]:
        """Tokens that may not follow ``reply`` (the tokens written so far). A run of an earlier line is cut
        where a word starts, never inside one: cut there, a small model writes the word misspelt (``good
        travilller`` after an earlier ``good traveller``); the word finishes and the next one is cut. (The
        private text and the scaffolding are cut wherever their run completes.)"""
        fixed, repeats = self._tables
        banned: set[int] = set()
        again: set[int] = set()
        for size in self._prefixes:
            if len(reply) >= size:
                key = tuple(reply[-size:])
                banned |= fixed.get(key, set())
                again |= repeats.get(key, set())
        banned |= {t for t in again if not self._texts.continues_word(t)}
        tail = reply[-(REPEAT_TOKENS - 1) :]
        if len(tail) == REPEAT_TOKENS - 1:  # the reply's own runs: a loop inside it
            for i in range(len(reply) - REPEAT_TOKENS + 1):
                if reply[i : i + REPEAT_TOKENS - 1] == tail:
                    banned.add(reply[i + REPEAT_TOKENS - 1])
        return banned
