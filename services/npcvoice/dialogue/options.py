"""Options of the dialogue service (the ``engine:`` section of its configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from npcvoice.dialogue.aids import aid_set
from npcvoice.dialogue.remote import RemoteModelOptions
from npcvoice.runtime.providers import CpuThreadOptions

BUNDLED_MODEL_ID = "smollm2-135m"
# The bundled model with the NPC corpus distilled into it (training/: npcvoice tune), which
# `npcvoice prepare-model` builds from the committed adapter; a persona picks it by this name.
TUNED_MODEL_ID = "npc-smollm2-135m"
# The model of a persona that names none: the tuned one. Read blind by readers on held-out personas, its
# replies passed 51 of 205 lines against the bundled model's 8 (docs/conversation-quality.md, session 9).
DEFAULT_MODEL_ID = TUNED_MODEL_ID


class DialogueOptions(CpuThreadOptions):
    model_config = ConfigDict(extra="forbid")

    persona_dir: Path = Field(Path("npc_personas"), description="Directory of persona YAML files.")
    models_dir: Path = Field(
        Path(".models"),
        description="Where `npcvoice prepare-model` puts the bundled model and the models it "
        "prepares; a persona names one by the name it was prepared under.",
    )
    models: dict[str, Path] = Field(
        default_factory=dict,
        description="Model ids a persona may name, each an onnxruntime-genai model folder "
        f"(naming {BUNDLED_MODEL_ID!r} here replaces the prepared bundled model).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the model runs; auto takes CUDA when this onnxruntime-genai has it."
    )
    cuda_graph: bool = Field(
        True,
        description="On CUDA, replay each one-token step as a CUDA graph (about 4x the decode speed on an "
        "H200, same replies); off for debugging.",
    )
    context_tokens: int = Field(
        1024, ge=256, le=8192, description="Longest prompt plus reply one conversation may hold."
    )
    cache_budget_mb: float = Field(
        512.0, ge=0, description="Memory for conversations' KV caches; the least recently used go first."
    )
    prefill_chunk: int = Field(
        128, ge=16, description="Prompt tokens run in one step, so a long prompt does not stall others."
    )
    max_tokens_limit: int = Field(512, ge=1, description="Largest max_tokens a request may ask for.")
    max_player_chars: int = Field(1000, ge=1, description="Longest player line a request may carry.")
    max_memory_chars: int = Field(
        32000, ge=1, description="Most text (turns, summary, facts) a request's memory may carry."
    )
    summary_tokens: int = Field(
        192,
        ge=48,
        le=1024,
        description="Longest rolling summary of a conversation; past it the older part is condensed again "
        "(the newest part is kept as written) and, if need be, its oldest sentences dropped.",
    )
    workers: int = Field(1, ge=1, description="Model steps run at once (one token or prompt chunk each).")
    max_active: int = Field(
        0,
        ge=0,
        description="Replies generated at once (and as many summaries, counted apart: a summary never "
        "takes a reply's place), interleaved token by token; more get "
        "RESOURCE_EXHAUSTED at once (the game is told to try again) rather than a slow reply for everyone. "
        "0: 16 on CUDA; on the CPU 2 per core the model uses (`threads`, else the cores this process may "
        "run on), as every reply in progress shares those cores.",
    )
    first_piece_yield_ms_per_char: float = Field(
        -1.0,
        ge=-1,
        le=100,
        description="After a reply's first piece (the clause or sentence the voice speaks first) is out, "
        "its decoding waits this many ms per character of the piece (at most 500 ms), so that the voice "
        "synthesizes it without the model competing for the same cores; the rest of the reply is needed "
        "only once that piece has played. -1: 6 on CPU, 0 on CUDA.",
    )
    first_piece_priority: bool = Field(
        True,
        description="A reply's steps up to its first piece go before the steps of replies already being "
        "spoken (which only need to stay ahead of playback); off: all replies' steps in arrival order.",
    )
    aids: list[str] | None = Field(
        None,
        description="The hand-written aids on the reply's logits to use (npcvoice.dialogue.aids: "
        "emotion_lean, emotion_calibration, recall, grounding, deflection, caution, openings, scaffolding, "
        "action_keywords, action_taken); unset: each model's own, as its manifest says (else "
        "aids.TUNED_AIDS for a model tuned on the NPC corpus, aids.UNTUNED_AIDS for any other).",
    )
    remote_models: dict[str, RemoteModelOptions] = Field(
        default_factory=dict,
        description="Larger models behind the OpenAI chat-completions protocol, by id: a persona names "
        "one as its model, or escalates to one (dialogue.escalate_to).",
    )
    openai_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the service's own OpenAI-compatible endpoint (/v1/chat/completions, the "
        "model being a persona id); 0: off.",
    )
    openai_host: str = Field("127.0.0.1", description="Address the OpenAI-compatible endpoint listens on.")
    prewarm: bool = Field(
        True, description="At start, prefill each persona's fixed prompt so first meetings start fast."
    )
    cache_wait_s: float = Field(
        2.0, ge=0, description="How long a turn waits for the same conversation's previous turn to let go."
    )

    @field_validator("remote_models")
    @classmethod
    def _remote_ids(cls, remote: dict[str, RemoteModelOptions]) -> dict[str, RemoteModelOptions]:
        for model_id in remote:
            if model_id in (BUNDLED_MODEL_ID, TUNED_MODEL_ID):
                raise ValueError(f"remote model id {model_id!r} is a local model's")
        return remote

    @field_validator("aids")
    @classmethod
    def _known_aids(cls, aids: list[str] | None) -> list[str] | None:
        if aids is not None:
            aid_set(aids)
        return aids
