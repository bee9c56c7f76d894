"""A conversation script, as a writer writes it (YAML):

    npc: blacksmith_hilda
    seed: 7                  # the same script and seed give the same replies
    lines:
      - say: My name is Aric, I'm new in Emberfall.
        tag: smalltalk
      - say: Can you repair my sword?
        tag: action
        expect: {action: repair_item, any_words: [sword, blade]}
      - say: What was my name again?
        tag: memory
        expect: {any_words: [Aric]}

A line may also set world context (``context: {weather: heavy rain}``), report game events
(``events: [{name: item_given, description: The player gave you a ring.}]``) or, instead of ``say``, ask the
NPC to speak first (``speak: Greet the player.``); a line with events and neither ``say`` nor ``speak`` waits
for the reply the NPC's trigger for the event makes.

A scene script names several NPCs (``scene: [innkeeper_tobin, guard_captain_vael]`` instead of ``npc``).
A line then goes to the NPC it calls by name, or to ``to`` (the NPC the game says the player talks to),
and ``expect: {npc: ...}`` checks who answered; ``out_of_earshot`` says who does not hear it (and what
follows); ``npc`` says who speaks or whom the events happened to; and ``exchange`` has NPCs talk to each
other (``{npc: tobin, to: vael, about: "Ask about the north road.", lines: 4}``), checked for taking turns
and, with --voice, for one voice at a time; its ``interrupt_with`` is a player line said once the first
line is out, which must stop the exchange and be answered.

Every reply is also checked, without being asked, for what no NPC may do: stay silent, repeat an earlier
reply, loop inside itself, or speak its prompt's scaffolding.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from npcvoice.conversation.memory import check_id
from npcvoice.runtime.errors import InvalidArgument


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expect(_Strict):
    any_words: list[str] = Field(default_factory=list, description="The reply says at least one of these.")
    no_words: list[str] = Field(default_factory=list, description="The reply says none of these.")
    action: str | None = Field(
        None, description="The reply takes this action (an action on a line without one fails: unasked)."
    )
    no_action: bool = Field(False, description="The line mentions an action's object but asks for none.")
    emotion: list[str] = Field(default_factory=list, description="The reply shows one of these emotions.")
    npc: str | None = Field(None, description="In a scene: the NPC that answers.")

    @model_validator(mode="after")
    def _action_or_none(self) -> Expect:
        if self.no_action and self.action:
            raise ValueError("expect either an action or no_action, not both")
        return self


class Event(_Strict):
    name: str = Field(description="The game event, snake_case: item_given, quest_completed...")
    description: str = Field("", description="One sentence for the NPC: 'The player gave you a ring.'")
    parameters: dict[str, str] = Field(default_factory=dict)


class Exchange(_Strict):
    """NPCs talking to each other: ``npc`` says something to ``to`` as ``about`` asks, who answers, and so
    on for ``lines`` lines."""

    npc: str = Field(description="The NPC that speaks first.")
    to: str = Field(description="The NPC it speaks to.")
    about: str = Field(min_length=1, max_length=300, description="What the first line is asked to say.")
    lines: int = Field(2, ge=2, le=8, description="Lines in the exchange, taking turns.")
    interrupt_with: str | None = Field(
        None, min_length=1, max_length=1000, description="A player line said once the first line is out."
    )


class Line(_Strict):
    """One NPC reply: to what the player says, to an instruction to speak first (``speak``), or to the
    line's ``events`` when the persona has a trigger that speaks. ``context`` and ``events`` go first."""

    say: str | None = Field(None, min_length=1, max_length=1000, description="What the player says.")
    speak: str | None = Field(
        None, min_length=1, max_length=300, description="The NPC speaks first, told this."
    )
    context: dict[str, str] = Field(default_factory=dict, description="World context the game sets first.")
    events: list[Event] = Field(default_factory=list, description="Game events reported first.")
    to: str | None = Field(None, description="In a scene: the NPC the game says the player talks to.")
    npc: str | None = Field(None, description="In a scene: who speaks (speak), or whom the events concern.")
    out_of_earshot: list[str] | None = Field(
        None, description="In a scene: the NPCs that do not hear the player from this line on ([]: all do)."
    )
    exchange: Exchange | None = Field(None, description="In a scene: NPCs talk to each other.")
    tag: str = Field("", description="What the line tests (memory, lore, action...): counted by tag.")
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _one_reply(self) -> Line:
        given = [name for name in ("say", "speak", "exchange") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of say, speak or exchange, not {' and '.join(given)}")
        if not given and not self.events:
            raise ValueError("give say, speak, exchange, or events whose trigger makes the NPC speak")
        return self

    @property
    def shown(self) -> str:
        """The line as the report shows it."""
        if self.say is not None:
            return self.say
        if self.speak is not None:
            return f"(speak: {self.speak})"
        if self.exchange is not None:
            return f"({self.exchange.npc} to {self.exchange.to}: {self.exchange.about})"
        return f"(event: {', '.join(e.name for e in self.events)})"


class Script(_Strict):
    npc: str = Field("", description="The persona id (or give scene).")
    scene: list[str] = Field(default_factory=list, description="A scene's persona ids, instead of npc.")
    player: str = Field("eval-player", description="Player id; its memory is reset before the run.")
    player_name: str = ""
    seed: int = Field(1, description="Sampling seed of every reply.")
    lines: list[Line] = Field(min_length=1)

    @model_validator(mode="after")
    def _npc_or_scene(self) -> Script:
        if bool(self.npc) == bool(self.scene):
            raise ValueError("give npc (one NPC) or scene (several), not both and not neither")
        if self.scene and len(self.scene) < 2:
            raise ValueError("a scene has two NPCs or more (give npc for one)")
        named = {n for line in self.lines for n in self._named(line)}
        if self.npc and named:
            raise ValueError("to, npc, out_of_earshot, exchange and expect.npc are for scene scripts")
        if unknown := sorted(named - set(self.scene)) if self.scene else []:
            raise ValueError(f"{', '.join(unknown)}: not in the scene")
        return self

    @staticmethod
    def _named(line: Line) -> list[str]:
        named = [n for n in (line.to, line.npc, line.expect.npc) if n]
        if line.exchange:
            named += [line.exchange.npc, line.exchange.to]
        return named + list(line.out_of_earshot or [])

    @property
    def npcs(self) -> list[str]:
        return self.scene or [self.npc]


class ScriptError(Exception):
    """A script that cannot run; the message names the file and the field."""


def load_script(path: Path) -> Script:
    try:
        data = yaml.safe_load(path.read_text())
        script = Script.model_validate(data)
        for npc_id in script.npcs:
            check_id(npc_id, "scene" if script.scene else "npc")
        check_id(script.player, "player")
    except (OSError, yaml.YAMLError) as error:
        raise ScriptError(f"{path}: {error}") from error
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ScriptError(f"{path}: {problems}") from error
    except InvalidArgument as error:
        raise ScriptError(f"{path}: {error.message}") from error
    return script
