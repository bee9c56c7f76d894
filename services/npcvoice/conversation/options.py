"""What the gateway is told: its options (the ``engine:`` section of its configuration), set by whoever
runs it, and each conversation's config, sent by the client that opens it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from npcvoice.audio import Encoding
from npcvoice.conversation.redis_urls import parse_redis_url
from npcvoice.runtime.errors import InvalidArgument


class GatewayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persona_dir: Path = Field(Path("npc_personas"), description="Directory of persona YAML files.")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Where conversation memory lives: redis://host:port/db, redis+cluster://node1:port,"
        "node2:port (a Redis Cluster) or redis+sentinel://sentinel1:port,.../MASTER_NAME[/db].",
    )
    speech_address: str = "127.0.0.1:50051"
    dialogue_address: str = "127.0.0.1:50052"
    dialogue_addresses: list[str] = Field(
        default_factory=list,
        description="Several dialogue replicas (host:port, or dns:///name:port for a name that answers one "
        "address per replica); each conversation's calls go to the replica holding its cache. Empty: "
        "dialogue_address alone, which may also be a dns:/// name.",
    )
    dialogue_load_factor: float = Field(
        1.25,
        ge=1.0,
        description="A replica serving more than this times the average load passes new calls on.",
    )
    dialogue_resolve_interval_s: float = Field(
        10.0, gt=0, description="How often a dns:/// dialogue name is looked up again for replicas."
    )
    voice_address: str = "127.0.0.1:50053"
    face_address: str = "127.0.0.1:50054"
    connect_timeout_s: float = Field(
        2.0, gt=0, description="How long a call waits for a downstream service that is reconnecting."
    )
    reply_timeout_s: float = Field(
        60.0, gt=0, description="Deadline of one reply from the dialogue service (the whole stream)."
    )
    busy_retry_after_s: float = Field(
        1.0,
        ge=0,
        description="When a turn is refused because a service is at capacity (TurnRefused): how long the "
        "game is told to wait before it sends the line again.",
    )
    synthesis_timeout_s: float = Field(20.0, gt=0, description="Deadline of one sentence's synthesis.")
    animation_timeout_s: float = Field(5.0, gt=0, description="Deadline of one sentence's visemes.")
    summary_timeout_s: float = Field(60.0, gt=0, description="Deadline of one background summary.")
    settle_summaries: bool = Field(
        False,
        description="A turn first waits for a summary of its conversation still being written (at most "
        "summary_timeout_s), so that a script and seed give the same replies run after run (npcvoice "
        "eval, bench/); off, a turn goes on with the memory it has, and which turn first sees the summary "
        "depends on the machine's speed.",
    )
    memory_timeout_s: float = Field(
        2.0, gt=0, description="How long a turn waits for Redis before it goes on without it."
    )
    replay_interval_s: float = Field(
        0.5, gt=0, description="While Redis is away, how often the gateway tries to write what it holds."
    )
    max_pending_turns: int = Field(
        10000,
        ge=1,
        description="Finished turns held while Redis is away; past this, new turns get RESOURCE_EXHAUSTED.",
    )
    spool_file: Path | None = Field(
        None,
        description="Local file keeping the turns held while Redis is away, so that a gateway restarted "
        "meanwhile still writes them (one file per gateway process); unset: held in memory only.",
    )
    max_text_chars: int = Field(1000, ge=1, description="Longest typed player line.")
    prefill_while_speaking: bool = Field(
        True,
        description="While the player speaks, have dialogue prefill the prompt with the line heard so far "
        "(from interim transcripts), so the reply to the final line only prefills where it differs.",
    )
    prefill_after_turn: bool = Field(
        True,
        description="As soon as a turn is stored (the NPC's reply still playing), have dialogue prefill the "
        "prompt the next line will have up to that line: when the window of recent turns moves, its "
        "history is prefilled while the NPC speaks, not after the player's next line.",
    )
    draft_replies: bool = Field(
        True,
        description="Begin the reply as soon as the player's words are settled (the speech service's "
        "transcript once their silence begins, before it is long enough to end the line), holding all of "
        "it unsent; release it the moment the final transcript says the same, else drop it unheard and "
        "unstored and answer the final.",
    )

    @field_validator("redis_url")
    @classmethod
    def _known_redis_form(cls, url: str) -> str:
        try:
            parse_redis_url(url)
        except InvalidArgument as error:  # a start-up configuration error, not a client's bad request
            raise ValueError(error.message) from error
        return url


@dataclass(frozen=True)
class SessionConfig:
    """What one client asked for when it opened its conversation (its ``ConverseConfig``, checked)."""

    npc_id: str
    player_id: str
    player_name: str
    voice_reply: bool
    input_encoding: Encoding | None  # None: the client sends no audio (typed lines only)
    input_rate: int
    output_encoding: Encoding
    output_rate: int  # 0: the voice's own rate
    frame_rate: int  # 0: the persona's
    frame_set: int  # a face FrameSet value, passed on to the face service
    viseme_events: bool
    interim_transcripts: bool
    seed: int | None = None  # every reply's sampling seed (None: the persona's)
    context: Mapping[str, str] = field(default_factory=dict)  # the world context it starts with
    scene_npc_ids: tuple[str, ...] = ()  # a scene's NPCs (npc_id is one of them); empty: npc_id alone
