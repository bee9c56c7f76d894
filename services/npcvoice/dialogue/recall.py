"""When the player asks what they told the NPC ("Do you remember my name?", "Where did I say I came
from?"), the words that answer it are made likelier while the reply is written.

The prompt already holds what the player said about themselves (its facts, its recent lines), but a small
model seldom copies a name from its context: it invents one. So the engine finds the player's statement
the question is about (the one sharing most of the question's words; else every statement about
themselves) and the words of it that may answer (nearest the shared words first: "my name is -> Aric",
"arrived from -> Vaelmoor", "a wool trader -> wool"), and gives their tokens a logit bonus until one of
them is written. Nothing is forced: the model still chooses among them, and its sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from npcvoice.dialogue.vocabulary import TokenTexts

# Logit added to the first token of the likeliest answering word (a quarter less for each next one), until
# the reply has written one of them.
RECALL_BONUS = 4.0
MAX_WORDS = 4
STEM = 5
# Words that say nothing about what the question is after, nor answer it.
_FILLER = frozenset(
    re.findall(
        r"\S+",
        "i me my myself you your yours we us our he she they him her them his hers their theirs "
        "a an the and or but so then just also too very really "
        "do did does done doing is am are was were be been being have has had will would can could shall "
        "should may might must what whats where who whom whose which when why how that this these those it "
        "its there here say said says tell told telling remember remembers recall know knew again still ever "
        "please of to for on at by with about as if not no yes oh well now all any some one way thing "
        "hello hi hey good morning evening night day greetings farewell goodbye thanks thank",
    )
)
# Words that tie a sentence together, which a question may share with a statement but which answer
# nothing.
_NOT_ANSWERS = frozenset(
    re.findall(
        r"\S+",
        "from in into out at on off up down over under near by to toward towards across through i'm i've "
        "i'd i'll let get got go going went come came coming",
    )
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SELF = re.compile(r"\b(i|i'm|i've|i'd|my|me|myself)\b", re.IGNORECASE)
_ASKS = re.compile(r"\?|\b(remember|recall|forget|forgot)\b", re.IGNORECASE)


def asks_about_the_player(line: str) -> bool:
    """A question about the player themselves: "Do you remember my name?", "What do I trade in?"."""
    return bool(_SELF.search(line) and _ASKS.search(line))


def content_stems(text: str) -> set[str]:
    """The stems of ``text``'s words that carry meaning (no fillers, nothing under three letters)."""
    return {_stem(w) for w in _words(text) if len(w) > 2 and w.lower() not in _FILLER}


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _stem(word: str) -> str:
    """Enough of a word to match its forms ("trade", "trader", "trading")."""
    return word.lower()[:STEM]


def answer_words(question: str, statements: Iterable[str], addressee: Iterable[str] = ()) -> list[str]:
    """The words of the player's earlier ``statements`` that may answer ``question``.

    From the statement sharing most of the question's words, its other words nearest the shared ones; if
    none shares any, from every statement the player made about themselves, the words nearest "I" or
    "my". Names and places (capitalised inside a sentence) before other words at the same distance. Left
    out: fillers, the question's own words and the ``addressee``'s (the NPC's name, which the player
    says to it: "Good evening, captain")."""
    asked = {_stem(w) for w in _words(question) if w.lower() not in _FILLER}
    left_out = asked | {_stem(w) for w in addressee}
    scored = [(len({_stem(w) for w in _words(s)} & asked), s) for s in statements]
    best = max((score for score, _ in scored), default=0)
    chosen = [s for score, s in scored if score == best and (best or _SELF.search(s))]
    ranked: dict[str, tuple[int, bool]] = {}
    for statement in chosen[:1] if best else chosen:
        words = _words(statement)
        anchors = [i for i, w in enumerate(words) if (_stem(w) in asked if best else _SELF.fullmatch(w))]
        for i, word in enumerate(words):
            if word.lower() in _FILLER or word.lower() in _NOT_ANSWERS or _stem(word) in left_out:
                continue
            distance = min((abs(i - j) for j in anchors), default=len(words))
            rank = (distance, not (i and word[0].isupper()))
            ranked[word] = min(ranked.get(word, rank), rank)
    return sorted(ranked, key=ranked.__getitem__)[:MAX_WORDS]


class Recall:
    """The answering words of one reply as token sequences, favoured while none is written yet: the first
    token of each, and after a word's first tokens the token that goes on with it. The likeliest answer
    gets ``RECALL_BONUS``, each next one a quarter of it less."""

    def __init__(self, texts: TokenTexts, player_line: str, statements: list[str], npc_name: str) -> None:
        asked = asks_about_the_player(player_line)
        self.words = answer_words(player_line, statements, _words(npc_name)) if asked else []
        self._sequences = [
            (t, RECALL_BONUS * (MAX_WORDS - rank) / MAX_WORDS)
            for rank, word in enumerate(self.words)
            for variant in (" " + word, word)
            if (t := texts.encode(variant))
        ]

    def favoured(self, reply: list[int]) -> dict[int, float]:
        """Bonuses for the tokens that may come after ``reply``: none once it has written one of the
        words."""
        if any(_holds(reply, sequence) for sequence, _ in self._sequences):
            return {}
        bonus: dict[int, float] = {}
        for sequence, _ in self._sequences:
            for done in range(1, len(sequence)):
                if reply[-done:] == sequence[:done]:  # a word begun: its next token
                    bonus[sequence[done]] = max(bonus.get(sequence[done], 0.0), RECALL_BONUS)
        if not bonus:
            for sequence, value in self._sequences:
                bonus[sequence[0]] = max(bonus.get(sequence[0], 0.0), value)
        return bonus


def _holds(tokens: list[int], run: list[int]) -> bool:
    size = len(run)
    return any(tokens[i : i + size] == run for i in range(len(tokens) - size + 1))
