"""The five services: their names, proto services, default ports, where their code lives, and what
they offer each other.

The launcher, the CLI, docker-compose.yml and the tests all agree with this table (a test checks
docker-compose.yml against it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the catalog is read by engines too; grpc loads only where a service starts
    from npcvoice.runtime.server import Registration

REDIS_PORT = 6379
# Frame rates the face service animates at; the gateway checks a session's choice against the same list.
FRAME_RATES = (24, 30, 60)


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    grpc_service: str
    port: int
    metrics_port: int

    def registration(self) -> Registration:
        """The service's ``registration`` module says how the runtime starts it."""
        registration = importlib.import_module(f"npcvoice.{self.name}.registration").REGISTRATION
        from npcvoice.runtime.server import Registration

        assert isinstance(registration, Registration)
        return registration


SERVICES: dict[str, ServiceEntry] = {
    entry.name: entry
    for entry in (
        ServiceEntry("speech", "npc.speech.v1.SpeechService", 50051, 9151),
        ServiceEntry("dialogue", "npc.dialogue.v1.DialogueService", 50052, 9152),
        ServiceEntry("voice", "npc.voice.v1.VoiceService", 50053, 9153),
        ServiceEntry("face", "npc.face.v1.FaceService", 50054, 9154),
        ServiceEntry(
            "conversation",
            "npc.conversation.v1.ConversationService",
            50050,
            9150,
        ),
    )
}

# The WebSocket edge (npcvoice edge: the conversation for clients without gRPC), as `npcvoice up` starts it.
EDGE_PORT = 8050

# The dialogue service's OpenAI-compatible endpoint, as `npcvoice up` starts it (dialogue/openai_api.py).
DIALOGUE_OPENAI_PORT = 8052

# Start order for the launcher: the gateway last, once what it composes is up.
START_ORDER = ["speech", "dialogue", "voice", "face", "conversation"]
