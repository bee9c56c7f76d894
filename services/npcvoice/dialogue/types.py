"""What the dialogue's requests carry and what a reply streams back: domain types, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import ReplyEvent
from npcvoice.turns import Turn

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclass(frozen=True)
class SamplingOverrides:
    """What a request changes of the persona's sampling; None keeps the persona's value."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnRequest:
    persona_id: str
    player_text: str
    conversation_id: str = ""
    memory: MemoryView = field(default_factory=MemoryView)
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    player_name: str = ""
    first_clause: bool = False  # release the first clause as its own sentence (for early speech)
    cue: str = ""  # when the NPC speaks first: what prompts it (player_text is then empty)
    prefill_only: bool = False  # put the prompt in the conversation's cache, generate nothing


@dataclass(frozen=True)
class GenerationSummary:
    text: str
    finish_reason: str
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float
    total_s: float
    decode_tokens_per_s: float
    dropped_events: int
    execution_provider: str
    answered_by: str = ""
    escalation: tuple[str, ...] = ()
    remote_tokens: int = 0
    remote_failure: str = ""
    confidence: float = 0.0


# What a reply streams: its events as they are decoded, then one GenerationSummary.
ReplyOutput: TypeAlias = ReplyEvent | GenerationSummary


@dataclass(frozen=True)
class SummaryRequest:
    persona_id: str
    previous_summary: str  # the summary so far, which the new one extends
    turns: list[Turn]
