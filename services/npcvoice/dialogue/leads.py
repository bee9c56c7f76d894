"""A reply led to open with one of a few phrases, where a small model's own opening goes wrong: a refusal in
character to a line from outside the world (``deflection``: "Strange words, Rowan." where it echoed
"Print?"), a caution, asked whether to do something the world makes unwise (``caution``: "Not in this
fog" where it said "Push on, Maudie"). Nothing is forced: the phrases' tokens get a bonus, and the model
may still go another way, after which it is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import numpy as np

from npcvoice.dialogue.vocabulary import TokenTexts

# Logit added to the first token of the likeliest opening (each next one a smaller share), and to each
# next token of an opening begun.
LEAD_BONUS = 12.0
# Logit added to a sentence's end, and taken off a clause's, once an opening that should end the reply
# and a few tokens after it are out ("Strange words, Rowan." rather than "Strange words, Rowan, but I'll
# print them.").
END_BONUS = 3.0
# Tokens after such an opening before its end is pushed: a comma and whom the NPC speaks to.
AFTER_OPENING = 2
# Words that open an address of two ("my friend", "good sir", "Master Rowan"): a refusal says the second
# before it ends.
TWO_WORD_ADDRESS = frozenset(("my", "good", "dear", "young", "old", "little", "kind", "fair", "sweet", "poor",
                              "master", "mistress", "sir", "lady", "lord", "brother", "sister", "mother",
                              "father", "captain", "goodman", "goodwife", "mister", "miss", "madam", "dame",
                              "uncle", "aunt"))  # fmt: skip
# What the word after a refusal's comma may be: whom it speaks to, not another clause ("Strange words,
# but I'm a map-drawing.").
_ADDRESSED = re.compile(
    r" (?!(?:but|and|so|yet|or|nor|I|I'm|I'll|you|it|that|this|which|though|because|if|then|as|is)\b)"
    r"[A-Za-z][A-Za-z'-]*"
)
_AFTER_OPENING = re.compile(r",\s*([\w'-]+)?(?:\s+([\w'-]+))?(.*)", re.DOTALL)
_END_MARKS = (".", "!", "?")
# Whom a refusal speaks to where the model would say the NPC's own name: words for anyone.
ANYONE = ("stranger", "friend", "traveller")
# Words anyone is called by ("Farewell, Traveller.", "my friend", "child"): whom the NPC speaks to, not a
# name (``address``), nor a clause of its own (``OneClause``).
ADDRESS_WORDS = frozenset(
    re.findall(
        r"[\w']+",
        "stranger strangers traveller traveler travellers travelers friend friends love dear dearie "
        "darling pet lamb sweet sweeting sweetling goodman goodwife mister miss madam ma'am sir sire lord "
        "lady brother sister father mother uncle aunt grandmother grandfather milord milady master "
        "mistress captain sergeant child lad lass neighbour passenger pilgrim soldier son girl boy",
    )
)
# How many of the likeliest tokens the words after a refusal's opening are chosen from.
AMONG = 256


class Lead:
    """The push towards one of ``openings`` while a reply's text is written; with ``end``, then towards
    the sentence's end."""

    def __init__(
        self, texts: TokenTexts, openings: tuple[str, ...], end: bool = False, own_name: str = ""
    ) -> None:
        """``own_name``: the NPC's, never the word it says the reply to ("Strange words, Maelis." from
        Maelis); where the model would say it, a word for anyone ("stranger") instead."""
        ranked = [LEAD_BONUS * (len(openings) - rank) / len(openings) for rank in range(len(openings))]
        self._openings = [
            (tokens, bonus)
            for phrase, bonus in zip(openings, ranked, strict=True)
            for tokens in {tuple(texts.encode(phrase)), tuple(texts.encode(" " + phrase))}
        ]
        ends = {texts.encode(mark)[-1]: END_BONUS for mark in (".", "!")}
        clauses = {texts.encode(mark)[-1]: -END_BONUS for mark in (",", ";", " but")}
        self._ends = ends | clauses if end else None
        self._texts = texts
        self._end_marks = frozenset(texts.encode(mark)[-1] for mark in _END_MARKS)
        self._comma = texts.encode(",")[-1]
        self._own = [word.lower() for word in re.findall(r"[A-Za-z][A-Za-z'-]*", own_name)]
        self._anyones = frozenset(texts.encode(" " + word)[0] for word in ANYONE)

    def favoured(self, text: list[int]) -> dict[int, float] | None:
        """Bonuses for the token after ``text`` (the reply's text so far, after its tags): the openings'
        first tokens; the next token of an opening begun (whichever it is, the full bonus); once one is
        out, with ``end``, a sentence's end a few tokens later. None once the text has gone another way,
        or is past an opening without ``end``: the rest of the reply is the model's (and other aids')."""
        bonus: dict[int, float] = {}
        done = len(text)
        for opening, value in self._openings:
            if done < len(opening) and tuple(text) == opening[:done]:
                value = value if not done else LEAD_BONUS
                bonus[opening[done]] = max(bonus.get(opening[done], 0.0), value)
            elif tuple(text[: len(opening)]) == opening:
                if self._ends is None:
                    return None
                return self._ends if done >= len(opening) + AFTER_OPENING else {}
        return bonus or None

    def closing(self, text: list[int], logits: np.ndarray) -> frozenset[int] | None:
        """With ``end``, the only tokens that may follow ``text`` once an opening is out: the sentence's end
        or a comma; after the comma, a word that says whom the NPC speaks to (not "but", "I", "so"...); once
        that address is said (one word, or two after "my", "good", "Master"...), the sentence's end, or the
        rest of a word in pieces where the model goes on with it ("Tam" "sin"; a first name is enough). A
        small model otherwise goes on after the address ("No idea what you mean, Tamsin; I'll keep my hands
        off.", "..., my friend is a dyer."). None where nothing is ruled out: before an opening, off every
        opening, or once the sentence has ended."""
        if self._ends is None:
            return None
        opening = next((o for o, _ in self._openings if tuple(text[: len(o)]) == o), None)
        if opening is None:
            return None
        after = "".join(self._texts.text(t) for t in text[len(opening) :])
        if not after:
            return self._end_marks | {self._comma}
        parts = _AFTER_OPENING.fullmatch(after)
        if parts is None:
            return None if after.lstrip()[:1] in _END_MARKS else self._end_marks
        first, second, rest = parts.groups()
        if rest.strip():
            return None if rest.lstrip()[:1] in _END_MARKS else self._end_marks
        if not first:
            if self._own_name(int(np.argmax(logits))):  # no other name in its place ("..., Eryndor.")
                return self._anyones
            addressed = [t for t in self._texts.matching(logits, _ADDRESSED, AMONG) if not self._own_name(t)]
            return frozenset(addressed) if addressed else None
        if second is None and first.lower() in TWO_WORD_ADDRESS:
            return None
        if second is None and first in ANYONE:
            return self._end_marks
        if second is None and len(first) == 1:  # a letter goes on ("T" "ams" "in"): not "Strange words, E."
            return self._word_pieces(logits, always=True) or self._end_marks
        return self._end_marks | self._word_pieces(logits)

    def _own_name(self, token: int) -> bool:
        """Whether ``token`` begins a word of the NPC's own name."""
        start = self._texts.text(token).strip().lower()
        return start.isalpha() and any(word.startswith(start) for word in self._own)

    def _word_pieces(self, logits: np.ndarray, always: bool = False) -> frozenset[int]:
        """Where the model's likeliest token goes on with the word before it ("Tam" "sin"), or ``always``,
        the likeliest tokens that do, in lower case; else none: the word is whole ("Tamsin", then " Drewe":
        not "Tamsin" "dre" or "D" "rewe" where the spaced surname is ruled out as a repeat; "my friend",
        not "ed")."""
        scores = np.asarray(logits, dtype=np.float32).reshape(-1)
        if not always and not self._piece(int(np.argmax(scores))):
            return frozenset()
        best = np.argpartition(scores, -AMONG)[-AMONG:] if scores.size > AMONG else np.arange(scores.size)
        return frozenset(int(t) for t in best if self._piece(int(t)))

    def _piece(self, token: int) -> bool:
        return self._texts.continues_word(token) and not self._texts.text(token)[:1].isupper()


# What ends a clause, as a token's whole text (a dash only spaced: "rope-maker" is one word).
_CLAUSE_MARKS = frozenset((",", ";", ":", " ;", " :", " -", " --", " —", "—", " –"))
# A first clause of only these words is not yet the reply: an interjection before it ("No, I'm Corvan
# Dask.", "Aye, ...") or whom the NPC speaks to ("My friend, ...").
_NOT_YET = (
    ADDRESS_WORDS
    | TWO_WORD_ADDRESS
    | frozenset(
        re.findall(
            r"\w+",
            "no yes aye nay ah oh well mercy hmm alas ha hah eh right sure indeed please look listen now so "
            "then course och hush there here oi hey",
        )
    )
)


# The words a question opens with.
_ASKING = frozenset(
    re.findall(
        r"[\w']+",
        "what who whom whose where when why how which is are was were do does did can could will would "
        "shall should have has had may might must am isn't aren't don't doesn't didn't won't",
    )
)


class OneClause:
    """A one-sentence reply ends where its first clause does: the clause's comma (";", ":", a spaced dash)
    becomes the sentence's end ("Two hours, in the far side." -> "Two hours."), unless all the clause says
    is an interjection or whom the NPC speaks to ("No, I'm Corvan Dask.", "Rowan, the fog is thick.").
    Readers failed the tuned model's second clauses most of all: the same 204 replies on the unseen NPCs,
    cut after their first clause, read 154 passed against 140 whole (docs/conversation-quality.md,
    session 32)."""

    def __init__(self, texts: TokenTexts, names: Collection[str] = ()) -> None:
        """``names``: words the player is called by, which a clause of its own may be."""
        self._texts = texts
        self._free = _NOT_YET | {name.lower() for name in names}
        self._ends = [texts.encode(mark)[-1] for mark in (".", "!")]
        self._asks = texts.encode("?")[-1]

    def instead(self, token: int, text: list[int], logits: np.ndarray) -> int:
        """``token``, chosen after ``text`` (the reply's text so far), or the sentence's end in its place
        where it would end the first clause of something said: the likelier of "." and "!", or "?" where
        the clause asks ("Who sent you?", not "No idea what you mean?")."""
        if self._texts.text(token) not in _CLAUSE_MARKS:
            return token
        said = "".join(self._texts.text(t) for t in text)
        words = re.findall(r"[A-Za-z][\w'-]*", said)
        if not words or said.rstrip()[-1:].isdigit() or all(w.lower() in self._free for w in words):
            return token
        ends = [*self._ends, self._asks] if words[0].lower() in _ASKING else self._ends
        return max(ends, key=lambda t: float(logits[t]))
