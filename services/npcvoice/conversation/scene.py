"""A scene: several NPCs in one conversation. Who is in it, who hears the player, and who a player line
goes to: the NPC the game names (``addressed``), else the one the line calls by name ("Hilda, ..."),
else the last one who spoke to the player, else the first of the scene.

A conversation with one NPC is a scene of one. Pure logic, no network: the session (``session``) runs the
turns, and stores in each NPC's memory what that NPC heard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from npcvoice.runtime.errors import FailedPrecondition, InvalidArgument

MAX_SCENE_NPCS = 8
MAX_EXCHANGE_LINES = 8
# Words of a display name that do not call anyone ("Old Tom of the Mill": "Tom" and "Mill" do).
_NOT_NAMES = {
    "the",
    "of",
    "and",
    "old",
    "young",
    "big",
    "little",
    "sir",
    "lady",
    "lord",
    "master",
    "mistress",
}


@dataclass(frozen=True)
class SceneChange:
    """A SceneUpdate, checked: None leaves that part as it was."""

    join: tuple[str, ...] = ()
    leave: tuple[str, ...] = ()
    addressed: str | None = None
    out_of_earshot: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Speak:
    """An NpcSpeak, checked: ``npc_id`` says ``instruction``'s line to the player, or to ``to_npc_id``, who
    answers (``lines`` in all, taking turns)."""

    instruction: str
    npc_id: str = ""
    to_npc_id: str = ""
    lines: int = 1


def names_in(display_name: str) -> list[str]:
    """What a player may call the NPC: its display name, and each word of it that is a name."""
    words = [w for w in re.findall(r"[\w'-]+", display_name) if len(w) >= 3 and w.lower() not in _NOT_NAMES]
    return [display_name, *words] if len(words) > 1 or not words else words


class Scene:
    def __init__(self, npc_ids: list[str], first: str, display_names: dict[str, str]) -> None:
        self.members: dict[str, str] = {npc_id: display_names[npc_id] for npc_id in npc_ids}
        self.addressed = ""  # the NPC the game says the player talks to; "" lets names decide
        self.last = first  # the last NPC who spoke to the player
        self.out_of_earshot: set[str] = set()

    @property
    def is_scene(self) -> bool:
        return len(self.members) > 1

    def addressee(self, line: str) -> str:
        """Who answers the player's ``line``."""
        return self.addressed or self.named(line) or self.last

    def named(self, line: str) -> str:
        """The NPC ``line`` calls by name (the earliest named, when it names several), or ""."""
        if len(self.members) < 2:
            return ""
        found: list[tuple[int, str]] = []
        for npc_id, display_name in self.members.items():
            for name in names_in(display_name):
                if match := re.search(rf"(?<![\w'-]){re.escape(name)}(?![\w'-])", line, re.IGNORECASE):
                    found.append((match.start(), npc_id))
        return min(found)[1] if found else ""

    def hearers(self, *speakers: str) -> list[str]:
        """The NPCs in earshot other than ``speakers``: those that overhear what was said."""
        return [n for n in self.members if n not in speakers and n not in self.out_of_earshot]

    def member(self, npc_id: str, field: str) -> str:
        """``npc_id`` if it is in the scene; "" for the one the player talks to now."""
        if not npc_id:
            return self.addressed or self.last
        if npc_id not in self.members:
            raise FailedPrecondition(f"{field}: {npc_id!r} is not in the scene ({', '.join(self.members)})")
        return npc_id

    def change(self, change: SceneChange, display_names: dict[str, str]) -> None:
        """Applies ``change``; ``display_names`` holds every joining NPC's (their personas exist)."""
        for npc_id in change.join:
            if npc_id in self.members:
                raise FailedPrecondition(f"scene.join_npc_ids: {npc_id!r} is already in the scene")
        if len(self.members) + len(change.join) > MAX_SCENE_NPCS:
            raise InvalidArgument("scene.join_npc_ids", f"a scene has at most {MAX_SCENE_NPCS} NPCs")
        for npc_id in change.leave:
            self.member(npc_id, "scene.leave_npc_ids")
        remaining = [n for n in self.members if n not in change.leave] + list(change.join)
        if not remaining:
            raise FailedPrecondition("scene.leave_npc_ids: a scene keeps at least one NPC")
        for npc_id in change.join:
            self.members[npc_id] = display_names[npc_id]
        for npc_id in change.leave:
            del self.members[npc_id]
            self.out_of_earshot.discard(npc_id)
        if change.addressed is not None:
            self.addressed = (
                self.member(change.addressed, "scene.addressed_npc_id") if change.addressed else ""
            )
        elif self.addressed not in self.members:
            self.addressed = ""
        if self.last not in self.members:
            self.last = remaining[0]
        if change.out_of_earshot is not None:
            for npc_id in change.out_of_earshot:
                self.member(npc_id, "scene.earshot.out_of_earshot_npc_ids")
            self.out_of_earshot = set(change.out_of_earshot)
