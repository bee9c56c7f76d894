"""What the game tells an NPC: the world as it is now (key-value context) and things that happen (events).

Shared by the gateway, which receives them from the game, and the dialogue service, which puts them in the
prompt; both check them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from npcvoice.runtime.errors import InvalidArgument

MAX_WORLD_KEYS = 32
MAX_WORLD_VALUE_CHARS = 200
MAX_EVENT_CHARS = 300
MAX_EVENT_PARAMETERS = 16
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class GameEvent:
    name: str  # lower_snake_case: item_given, quest_completed...
    description: str = ""  # one sentence from the NPC's point of view
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def told(self) -> str:
        """How the NPC remembers it."""
        return self.description or self.name.replace("_", " ").capitalize() + "."


def check_world(world: Mapping[str, str], field_name: str = "world") -> None:
    """At most ``MAX_WORLD_KEYS`` lower_snake_case keys with short values (an empty value removes a key)."""
    if len(world) > MAX_WORLD_KEYS:
        raise InvalidArgument(field_name, f"at most {MAX_WORLD_KEYS} keys, got {len(world)}")
    _check_pairs(world, field_name, MAX_WORLD_VALUE_CHARS)


def check_event(event: GameEvent, field_name: str = "event") -> GameEvent:
    if not _NAME.match(event.name):
        raise InvalidArgument(f"{field_name}.name", "lower_snake_case, 1 to 40 characters")
    if len(event.description) > MAX_EVENT_CHARS:
        raise InvalidArgument(f"{field_name}.description", f"at most {MAX_EVENT_CHARS} characters")
    if len(event.parameters) > MAX_EVENT_PARAMETERS:
        raise InvalidArgument(f"{field_name}.parameters", f"at most {MAX_EVENT_PARAMETERS} parameters")
    _check_pairs(event.parameters, f"{field_name}.parameters", MAX_WORLD_VALUE_CHARS)
    return event


def updated(world: Mapping[str, str], update: Mapping[str, str], field_name: str) -> dict[str, str]:
    """``world`` with ``update`` applied (an empty value removes its key), checked."""
    check_world(update, field_name)
    merged = {**world, **update}
    merged = {key: value for key, value in merged.items() if value}
    check_world(merged, field_name)
    return merged


def _check_pairs(pairs: Mapping[str, str], field_name: str, max_chars: int) -> None:
    for key, value in pairs.items():
        if not _NAME.match(key):
            raise InvalidArgument(
                f"{field_name}[{key!r}]", "keys are lower_snake_case, at most 40 characters"
            )
        if len(value) > max_chars:
            raise InvalidArgument(f"{field_name}[{key!r}]", f"at most {max_chars} characters")
