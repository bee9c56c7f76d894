"""A line from outside the game's world, as a small learned model tells it: where the word lists of
``deflection`` know only the words written into them, this one scores every word the dialogue model has
a token for by where that token's embedding lies (the bundled SmolLM2's own table: "Netflix" sits beside
"YouTube" and "playlist", "Obama" beside "Reagan", "soccer" beside "rugby"), so a word nobody listed is
still taken for the real world's, and adds what the player's words and word pairs (but those of function
words alone) said in lines labelled by hand (training/outside/, the corpus's player lines).

    score(line) = bias + max(0, the best word's score) + sum(the line's word and pair weights) / sqrt(n)

A line is from outside when its score passes the threshold the model was built with (the highest score of
an in-world line of a development set never trained on). ``npcvoice.training.outside`` builds the
model into ``outside.json`` beside this file; serving needs only the file (no torch, no GGUF): a line is
scored in some microseconds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("outside.json")

_WORD = re.compile(r"[A-Za-z][A-Za-z']*[A-Za-z]|[A-Za-z]")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\s-+\s+)$")
_GRAM_WORD = re.compile(r"[a-z0-9][a-z0-9']*")


def word_forms(line: str) -> list[str]:
    """Each word of ``line`` as written, lower-case and capitalised: the forms looked up among the
    model's tokens (a word's score is its best form's). A sentence's first word only in lower case: its
    capital says nothing ("Polish my boots", "Mark my words")."""
    forms: list[str] = []
    for match in _WORD.finditer(line):
        word = match.group(0)
        if _SENTENCE_START.search(line[: match.start()]):
            forms.append(word.lower())
        else:
            forms += dict.fromkeys((word, word.lower(), word.capitalize()))
    return forms


# Words that say how a line is put, not what it is about: a word or pair of these alone weighs nothing.
# ("You are now free to go" is the world's, "You are now DAN" is not: the word lists' patterns judge how
# a line talks to the NPC; this model judges what it talks about.)
_FUNCTION_WORDS = frozenset(
    re.findall(
        r"\S+",
        """a an the and or but if then so of to in on at by for with from up down out over under about into
        as is are was were be been being am do does did have has had i me my mine myself you your yours
        yourself he him his she her hers it its they them their theirs we us our ours this that these
        those there here what which who whom whose when where why how all any both each few more most
        other some such no nor not only own same than too very can will just should would could may
        might must shall now ever never again still also yet uh um er ah oh hmm well yes yeah okay ok
        hey hi hello please thanks i'm you're it's that's what's don't can't won't i'll you'll i've""",
    )
)


def grams(line: str) -> list[str]:
    """The line's distinct lower-case words and word pairs, but those of function words alone."""
    words = _GRAM_WORD.findall(line.lower())
    said = {*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))}
    return sorted(gram for gram in said if not _FUNCTION_WORDS.issuperset(gram.split()))


@dataclass(frozen=True)
class OutsideModel:
    bias: float
    threshold: float
    words: Mapping[str, float]  # a token's word -> its score, for those above 0
    grams: Mapping[str, float]  # a word or word pair -> its weight

    def score(self, line: str) -> float:
        best = max((self.words.get(form, 0.0) for form in word_forms(line)), default=0.0)
        said = grams(line)
        weights = sum(self.grams.get(gram, 0.0) for gram in said) / math.sqrt(len(said)) if said else 0.0
        return self.bias + max(best, 0.0) + weights

    def takes(self, line: str) -> bool:
        """Whether ``line`` scores past the threshold: from outside the world."""
        return self.score(line) > self.threshold

    @classmethod
    def read(cls, path: Path = MODEL_PATH) -> OutsideModel:
        data = json.loads(path.read_text())
        return cls(float(data["bias"]), float(data["threshold"]), data["words"], data["grams"])


@cache
def shipped() -> OutsideModel:
    """The model built into ``outside.json``, read once."""
    return OutsideModel.read()
