"""What the playground serves and where it finds the suite."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from npcvoice.catalog import SERVICES

DEFAULT_PORT = 8150


class PlaygroundOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Loopback only by default: the page edits persona files and memory, and has no login of its own.
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    gateway: str = f"127.0.0.1:{SERVICES['conversation'].port}"
    api_key: str = ""  # the gateway's key, when the suite has one
    persona_dir: Path = Path("npc_personas")
    eval_dir: Path | None = None  # conversation test scripts; default: persona_dir/evals
    player_id: str = "playground"  # the player the page talks as, until the writer picks another

    @property
    def scripts_dir(self) -> Path:
        return self.eval_dir if self.eval_dir is not None else self.persona_dir / "evals"
