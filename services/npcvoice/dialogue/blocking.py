"""Token by token, what the reply may not write next: it never completes a run of tokens that an earlier
NPC line of this conversation holds, nor one it already wrote itself (a loop), nor the prompt's
scaffolding or a long run of the persona's private text, nor what the player called theirs ("my
brother") as the NPC's own; and the words of earlier replies are made a
little less likely (a presence penalty, on the tokens that start them), so that the model says something
new rather than the next-best copy. Lore is not blocked: the NPC is meant to tell it, in its own words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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


# Words from outside any game world, which no NPC has a use for: an injection or an out-of-world question
# puts them in the player's line ("Are you an AI?", "what's on the internet?") and a small model echoes them
# back ("An AI? I'm a map-maker."). Never written, whatever the model wants: the sentence goes another way.
OUTSIDE_WORDS = ("AI", "chatbot", "internet", "computer", "smartphone", "cellphone", "telephone", "phone",
                 "email", "website", "online", "prompt", "NPC")  # fmt: skip
OUTSIDE_VERBS = ("email", "phone")
# The word spelt around once it is banned ("An A-I, Hesper"): cut at its last letter.
OUTSIDE_SPELLINGS = ("A-I", "A.I", "A. I")


@dataclass(frozen=True)
class Outside:
    """The tokens that would begin one of ``OUTSIDE_WORDS`` (any case, singular or plural): ``spaced`` (a
    space and the word) anywhere; the word with no space before it only where a word starts."""

    spaced: frozenset[int]
    at_word_start: frozenset[int]  # ``spaced`` and the bare forms

    def banned(self, texts: TokenTexts, written: list[int]) -> frozenset[int]:
        """What may not come after ``written`` (the reply's text so far, after its tags)."""
        starts_word = not written or not texts.text(written[-1])[-1:].isalnum()
        return self.at_word_start if starts_word else self.spaced


def outside_tokens(texts: TokenTexts) -> Outside:
    """Each outside word's forms, by their first token where that token is the whole word; a word the
    tokenizer splits is banned at its second token (in the fixed table, ``outside_phrases``)."""
    spaced: set[int] = set()
    bare: set[int] = set()
    for form in _forms():
        for variant, into in ((" " + form, spaced), (form, bare)):
            tokens = texts.encode(variant)
            if len(tokens) == 1:
                into.add(tokens[0])
    return Outside(frozenset(spaced), frozenset(spaced | bare))


def outside_phrases(texts: TokenTexts) -> list[str]:
    """The outside words' forms the tokenizer writes in more than one token, with a space before them or
    without: for ``fixed_table``, which bans such a form's last token."""
    forms = [form for form in _forms() if max(len(texts.encode(" " + form)), len(texts.encode(form))) > 1]
    return forms + list(OUTSIDE_SPELLINGS)


def _forms() -> list[str]:
    """Each outside word in each case and plural; the verbs among them as verbs ("emailing", "phoned")."""
    forms = []
    for word in OUTSIDE_WORDS:
        for form in {word, word.lower(), word[:1].upper() + word[1:].lower(), word.upper()}:
            forms += [form, form + "s", form + "S"]
            if word in OUTSIDE_VERBS:  # not "prompted", a word of any world
                stem = form[:-1] if form.endswith("e") else form
                forms += [stem + "ing", stem + "ed"]
    return forms


# What the player says is theirs ("my brother", "my tannery") is not the NPC's: a small model echoes it as
# its own ("Harrowby, my brother's farm."). These few are everybody's way of speaking, not a claim.
_NOT_CLAIMS = frozenset(("name", "friend", "friends", "lord", "lady", "dear", "good", "goodness", "god",
                         "word", "thanks", "own", "way", "apologies", "respects", "mind"))  # fmt: skip
_MINE = re.compile(r"\bmy\s+([A-Za-z][A-Za-z'-]*)", re.IGNORECASE)
_POSSESSIVE = re.compile(r"'s?$")


def without_possessive(word: str) -> str:
    """``word`` without a possessive's "'s" or "'" ("sister's" -> "sister", "name's" -> "name")."""
    return _POSSESSIVE.sub("", word)


# "I'm a glassblower": what the player is, which the NPC saying it of itself would take as its own trade.
_I_AM = re.compile(r"\bI(?:'m|\s+am)\s+(an?)\s+([A-Za-z][A-Za-z-]*)", re.IGNORECASE)
# ... but for the ways anyone speaks of themselves ("I'm a stranger here", "I'm a bit lost")
_NOT_TRADES = frozenset(("bit", "little", "lot", "stranger", "friend", "guest", "fool", "man", "woman",
                         "new", "good", "great", "big", "long", "fair", "simple", "poor", "free", "humble",
                         "very", "real", "true", "traveller", "traveler", "visitor", "patient",
                         "busy"))  # fmt: skip


def claimed_phrases(player_lines: Iterable[str]) -> list[str]:
    """ "my X" of each "my X" the player said of themselves (and "My X", to open a sentence), and "I'm a
    X" of each "I'm a X": the NPC saying it would take X as its own."""
    lines = list(player_lines)
    found = {without_possessive(m.group(1).lower()) for line in lines for m in _MINE.finditer(line)}
    trades = {(m.group(1).lower(), m.group(2).lower()) for line in lines for m in _I_AM.finditer(line)}
    # "my sister's boys": "my sister" and "my sisters" are the player's too
    mine = [
        f"{my} {word}{s}" for word in sorted(found - _NOT_CLAIMS) for my in ("my", "My") for s in ("", "s")
    ]
    return mine + [
        f"{i} {a} {trade}" for a, trade in sorted(trades) if trade not in _NOT_TRADES for i in ("I'm", "I am")
    ]


# "Aren't you the ringmaster?" put to the ringmaster's assistant: the tuned model answers "Nell Farrago,
# ringmaster!", taking the role the player named as its own.
_PUT_TO_YOU = re.compile(r"\b(?:are|aren't|arent)\s+you\s+the\s+([A-Za-z][A-Za-z-]*)\b(?!')", re.IGNORECASE)
# How a reply opens that is asked "Aren't you the X?" of another's role (``leads.Lead``), likeliest first.
DENIALS = ("No, I'm",)
# ... not a role: "Aren't you the one who feeds the elephant?", "the same woman I met at the fair?"
_NOT_ROLES = frozenset(("one", "same", "only", "first", "last", "other", "very", "best", "new", "man",
                        "woman", "girl", "boy", "lad", "lass", "person", "fellow", "guy", "kid", "folk",
                        "people"))  # fmt: skip


def others_roles(player_text: str, name: str, description: str, lore: Iterable[str]) -> list[tuple[str, str]]:
    """What would answer "Aren't you the X?" as X, as (what comes before X, X): "Nell Farrago, ringmaster",
    "I'm the ringmaster" (and so "I'm the ringmaster's assistant", which a small model goes on from as the
    ringmaster); where the persona names X but not as the NPC: its lore or description speaks of X (or
    of X's: "the ringmaster's assistant"), and neither its ``name`` nor its description's first sentence
    (who it is: "Grisel is the fen witch", "Kit is one of the king's couriers") calls it X. A role the
    persona never names is left to the model: it may well be the NPC's."""
    first = name.split()[0] if name.split() else name
    found: list[tuple[str, str]] = []
    for match in _PUT_TO_YOU.finditer(player_text):
        role = match.group(1).lower()
        if role in _NOT_ROLES:
            continue
        said = re.compile(rf"\b{re.escape(role)}\b", re.IGNORECASE)
        if said.search(name) or any(_same_word(role, word) for word in _own_words(description)):
            continue
        if any(said.search(text) for text in (description, *lore)):
            befores = (f"{first},", f"{name},", f"{first}, the", f"{name}, the", "I'm", "I'm the", "I am the")
            found += [(before, form) for before in dict.fromkeys(befores)
                      for form in dict.fromkeys((role, role.capitalize()))]  # fmt: skip
    return found


def _own_words(description: str) -> list[str]:
    """The words of the description's first sentence, which says who the NPC is ("Grisel is the fen witch
    of Blackfen"), but those said as another's ("the ringmaster's assistant")."""
    first = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0]
    return [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]*", first) if not _POSSESSIVE.search(w)]


def _same_word(role: str, word: str) -> bool:
    """ "courier" and "couriers", "law" (the law guy) and "lawspeaker"."""
    return word.startswith(role) or (len(word) >= 4 and role.startswith(word))


def first_word_table(texts: TokenTexts, phrases: Iterable[tuple[str, str]]) -> Table:
    """Each (before, word): the word's first token never follows ``before`` (at a sentence's start or
    not), so that it cannot be spelt around either ("ring master")."""
    table: Table = {}
    for before, word in phrases:
        for variant in dict.fromkeys((before, " " + before)):
            lead = texts.encode(variant)
            tokens = texts.encode(f"{variant} {word}")
            if lead and tokens[: len(lead)] == lead and len(tokens) > len(lead):
                table.setdefault(tuple(lead), set()).add(tokens[len(lead)])
    return table


_NONE: frozenset[int] = frozenset()


class Blocker:
    def __init__(
        self,
        texts: TokenTexts,
        earlier: Iterable[str],
        fixed: Table,
        claimed: Table | None = None,
        private: Table | None = None,
    ) -> None:
        """``claimed``: phrases of this conversation banned as ``fixed`` are (``claimed_phrases``).
        ``private``: runs of the persona's private text (``fixed_table`` of it), cut as an earlier line's
        are, where a word starts."""
        said: list[int] = []
        repeats: Table = {}
        for line in earlier:
            tokens = texts.encode(" " + line)
            said += tokens
            _add(repeats, tokens, REPEAT_TOKENS)
        self._texts = texts
        self._tables = (fixed, claimed or {}, repeats, private or {})
        self._prefixes = sorted({len(key) for table in self._tables for key in table})
        self.penalized = np.fromiter(texts.words(sorted(set(said))), dtype=np.int64)

    def banned(self, reply: list[int]) -> set[int]:
        """Tokens that may not follow ``reply`` (the tokens written so far). A run of an earlier line or of
        the private text is cut where a word starts, never inside one: cut there, a small model writes the
        word misspelt (``good travilller`` after an earlier ``good traveller``; "Wennet Sallowbaby" for its
        own name, six tokens of its description; "quartermaster of Stonecrow" for Stonecairn); the word
        finishes and the next one is cut. (The scaffolding and the claimed phrases are cut wherever their
        run completes.)"""
        fixed, claimed, repeats, private = self._tables
        banned: set[int] = set()
        again: set[int] = set()
        for size in self._prefixes:
            if len(reply) >= size:
                key = tuple(reply[-size:])
                banned |= fixed.get(key, _NONE)
                banned |= claimed.get(key, _NONE)
                again |= repeats.get(key, _NONE)
                again |= private.get(key, _NONE)
        banned |= {t for t in again if not self._texts.continues_word(t)}
        tail = reply[-(REPEAT_TOKENS - 1) :]
        if len(tail) == REPEAT_TOKENS - 1:  # the reply's own runs: a loop inside it
            for i in range(len(reply) - REPEAT_TOKENS + 1):
                if reply[i : i + REPEAT_TOKENS - 1] == tail:
                    banned.add(reply[i + REPEAT_TOKENS - 1])
        return banned
