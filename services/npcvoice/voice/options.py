"""Options of the voice service (the ``engine:`` section of its configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from npcvoice.runtime.providers import CpuThreadOptions

BUNDLED_VOICE_ID = "en_US-joe-medium"


class VoiceOptions(CpuThreadOptions):
    model_config = ConfigDict(extra="forbid")

    voice_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders of extra piper voices (NAME.onnx with NAME.onnx.json); the id is NAME.",
    )
    default_voice: str = Field(BUNDLED_VOICE_ID, description="Voice used when a request names none.")
    device: Literal["auto", "cpu", "cuda"] = Field("cpu", description="Where piper runs.")
    max_text_chars: int = Field(2000, ge=1, description="Longest text one request may carry.")
    workers: int = Field(2, ge=1, description="Sentences synthesized at once, across all requests.")
    max_waiting: int = Field(
        16, ge=0, description="Sentences that may wait for a worker; more get RESOURCE_EXHAUSTED."
    )
