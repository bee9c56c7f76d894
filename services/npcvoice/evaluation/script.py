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

    @model_validator(mode="after")
    def _action_or_none(self) -> Expect:
        if self.no_action and self.action:
            raise ValueError("expect either an action or no_action, not both")
        return self


class Event(_Strict):
    name: str = Field(description="The game event, snake_case: item_given, quest_completed...")
    description: str = Field("", description="One sentence for the NPC: 'The player gave you a ring.'")
    parameters: dict[str, str] = Field(default_factory=dict)


class Line(_Strict):
    """One NPC reply: to what the player says, to an instruction to speak first (``speak``), or to the
    line's ``events`` when the persona has a trigger that speaks. ``context`` and ``events`` go first."""

    say: str | None = Field(None, min_length=1, max_length=1000, description="What the player says.")
    speak: str | None = Field(
        None, min_length=1, max_length=300, description="The NPC speaks first, told this."
    )
    context: dict[str, str] = Field(default_factory=dict, description="World context the game sets first.")
    events: list[Event] = Field(default_factory=list, description="Game events reported first.")
    tag: str = Field("", description="What the line tests (memory, lore, action...): counted by tag.")
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _one_reply(self) -> Line:
        if self.say is not None and self.speak is not None:
            raise ValueError("give say or speak, not both")
        if self.say is None and self.speak is None and not self.events:
            raise ValueError("give say, speak, or events whose trigger makes the NPC speak")
        return self

    @property
    def shown(self) -> str:
        """The line as the report shows it."""
        if self.say is not None:
            return self.say
        if self.speak is not None:
            return f"(speak: {self.speak})"
        return f"(event: {', '.join(e.name for e in self.events)})"


class Script(_Strict):
    npc: str = Field(description="The persona id.")
    player: str = Field("eval-player", description="Player id; its memory is reset before the run.")
    player_name: str = ""
    seed: int = Field(1, description="Sampling seed of every reply.")
    lines: list[Line] = Field(min_length=1)


class ScriptError(Exception):
    """A script that cannot run; the message names the file and the field."""


def load_script(path: Path) -> Script:
    try:
        data = yaml.safe_load(path.read_text())
        script = Script.model_validate(data)
        check_id(script.npc, "npc")
        check_id(script.player, "player")
    except (OSError, yaml.YAMLError) as error:
        raise ScriptError(f"{path}: {error}") from error
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ScriptError(f"{path}: {problems}") from error
    except InvalidArgument as error:
        raise ScriptError(f"{path}: {error.message}") from error
    return script
