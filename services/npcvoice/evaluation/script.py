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

Every reply is also checked, without being asked, for what no NPC may do: stay silent, repeat an earlier
reply, loop inside itself, or speak its prompt's scaffolding.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from npcvoice.conversation.memory import check_id
from npcvoice.runtime.errors import InvalidArgument


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expect(_Strict):
    any_words: list[str] = Field(default_factory=list, description="The reply says at least one of these.")
    no_words: list[str] = Field(default_factory=list, description="The reply says none of these.")
    action: str | None = Field(None, description="The reply takes this action.")
    emotion: list[str] = Field(default_factory=list, description="The reply shows one of these emotions.")


class Line(_Strict):
    say: str = Field(min_length=1, max_length=1000, description="What the player says.")
    tag: str = Field(
        "", description="What the line tests (memory, lore, action...); the summary counts by tag."
    )
    expect: Expect = Field(default_factory=Expect)


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
