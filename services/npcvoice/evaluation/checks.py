"""What a reply must do and must not: the script's expectations, and the checks every reply gets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from npcvoice.evaluation.script import Expect

NEAR_COPY = 0.8  # share of a reply's words found in an earlier reply that makes it a repeat
LOOP_NGRAM = 4  # words in a row that, said twice in one reply, make it a loop
# Labels of the prompt a small model may speak aloud: they are never part of what an NPC says.
SCAFFOLDING = re.compile(
    r"\b(you are (?-i:[A-Z])\w+|you know:|the player told you|player:|personality:|speaking style:|"
    r"things you might say|refuse to talk about|secrets you know|begin your reply|stay in character)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.casefold())


def repeats(reply: str, earlier: list[str]) -> str | None:
    """The earlier reply that ``reply`` copies (exactly, or most of its words), if any."""
    mine = words(reply)
    for before in earlier:
        theirs = set(words(before))
        if mine and theirs and sum(w in theirs for w in mine) / len(mine) >= NEAR_COPY:
            return before
    return None


def loops(reply: str) -> str | None:
    """A run of words the reply says twice (it loops inside itself), if any."""
    mine = words(reply)
    seen: set[tuple[str, ...]] = set()
    for i in range(len(mine) - LOOP_NGRAM + 1):
        gram = tuple(mine[i : i + LOOP_NGRAM])
        if gram in seen:
            return " ".join(gram)
        seen.add(gram)
    return None


def _said(reply: str, word: str) -> bool:
    return re.search(rf"(?<![\w']){re.escape(word.casefold())}(?![\w'])", reply.casefold()) is not None


def check_reply(
    reply: str, emotions: list[str], actions: list[str], expect: Expect, earlier: list[str]
) -> list[Check]:
    copy, loop = repeats(reply, earlier), loops(reply)
    scaffold = SCAFFOLDING.search(reply)
    checks = [
        Check("says something", bool(reply.strip())),
        Check("no repeat", copy is None, f"copies: {copy}" if copy else ""),
        Check("no loop", loop is None, f"says twice: {loop}" if loop else ""),
        Check("no prompt text", scaffold is None, f"says: {scaffold.group(0)}" if scaffold else ""),
    ]
    if expect.any_words:
        found = [w for w in expect.any_words if _said(reply, w)]
        checks.append(Check("any of words", bool(found), f"none of {expect.any_words}" if not found else ""))
    if expect.no_words:
        said = [w for w in expect.no_words if _said(reply, w)]
        checks.append(Check("none of words", not said, f"said {said}" if said else ""))
    if expect.action:
        checks.append(Check("action", expect.action in actions, f"took {actions or 'none'}"))
    if expect.emotion:
        shown = [e for e in emotions if e in expect.emotion]
        checks.append(Check("emotion", bool(shown), f"showed {emotions or 'none'}"))
    return checks
