"""The persona schema. Unknown keys are errors (a misspelt key must not be silently ignored), and every
field has a description so that editors show it while a writer types.

The JSON Schema generated from this file is committed as npc_personas/persona.schema.json
(``npcvoice schema`` rewrites it; a test fails when it is stale).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from npcvoice.dialogue.options import BUNDLED_MODEL_ID, DEFAULT_MODEL_ID, TUNED_MODEL_ID

SCHEMA_VERSION = 1

# The emotions the face and the relationship model understand; a persona picks a subset.
KNOWN_EMOTIONS = ("neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust")

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class LoreEntry(_Strict):
    """Background the NPC knows, added to the prompt by a keyword, or by a question sharing its words."""

    keywords: list[str] = Field(min_length=1, description="Words or phrases that bring this entry up.")
    text: str = Field(min_length=1, max_length=2000, description="What the NPC knows about it.")


class VoiceSettings(_Strict):
    voice_id: str = Field(
        "en_US-joe-medium", min_length=1, description="Voice from the voice service's registry."
    )
    speaker: int = Field(0, ge=0, description="Speaker number within a multi-speaker voice.")
    speed: float = Field(1.0, ge=0.5, le=2.0, description="1 is the voice's own rate; 1.2 is 20 % faster.")
    variation: float = Field(
        0.667, ge=0.0, le=1.5, description="Prosody variation (piper's noise scale); 0 is flat."
    )
    volume: float = Field(1.0, gt=0.0, le=2.0, description="Output gain; 1 leaves the level unchanged.")
    pitch: float = Field(
        0.0,
        ge=-6.0,
        le=6.0,
        description="Semitones up (+) or down (-) at the same speaking rate: two NPCs on one voice sound "
        "apart from about 2 semitones.",
    )


# A reply's sentences at most, where the persona sets none, for a model not tuned on the NPC corpus.
DEFAULT_MAX_SENTENCES = 3


class DialogueSettings(_Strict):
    model: str = Field(
        DEFAULT_MODEL_ID,
        min_length=1,
        description=f"Model id from the dialogue service ({BUNDLED_MODEL_ID}: the bundled model; "
        f"{TUNED_MODEL_ID}: the bundled model tuned on the NPC corpus; `npcvoice prepare-model` adds "
        "others).",
    )
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="0 always picks the likeliest word. Unset: the model's own (0 for a model tuned on the "
        "NPC corpus, whose likeliest words read best; 0.7 for others).",
    )
    top_p: float = Field(
        0.9, gt=0.0, le=1.0, description="Sample from the likeliest words adding up to this."
    )
    top_k: int = Field(40, ge=0, description="Sample from at most this many words; 0 means no limit.")
    repetition_penalty: float = Field(1.15, ge=1.0, le=2.0, description="Above 1 discourages repeating.")
    max_tokens: int = Field(80, ge=1, le=512, description="Longest reply, in tokens.")
    max_sentences: int | None = Field(
        None,
        ge=1,
        le=20,
        description="The reply ends after this many sentences. Unset: the model's own (1 for a model tuned "
        "on the NPC corpus, whose second sentence often goes astray; 3 for others and a remote model).",
    )
    seed: int | None = Field(
        None, ge=0, description="Fixed seed: the same conversation gives the same reply."
    )
    escalate: Literal["never", "hard", "always"] = Field(
        "never",
        description="When a larger model (escalate_to) takes the turn: never; hard (a lore or memory "
        "question the small model's opening does not answer, low confidence in its first words, a long "
        "multi-part line, a topic in escalate_topics); always. The small model's opening clause covers "
        "the wait and the larger model goes on from it; if the larger model fails, the small one answers.",
    )
    escalate_to: str = Field(
        "", description="The larger model: an id in the dialogue service's remote_models."
    )
    escalate_topics: list[str] = Field(
        default_factory=list,
        description="Words or phrases that send a line to the larger model (with escalate: hard).",
    )
    escalate_below: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="With escalate: hard, the small model's confidence in its opening words (the "
        "geometric mean of their probabilities; each reply's summary has it) under which the larger model "
        "takes the turn. The tuned model's openings on the shipped scripts: a tenth under 0.21, half under "
        "0.37. 0: never for this reason.",
    )

    @model_validator(mode="after")
    def _escalation_target(self) -> DialogueSettings:
        if self.escalate != "never" and not self.escalate_to:
            raise ValueError(f"escalate: {self.escalate} needs escalate_to (a remote model id)")
        return self


class ActionParameter(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Parameter name, snake_case.")
    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = ""
    choices: list[str] | None = Field(None, description="If set, the only values allowed.")
    required: bool = True


class Action(_Strict):
    """Something the NPC may do in the game; the reply's actions are checked against this list."""

    name: str = Field(pattern=NAME_PATTERN, description="Action name the game handles, snake_case.")
    description: str = Field(min_length=1, description="When the NPC should take this action.")
    parameters: list[ActionParameter] = Field(default_factory=list)

    @field_validator("parameters")
    @classmethod
    def _unique_parameters(cls, parameters: list[ActionParameter]) -> list[ActionParameter]:
        _reject_duplicates([p.name for p in parameters], "parameter")
        return parameters


class Trigger(_Strict):
    """What a game event does to this NPC: it always goes into memory; a trigger can also move the
    relationship and make the NPC speak first."""

    event: str = Field(pattern=NAME_PATTERN, description="The game event's name, snake_case.")
    say: str = Field(
        "", max_length=300, description="If set, the NPC speaks first: what it should do, e.g. 'Thank them.'"
    )
    affinity: float = Field(0.0, ge=-1, le=1, description="How much the event moves the NPC's liking.")
    trust: float = Field(0.0, ge=-1, le=1, description="How much the event moves the NPC's trust.")


class SpeechSettings(_Strict):
    language: str = Field("en", pattern=r"^[a-z]{2,3}$", description="Language the player speaks.")
    hotwords: list[str] = Field(
        default_factory=list, description="Names and places the speech recogniser should expect."
    )


class MemoryPolicy(_Strict):
    recent_turns: int = Field(12, ge=1, le=200, description="Turns kept word for word.")
    summarize_after: int = Field(
        24, ge=2, le=1000, description="Once this many turns are stored, older ones are summarised."
    )
    ttl_days: float = Field(30.0, gt=0, description="Memory of a player is forgotten after this long unused.")
    max_facts: int = Field(
        40, ge=1, le=100, description="Facts about the player kept (the newest); older ones are forgotten."
    )

    @model_validator(mode="after")
    def _summary_after_recent(self) -> MemoryPolicy:
        if self.summarize_after < self.recent_turns:
            raise ValueError(
                f"summarize_after ({self.summarize_after}) must be at least "
                f"recent_turns ({self.recent_turns})"
            )
        return self


class FaceSettings(_Strict):
    frame_rate: Literal[24, 30, 60] = Field(30, description="Viseme frames per second.")


class Persona(_Strict):
    """One NPC, as a game writer defines it."""

    schema_version: Literal[1] = Field(description="Version of this file format; currently 1.")
    id: str = Field(pattern=ID_PATTERN, description="Stable id the game uses, e.g. 'blacksmith_hilda'.")
    display_name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=4000, description="Who the NPC is: backstory, role.")
    personality: list[str] = Field(default_factory=list, description="Traits, e.g. 'gruff', 'loyal'.")
    speaking_style: str = Field("", max_length=1000, description="How the NPC talks.")
    example_lines: list[str] = Field(default_factory=list, description="Lines in the NPC's own voice.")
    greeting: str = Field(min_length=1, max_length=500, description="First line when a player walks up.")
    lore: list[LoreEntry] = Field(default_factory=list)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    dialogue: DialogueSettings = Field(default_factory=DialogueSettings)
    emotions: list[str] = Field(
        default_factory=lambda: ["neutral"],
        min_length=1,
        description=f"Emotions the NPC may show, from: {', '.join(KNOWN_EMOTIONS)}.",
    )
    actions: list[Action] = Field(default_factory=list)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    memory: MemoryPolicy = Field(default_factory=MemoryPolicy)
    face: FaceSettings = Field(default_factory=FaceSettings)
    refuse_topics: list[str] = Field(
        default_factory=list, description="Topics the NPC will not discuss, e.g. 'the real world'."
    )
    context_keys: list[str] = Field(
        default_factory=list,
        description="World context keys the NPC pays attention to (location, weather...); empty: all.",
    )
    triggers: list[Trigger] = Field(default_factory=list, description="How the NPC reacts to game events.")
    secrets: list[str] = Field(
        default_factory=list,
        description="What the NPC knows but never says: a password, a spoiler, the twist. A reply that "
        "would say one (in any case, spacing or inflection) is cut before anyone hears it.",
    )

    @field_validator("emotions")
    @classmethod
    def _known_emotions(cls, emotions: list[str]) -> list[str]:
        unknown = [e for e in emotions if e not in KNOWN_EMOTIONS]
        if unknown:
            raise ValueError(f"unknown emotion {unknown[0]!r}; choose from {', '.join(KNOWN_EMOTIONS)}")
        _reject_duplicates(emotions, "emotion")
        return emotions

    @field_validator("actions")
    @classmethod
    def _unique_actions(cls, actions: list[Action]) -> list[Action]:
        _reject_duplicates([a.name for a in actions], "action")
        return actions

    @field_validator("triggers")
    @classmethod
    def _one_trigger_per_event(cls, triggers: list[Trigger]) -> list[Trigger]:
        _reject_duplicates([t.event for t in triggers], "trigger event")
        return triggers

    def trigger_for(self, event: str) -> Trigger | None:
        return next((t for t in self.triggers if t.event == event), None)

    def attended(self, world: Mapping[str, str]) -> dict[str, str]:
        """The world context this NPC pays attention to: the keys of ``context_keys``, or all."""
        keys = self.context_keys
        return {key: value for key, value in world.items() if not keys or key in keys}

    def action(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)

    def lore_for(self, text: str) -> list[LoreEntry]:
        """Lore entries with a trigger keyword in ``text`` (whole words, any case, its last word singular
        or plural: "tunnel" calls up an entry on "tunnels", and "cutters" one on "cutter")."""
        lowered = text.lower()
        return [entry for entry in self.lore if any(_keyword(k).search(lowered) for k in entry.keywords)]


@functools.cache
def _keyword(keyword: str) -> re.Pattern[str]:
    """``keyword`` as a whole-word pattern, its last word with or without a plural's "s" or "es"."""
    word = keyword.lower()
    forms = {word, word + "s", word + "es"}
    if word.endswith("s") and len(word) > 3:  # not "as" -> "a"
        forms.add(word[:-1])
    if word.endswith("es") and len(word) > 4:
        forms.add(word[:-2])
    return re.compile(rf"\b(?:{'|'.join(map(re.escape, sorted(forms, key=len, reverse=True)))})\b")


def _reject_duplicates(names: list[str], kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{kind} {name!r} is declared twice")
        seen.add(name)


def json_schema() -> dict[str, object]:
    schema = Persona.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://npcvoice.dev/schemas/persona-v1.json"
    return schema
