"""Driving the conversation gateway as a game would: a Converse stream message by message, the options
that point a gateway at the other services, and the memory it stored."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.audio import encode
from tests.conftest import HostedService

NPC = "blacksmith_hilda"


def gateway_options(test_persona_dir, redis_server, speech, dialogue, voice, face) -> dict[str, Any]:
    return {
        "persona_dir": str(test_persona_dir),
        "redis_url": redis_server.url,
        "speech_address": speech.host.address,
        "dialogue_address": dialogue.host.address,
        "voice_address": voice.host.address,
        "face_address": face.host.address,
        "memory_timeout_s": 5.0,  # the in-process services share one event loop; Redis itself is fast
        "replay_interval_s": 0.2,
    }


def stub(service: HostedService) -> conversation_pb2_grpc.ConversationServiceStub:
    return conversation_pb2_grpc.ConversationServiceStub(service.channel)


@dataclass
class TurnOutput:
    started: conversation_pb2.SessionStarted | None = None
    transcripts: list[str] = field(default_factory=list)
    text: str = ""
    audio: list[conversation_pb2.ReplyAudio] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    emotions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    interruption: conversation_pb2.Interruption | None = None
    # An earlier turn, sent in full, talked over while it still played (its Interruption came after its
    # TurnEnd, before this turn's events).
    cut_short: conversation_pb2.Interruption | None = None
    end: conversation_pb2.TurnEnd = field(default_factory=conversation_pb2.TurnEnd)
    ended: bool = False
    refused: conversation_pb2.TurnRefused | None = None  # the gateway could not take the turn now
    parts_dropped: int = 0  # replies to a part of the line, dropped unsaid when the player went on
    first_audio_at: float = 0.0  # when its first audio arrived (time.monotonic())


def config(player: str, npc: str = NPC, **kwargs: Any) -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(
        config=conversation_pb2.ConverseConfig(npc_id=npc, player_id=player, **kwargs)
    )


class Conversation:
    """A Converse stream driven message by message, as a game would."""

    def __init__(self, service: HostedService, *first: conversation_pb2.ConverseRequest) -> None:
        self.requests: asyncio.Queue[conversation_pb2.ConverseRequest | None] = asyncio.Queue()
        for request in first:
            self.requests.put_nowait(request)

        async def requests():
            while (request := await self.requests.get()) is not None:
                yield request

        self.call = stub(service).Converse(requests())
        self.responses = self.call.__aiter__()
        self.ended = -1  # the index of the last turn whose TurnEnd came

    def send(self, **request: Any) -> None:
        self.requests.put_nowait(conversation_pb2.ConverseRequest(**request))

    def send_speech(self, samples: np.ndarray, rate: int) -> None:
        """The player's voice, as a game captures it: PCM16 chunks of 100 ms (sent at once, not paced)."""
        step = rate // 10
        for start in range(0, len(samples), step):
            self.send(audio=pcm16(samples[start : start + step]))

    async def next(self) -> conversation_pb2.ConverseResponse:
        return await asyncio.wait_for(self.responses.__anext__(), 120)

    async def turn(self, out: TurnOutput | None = None) -> TurnOutput:
        """Collect events until the next TurnEnd (or TurnRefused)."""
        out = out or TurnOutput()
        while not out.ended and out.refused is None:
            response = await self.next()
            kind = response.WhichOneof("event")
            out.events.append(kind or "")
            if kind == "started":
                out.started = response.started
            elif kind == "transcript" and response.transcript.is_final:
                out.transcripts.append(response.transcript.text)
            elif kind == "reply_text":
                out.text += response.reply_text.delta
            elif kind == "audio":
                out.audio.append(response.audio)
                out.first_audio_at = out.first_audio_at or time.monotonic()
            elif kind == "emotion":
                out.emotions.append(response.emotion.emotion)
            elif kind == "action":
                out.actions.append(response.action.name)
            elif kind == "interruption" and response.interruption.turn_index <= self.ended:
                out.cut_short = response.interruption
            elif kind == "interruption":
                out.interruption = response.interruption
            elif kind == "turn_end":
                out.end, out.ended = response.turn_end, True
                self.ended = response.turn_end.turn_index
            elif kind == "refused":
                out.refused = response.refused
        return out

    async def spoken_turn(self) -> TurnOutput:
        """The turn that answers the player's spoken line. Where the speech service cut the line at a
        pause (synthesized test speech varies from one run to the next, as people do), the reply to the
        first part is dropped unsaid when the player goes on: that turn is skipped, and counted."""
        dropped = 0
        while True:
            out = await self.turn()
            unsaid = out.ended and out.end.interrupted and not out.end.reply_text and not out.audio
            if not unsaid:
                out.parts_dropped = dropped
                return out
            dropped += 1

    async def close(self) -> None:
        self.requests.put_nowait(None)
        async for _ in self.responses:
            pass


async def export(service: HostedService, player: str, npc: str = NPC) -> conversation_pb2.MemorySnapshot:
    request = conversation_pb2.ExportMemoryRequest(npc_id=npc, player_id=player)
    return (await stub(service).ExportMemory(request)).snapshot


def pcm16(samples: np.ndarray) -> bytes:
    return encode(np.asarray(samples, np.float32), "pcm16")
