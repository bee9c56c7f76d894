"""A turn of conversation, as the gateway stores it and the dialogue model reads it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["player", "npc"]


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    # The NPC was cut off (barge-in); ``text`` holds only what the player heard.
    interrupted: bool = False
    time: float = field(default_factory=time.time)
