"""What a reply must do and must not: the script's expectations, and the checks every reply gets (as a
reader would judge it: the NPC keeps its own name, stays in its world, and acts only when asked, with
what the player said)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from npcvoice.dialogue.repetition import copied, looped
from npcvoice.evaluation.script import Expect

# Labels of the prompt a small model may speak aloud: they are never part of what an NPC says.
SCAFFOLDING = re.compile(
    r"\b(you are (?-i:[A-Z])\w+|you know:|the player told you|player:|personality:|speaking style:|"
    r"things you might say|refuse to talk about|secrets you know|begin your reply|stay in character)",
    re.IGNORECASE,
)


# What no NPC of a game world talks about (a world of its own: no AI, screens, internet or "the game").
# The corpus checker (npcvoice.training.check) holds the NPC's training replies to the same.
OUT_OF_WORLD = re.compile(
    r"\b((?-i:AI|A[.-] ?I)|artificial intelligence|(an?|your|my|helpful|virtual) assistant|chatbot|"
    r"language model|(system )?prompts?|system message|(my|your|previous) instructions|programmed|"
    r"computers?|internet|online|smartphones?|(tele)?phones?|screens?|video games?|this game|in the game|"
    r"player character|NPCs?|real world)\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b(?:my name is|my name's|I am|I'm|call me)\s+([A-Z][a-z]+)")
_TRADE = re.compile(r"\b(?:I am|I'm|I work as)\s+(?:[A-Z][a-z]+,?\s+)?an?\s+([a-z]+)", re.IGNORECASE)
_NOT_NAMES = {"Not", "Just", "Here", "Looking", "Sorry", "Afraid", "Sure", "New", "From", "On", "In", "So"}
_STOP = frozenset(
    re.findall(
        r"\w+",
        "the a an and or but of to in on at by for with from into over under about as is are was were be "
        "been it its this that these those there here then than so very just not no yes you your yours "
        "i me my we our they them their he him his she her what when where who why how which do does did "
        "have has had can could would will shall should may might must all any some one two ask asks asked "
        "tell told know knows knew like well good",
    )
)


def content_words(text: str) -> set[str]:
    """The words that carry meaning, lower case, with a plural's or a verb's -s off."""
    found = set()
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        word = word.removesuffix("'s")
        if word in _STOP or len(word) < 3:
            continue
        found.add(word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word)
    return found


def player_identity(player_lines: list[str]) -> set[str]:
    """The names and trades the player gave for themselves ("My name is Aric", "I'm a cartographer")."""
    said = " ".join(player_lines)
    names = set(_NAME.findall(said)) - _NOT_NAMES
    return names | {trade.lower() for trade in _TRADE.findall(said)}


def takes_identity(reply: str, identity: set[str]) -> str | None:
    """The player's name or trade the reply claims as the NPC's own, if any."""
    for claim in identity:
        if re.search(rf"\b(I am|I'm|my name is|my name's|call me)\s+(an?\s+)?{re.escape(claim)}\b", reply,
                     re.IGNORECASE):  # fmt: skip
            return claim
    return None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.casefold())


def repeats(reply: str, earlier: list[str]) -> str | None:
    """The earlier reply that ``reply`` copies, by the rule the engine keeps its replies to
    (``repetition.copied``), if any."""
    return copied(reply, earlier)


def loops(reply: str) -> str | None:
    """A run of words the reply says twice (it loops inside itself), if any: ``repetition.looped``."""
    return looped(reply)


def _said(reply: str, word: str) -> bool:
    return re.search(rf"(?<![\w']){re.escape(word.casefold())}(?![\w'])", reply.casefold()) is not None


def unfounded_parameters(parameters: dict[str, str], grounds: str) -> list[str]:
    """``name=value`` of each word parameter whose words come from nowhere in ``grounds``."""
    known = content_words(grounds)
    return [
        f"{name}={value}"
        for name, value in parameters.items()
        if not value.replace(".", "").isdigit() and not content_words(value.replace("_", " ")) <= known
    ]


def check_reply(
    reply: str,
    emotions: list[str],
    actions: list[str],
    expect: Expect,
    earlier: list[str],
    player_lines: list[str] | None = None,
    parameters: dict[str, dict[str, str]] | None = None,
    game: list[str] | None = None,
) -> list[Check]:
    """The checks of one reply. ``player_lines``: the player's lines so far, this one last; ``parameters``:
    each action's parameters; ``game``: what the game told the NPC (context values, events)."""
    copy, loop = repeats(reply, earlier), loops(reply)
    scaffold = SCAFFOLDING.search(reply)
    outside = OUT_OF_WORLD.search(reply)
    taken = takes_identity(reply, player_identity(player_lines or []))
    grounds = " ".join([*(player_lines or []), *(game or [])])
    unfounded = [
        f"{name} {p}" for name, ps in (parameters or {}).items() for p in unfounded_parameters(ps, grounds)
    ]
    unasked = [a for a in actions if a != expect.action]
    checks = [
        Check("says something", bool(reply.strip())),
        Check("no repeat", copy is None, f"copies: {copy}" if copy else ""),
        Check("no loop", loop is None, f"says twice: {loop}" if loop else ""),
        Check("no prompt text", scaffold is None, f"says: {scaffold.group(0)}" if scaffold else ""),
        Check("own identity", taken is None, f"takes the player's {taken!r}" if taken else ""),
        Check("in the world", outside is None, f"speaks of {outside.group(0)!r}" if outside else ""),
        Check("no action unasked", not unasked, f"took {unasked}" if unasked else ""),
        Check("parameters from the talk", not unfounded, f"from nowhere: {unfounded}" if unfounded else ""),
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
