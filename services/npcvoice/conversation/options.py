"""Options of the conversation gateway (the ``engine:`` section of its configuration)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class GatewayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persona_dir: Path = Field(Path("npc_personas"), description="Directory of persona YAML files.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Where conversation memory lives.")
    speech_address: str = "127.0.0.1:50051"
    dialogue_address: str = "127.0.0.1:50052"
    voice_address: str = "127.0.0.1:50053"
    face_address: str = "127.0.0.1:50054"
