"""A turn of conversation, as the gateway stores it and the dialogue model reads it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["player", "npc", "event"]  # event: something that happened in the game


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    # The NPC was cut off (barge-in); ``text`` holds only what the player heard.
    interrupted: bool = False
    time: float = field(default_factory=time.time)


_OVERHEARD_PLAYER = re.compile(r'^The player said to [^:"]+: "(.*)"$', re.DOTALL)


def overheard(speaker: str, to: str, line: str, player: bool = False) -> str:
    """How an NPC remembers a line it heard said to another in its scene (an event turn)."""
    return f'{"The player" if player else speaker} said to {to}: "{line}"'


def overheard_player_line(event: str) -> str | None:
    """The player's line in an event that remembers it said to another NPC (``overheard``), if it is one."""
    found = _OVERHEARD_PLAYER.match(event)
    return found.group(1) if found else None


# "I'm a cooper", "My name's Jory", "My son Darro is apprenticed ...", "My father turns seventy ..."
_FACT_RE = re.compile(
    r"\b(my name is|my name's|name's|call me|i am|i'm|i have|i've|i live|i come from|i work|"
    r"my \w+( \w+)? (is|was|are|has|had|turns|lives|works|went|died))\b",
    re.IGNORECASE,
)


def player_facts(turns: list[Turn]) -> list[str]:
    """What the player said about themselves: their first-person statements, one sentence each."""
    facts: list[str] = []
    for turn in turns:
        if turn.role != "player":
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", turn.text.strip()):
            if _FACT_RE.search(sentence) and not sentence.endswith("?") and sentence not in facts:
                facts.append(sentence)
    return facts
