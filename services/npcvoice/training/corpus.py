"""The training corpus: invented personas (persona YAML, the writers' own format, in ``training/personas``)
and conversations with them (one JSON object a line, in ``training/conversations/*.jsonl``), and the
checks that keep each NPC reply teachable: grounded in what the prompt will hold, in the NPC's declared
emotions and actions, in the world, and spoken.

A conversation::

    {"persona": "ferrywoman_odile",
     "earlier": {"summary": "...", "facts": ["My name is Bran."], "affinity": 0.2, "trust": 0.0},
     "steps": [
       {"world": {"weather": "fog"}},
       {"player": "How much for the crossing?"},
       {"npc": "Two coppers, same as ever.", "emotion": "neutral", "skill": "lore"},
       {"player": "Take me across, then."},
       {"npc": "Step in.", "emotion": "neutral", "skill": "action",
        "action": {"name": "ferry_across", "args": {}}},
       {"event": {"name": "item_given", "told": "The player gave you a silver ring."}},
       {"npc": "A ring? For me?", "emotion": "joy", "skill": "event"},
       {"cue": "The player walks away without paying."},
       {"npc": "Hey! Two coppers!", "emotion": "anger", "skill": "event"}]}

``earlier`` is what the NPC remembers from sessions before this one. Every NPC reply answers the step
before it (a player line, a game event or a cue) and carries the skill it teaches (``SKILLS``).
``npcvoice.training.check`` holds each reply to what it may teach.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from npcvoice.personas.loader import PersonaError, load_persona
from npcvoice.personas.schema import Persona

REPO_ROOT = Path(__file__).resolve().parents[3]
CORPUS_DIR = REPO_ROOT / "training"

SKILLS = (
    "lore",  # answers from the persona's lore, brought into the prompt by a keyword of the conversation
    "memory",  # recalls what the player said about themselves (this session or an earlier one)
    "world",  # uses the world context the game sent (place, time, weather, quests...)
    "event",  # reacts to a game event or a cue
    "action",  # does a declared action the player asked for, with parameters from the player's words
    "no_action",  # the line mentions what an action is about but does not ask for it: no action
    "emotion",  # a line that calls for one of the NPC's other emotions (an insult, a loss, a gift...)
    "deflect",  # an out-of-world line (AI, phones, the internet, "the game") answered from inside the world
    "injection",  # an attempt to change or reveal the NPC's instructions, refused in character
    "identity",  # the NPC's own name and who it is, held (never taking the player's name or trade)
    "secret",  # asked for a secret or a refused topic: declined without saying it
    "smalltalk",  # greetings, thanks, farewells, chat, in the persona's speaking style
)
Skill = Literal[
    "lore", "memory", "world", "event", "action", "no_action", "emotion", "deflect", "injection",
    "identity", "secret", "smalltalk",
]  # fmt: skip

VALIDATION_SHARE = 10  # percent of personas held out, chosen by a hash of the id (stable as the corpus grows)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Earlier(_Strict):
    summary: str = ""
    facts: list[str] = Field(default_factory=list)
    affinity: float = Field(0.0, ge=-1, le=1)
    trust: float = Field(0.0, ge=-1, le=1)


class ActionCall(_Strict):
    name: str
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)


class GameEventStep(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    told: str = Field(min_length=1)


class Step(_Strict):
    """One of: ``player``, ``npc`` (with ``emotion``, ``skill``, maybe ``action``), ``event``, ``cue``,
    ``world``."""

    player: str | None = None
    npc: str | None = None
    emotion: str | None = None
    skill: Skill | None = None
    action: ActionCall | None = None
    event: GameEventStep | None = None
    cue: str | None = None
    world: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("player", "npc", "event", "cue", "world") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a step is exactly one of player, npc, event, cue, world (got {kinds or 'none'})"
            )
        if self.npc is not None and (self.emotion is None or self.skill is None):
            raise ValueError("an npc step needs its emotion and skill")
        if self.npc is None and (self.emotion or self.skill or self.action):
            raise ValueError("emotion, skill and action belong to an npc step")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("player", "npc", "event", "cue", "world") if getattr(self, k) is not None)


class Conversation(_Strict):
    persona: str
    earlier: Earlier = Field(default_factory=Earlier)
    steps: list[Step] = Field(min_length=2)


@dataclass(frozen=True)
class Located:
    """A conversation and where it is written (file:line), for messages a writer can follow."""

    conversation: Conversation
    where: str


def read_conversations(path: Path) -> Iterator[Located]:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            yield Located(Conversation.model_validate_json(line), f"{path}:{number}")


def is_validation(persona_id: str) -> bool:
    """Whether a persona is held out of training (the same answer on every machine, for every corpus)."""
    return zlib.crc32(persona_id.encode()) % 100 < VALIDATION_SHARE


def load_personas(directory: Path) -> tuple[dict[str, Persona], list[str]]:
    """The personas by id, and every problem of the files that do not load."""
    personas, problems = {}, []
    for path in sorted(directory.glob("*.yaml")):
        try:
            persona = load_persona(path)
        except PersonaError as error:
            problems += error.lines()
            continue
        personas[persona.id] = persona
    return personas, problems
