"""Which of a persona's lore entries a player's line calls up: by the writer's keywords, else by its words.

A writer lists a few keywords for an entry ("crossing", "fare"); players ask in their own words ("What do
you charge to take one person over?", "How long does it take to get across?"). When a line asks about
the world and no keyword of any entry is in it, the entry that shares the most of its words (the entry's
text's and keywords', each word counting for more the fewer of the persona's entries hold it; "hawking"
and "hawks" one word) is called up, if it shares enough: one word that only that entry holds, or more of
those that several hold. The NPC's own name calls up nothing ("Haldor, what's the news?"), nor do the
words any talk is made of (``recall.content_words``). Measured by ``bench/lore_search.py``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

from npcvoice.dialogue.blocking import without_possessive
from npcvoice.dialogue.recall import (
    about_the_moment,
    asked_part,
    asks_about_the_world,
    content_words,
    wordset,
)
from npcvoice.personas.schema import LoreEntry, Persona

# How much a line must share with an entry: a word only that entry holds, among three or more entries,
# is worth log(4) = 1.39; one that two of five hold, log(3) = 1.10.
THRESHOLD = 1.3


def called_up(persona: Persona, line: str, world: Sequence[str] = ()) -> list[LoreEntry]:
    """The lore entries ``line`` calls up: those with a keyword in it, else, when it asks about the world,
    the one nearest its words. By its words alone, nothing is called up by a line that asks nothing ("I'm
    a cooper from the hills"), asks the NPC to do something ("Can you load my cart aboard?"), asks about
    the player or who the NPC is, or asks about what the game says is happening (``world``: "What's all
    that racket down by the water?")."""
    by_keyword = persona.lore_for(line)
    if (
        by_keyword
        or not persona.lore
        or not asks_about_the_world(line)
        or about_the_moment(line, list(world))
        or _REQUEST.search(asked_part(line))
    ):
        return by_keyword
    return nearest(persona, line)


def nearest(persona: Persona, line: str, threshold: float = THRESHOLD) -> list[LoreEntry]:
    """The entry sharing most of ``line``'s words, weighted by how few entries share each, when the weight
    reaches ``threshold``; else none."""
    index = _index(tuple((entry.text, tuple(entry.keywords)) for entry in persona.lore), persona.display_name)
    asked = _roots(line) - index.own_name
    scores = [sum(index.weights.get(stem, 0.0) for stem in asked & stems) for stems in index.stems]
    best = max(scores, default=0.0)
    if best < threshold:
        return []
    return [persona.lore[scores.index(best)]]


class _Index:
    """A persona's lore entries as word stems, and each stem's weight (log of entries per entry holding
    it, one more entry counted so that a word of a single entry still weighs something)."""

    def __init__(self, entries: Sequence[tuple[str, tuple[str, ...]]], name: str) -> None:
        self.own_name = _roots(name)
        self.stems = [_roots(" ".join([text, *keywords])) - self.own_name for text, keywords in entries]
        held: dict[str, int] = {}
        for stems in self.stems:
            for stem in stems:
                held[stem] = held.get(stem, 0) + 1
        self.weights = {stem: math.log((len(entries) + 1) / count) for stem, count in held.items()}


# Asked to do something ("Could you mark the way to Harrowby on my map?"), not to tell what it knows.
_REQUEST = re.compile(
    r"^\W*(?:\w+,\s*)?(can|could|would|will)\s+you\b(?!\s+(?:ever|tell|say|explain|remind)\b)", re.IGNORECASE
)
# Endings cut before comparing words, longest first: "hawking" and "hawks" are "hawk", "ferried" "ferry".
_ENDINGS = (("ings", ""), ("ing", ""), ("ied", "y"), ("ies", "y"), ("ers", ""), ("er", ""), ("ed", ""),
            ("es", ""), ("s", ""))  # fmt: skip
_ROOT = 5  # letters of a word's root compared, as ``recall``'s stems: "tunnel" and "tunnels" alike


# Words of any talk that ``recall.content_words`` keeps (a memory question may turn on them), which say
# nothing of what a question is about: "the two towns", "each other", "how long", "what do you make".
_EVERYDAY = wordset(
    "two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty sixty hundred "
    "thousand first each other every many much more most less long lot lots few like get got make made "
    "take took give gave want need think see look come came keep kept around"
)


def _roots(text: str) -> set[str]:
    """The roots of ``text``'s words that carry meaning ("crossings" and "crossing" are one)."""
    return {_root(word) for word in content_words(text) if word.lower() not in _EVERYDAY}


def _root(word: str) -> str:
    word = without_possessive(word.lower())
    for ending, instead in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            word = word[: -len(ending)] + instead
            break
    return word[:_ROOT]


@functools.lru_cache(maxsize=256)
def _index(entries: tuple[tuple[str, tuple[str, ...]], ...], name: str) -> _Index:
    return _Index(entries, name)
