"""A small Python client for the conversation gateway: talk to an NPC by text or by voice.

    async with NpcClient("127.0.0.1:50050") as client:
        npc = await client.conversation("blacksmith_hilda", "player-1")
        print(npc.greeting)
        reply = await npc.say("Can you repair my sword?")
        print(reply.text, reply.emotions, reply.latency)
        reply.write_wav("reply.wav")
        await npc.close()

``speak`` sends audio (float32 mono samples) instead, in real time or as fast as possible. A scene of
several NPCs: ``client.conversation("", player, scene=["innkeeper", "guard"])``; a reply then says who
answered (``npc_id``), ``address`` names who the player talks to, ``exchange`` has NPCs talk to each other,
``earshot``, ``join`` and ``leave`` change the scene. A reply
carries its text, the PCM16 audio of every sentence joined, the viseme frames on the same timeline,
emotions, actions and the latency breakdown. A game engine does the same over the Converse stream;
this client is also what the ``npcvoice talk`` command and the benchmarks use.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.audio import encode, resample
from npcvoice.runtime.streams import responses_of

SEND_CHUNK_S = 0.1


class TurnRefused(Exception):
    """The gateway could not take the turn now (a service at capacity): nothing was said or remembered,
    the conversation goes on; send the line again after ``retry_after_s``."""

    def __init__(self, turn_index: int, player_text: str, reason: str, retry_after_s: float) -> None:
        super().__init__(f"turn {turn_index} refused: {reason} (retry after {retry_after_s:g} s)")
        self.turn_index, self.player_text, self.reason = turn_index, player_text, reason
        self.retry_after_s = retry_after_s


@dataclass
class Reply:
    turn_index: int = 0
    player_text: str = ""
    text: str = ""
    audio: bytearray = field(default_factory=bytearray)  # PCM16 mono
    sample_rate: int = 0
    visemes: list[dict[str, Any]] = field(default_factory=list)
    emotions: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    heard_text: str = ""
    cue: str = ""  # when the NPC spoke first: what prompted it
    latency: dict[str, float] = field(default_factory=dict)
    first_audio_at: float = 0.0  # event-loop time the first audio arrived (for measurements)
    drafted: bool = False  # begun on the player's settled words before their final transcript (TurnEnd)
    answered_by: str = ""  # the dialogue model that wrote it (a larger one when the turn escalated)
    escalation: tuple[str, ...] = ()  # why a larger model took the turn (TurnEnd)
    npc_id: str = ""  # the NPC that spoke (in a scene, one of several)
    to_npc_id: str = ""  # in a scene, the NPC it spoke to (an exchange); "": the player

    @property
    def seconds(self) -> float:
        return len(self.audio) / 2 / self.sample_rate if self.sample_rate else 0.0

    def write_wav(self, path: Path | str) -> None:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate or 22050)
            out.writeframes(bytes(self.audio))

    def write_visemes(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps({"sample_rate": self.sample_rate, "frames": self.visemes}, indent=1))


class NpcConversation:
    """One Converse stream. ``say``/``speak`` each return the NPC's reply to that turn."""

    def __init__(
        self,
        stub: conversation_pb2_grpc.ConversationServiceStub,
        config: conversation_pb2.ConverseConfig,
        metadata: list[tuple[str, str]],
    ) -> None:
        self._requests: asyncio.Queue[conversation_pb2.ConverseRequest | None] = asyncio.Queue()
        self._requests.put_nowait(conversation_pb2.ConverseRequest(config=config))
        self._call = stub.Converse(self._outgoing(), metadata=metadata)
        self._responses = aiter(responses_of(self._call))
        self.started = conversation_pb2.SessionStarted()
        self.scene = conversation_pb2.SceneChanged()  # the scene as the gateway last said it is
        self.input_rate = config.input_audio.sample_rate_hz
        self.ended = -1  # the index of the last turn whose TurnEnd came
        # Replies that had ended (sent in full) and were talked over while they still played (the gateway's
        # Interruption after their TurnEnd): turn index -> what the player heard, which memory keeps.
        self.cut_short: dict[int, str] = {}

    async def _outgoing(self) -> AsyncIterator[conversation_pb2.ConverseRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def open(self) -> NpcConversation:
        first = await self._responses.__anext__()
        self.started = first.started
        self.scene = conversation_pb2.SceneChanged(members=first.started.scene)
        return self

    @property
    def greeting(self) -> str:
        return self.started.greeting

    def send(self, request: conversation_pb2.ConverseRequest) -> None:
        self._requests.put_nowait(request)

    async def say(self, text: str) -> Reply:
        self.send(conversation_pb2.ConverseRequest(text=text))
        return await self.reply()

    def set_context(self, values: dict[str, str]) -> None:
        """Tell the NPC about the world now (an empty value removes a key)."""
        self.send(conversation_pb2.ConverseRequest(context=conversation_pb2.WorldContext(values=values)))

    def tell(
        self, name: str, description: str = "", parameters: dict[str, str] | None = None, npc_id: str = ""
    ) -> None:
        """Report a game event (in a scene, to ``npc_id``: the one the player talks to if empty); if the
        NPC's persona has a trigger that speaks, ``reply()`` gets its words."""
        event = conversation_pb2.GameEvent(
            name=name, description=description, parameters=parameters or {}, npc_id=npc_id
        )
        self.send(conversation_pb2.ConverseRequest(event=event))

    async def speak_first(self, instruction: str, npc_id: str = "") -> Reply:
        """Ask the NPC (in a scene, ``npc_id``) to speak without the player saying anything."""
        speak = conversation_pb2.NpcSpeak(instruction=instruction, npc_id=npc_id)
        self.send(conversation_pb2.ConverseRequest(speak=speak))
        return await self.reply()

    async def exchange(self, npc_id: str, to_npc_id: str, instruction: str, lines: int = 2) -> list[Reply]:
        """In a scene: ``npc_id`` says something to ``to_npc_id`` as ``instruction`` asks, who answers, and
        so on for ``lines`` lines; their replies, in order (fewer if one was interrupted)."""
        speak = conversation_pb2.NpcSpeak(
            instruction=instruction, npc_id=npc_id, to_npc_id=to_npc_id, lines=lines
        )
        self.send(conversation_pb2.ConverseRequest(speak=speak))
        replies = [await self.reply()]
        while len(replies) < lines and not replies[-1].interrupted:
            replies.append(await self.reply())
        return replies

    def address(self, npc_id: str) -> None:
        """In a scene: the player talks to ``npc_id`` now (gaze, a UI choice); "" lets names decide."""
        self.send(
            conversation_pb2.ConverseRequest(scene=conversation_pb2.SceneUpdate(addressed_npc_id=npc_id))
        )

    def earshot(self, out_of_earshot: list[str]) -> None:
        """In a scene: these NPCs do not hear the player (nor the replies) from now on; the others do."""
        earshot = conversation_pb2.Earshot(out_of_earshot_npc_ids=out_of_earshot)
        self.send(conversation_pb2.ConverseRequest(scene=conversation_pb2.SceneUpdate(earshot=earshot)))

    def join(self, *npc_ids: str) -> None:
        """NPCs walk into the conversation (it becomes a scene)."""
        self.send(conversation_pb2.ConverseRequest(scene=conversation_pb2.SceneUpdate(join_npc_ids=npc_ids)))

    def leave(self, *npc_ids: str) -> None:
        self.send(conversation_pb2.ConverseRequest(scene=conversation_pb2.SceneUpdate(leave_npc_ids=npc_ids)))

    async def speak(
        self, samples: np.ndarray, sample_rate: int, realtime: bool = False, end_of_speech: bool = True
    ) -> Reply:
        """Send ``samples`` (float32 mono) as the player's voice, then wait for the reply."""
        if sample_rate != self.input_rate:
            samples = resample(samples, sample_rate, self.input_rate)
        step = max(1, int(self.input_rate * SEND_CHUNK_S))
        for start in range(0, len(samples), step):
            self.send(conversation_pb2.ConverseRequest(audio=encode(samples[start : start + step], "pcm16")))
            if realtime:
                await asyncio.sleep(SEND_CHUNK_S)
        if end_of_speech:
            self.send(conversation_pb2.ConverseRequest(end_of_speech=conversation_pb2.EndOfSpeech()))
        return await self.reply()

    async def reply(self) -> Reply:
        """Collect events until the turn ends (``TurnRefused`` if the gateway could not take it now)."""
        reply = Reply()
        async for response in self._responses:
            kind = response.WhichOneof("event")
            if kind == "transcript" and response.transcript.is_final:
                reply.player_text = response.transcript.text
            elif kind == "reply_text":
                reply.text += response.reply_text.delta
            elif kind == "audio":
                chunk = response.audio
                if not reply.audio:
                    reply.first_audio_at = asyncio.get_running_loop().time()
                reply.sample_rate = chunk.format.sample_rate_hz
                reply.audio += chunk.audio
                reply.visemes += [
                    MessageToDict(frame, preserving_proto_field_name=True) for frame in chunk.visemes
                ]
            elif kind == "emotion":
                reply.emotions.append(response.emotion.emotion)
            elif kind == "action":
                reply.actions.append(
                    {"name": response.action.name, "parameters": dict(response.action.parameters)}
                )
            elif kind == "interruption" and response.interruption.turn_index <= self.ended:
                self.cut_short[response.interruption.turn_index] = response.interruption.heard_text
            elif kind == "interruption":
                reply.interrupted, reply.heard_text = True, response.interruption.heard_text
            elif kind == "scene":
                self.scene = response.scene
            elif kind == "refused":
                refused = response.refused
                raise TurnRefused(
                    refused.turn_index, refused.player_text, refused.reason, refused.retry_after_seconds
                )
            elif kind == "turn_end" and response.turn_end.continued:
                self.ended = response.turn_end.turn_index
                reply = Reply()  # the player went on after a pause: the next turn answers the whole line
            elif kind == "turn_end":
                end = response.turn_end
                self.ended = end.turn_index
                reply.turn_index, reply.player_text, reply.cue = end.turn_index, end.player_text, end.cue
                reply.interrupted, reply.drafted = end.interrupted, end.drafted
                reply.answered_by, reply.escalation = end.answered_by, tuple(end.escalation)
                reply.npc_id, reply.to_npc_id = end.npc_id, end.to_npc_id
                reply.latency = {
                    "transcript_s": end.latency.transcript_seconds,
                    "first_token_s": end.latency.first_token_seconds,
                    "first_clause_s": end.latency.first_clause_seconds,
                    "first_audio_s": end.latency.first_audio_seconds,
                    "total_s": end.latency.total_seconds,
                }
                return reply
        raise ConnectionError("the conversation ended before the turn did")

    async def close(self) -> None:
        self._requests.put_nowait(None)
        async for _ in self._responses:
            pass

    async def __aenter__(self) -> NpcConversation:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is None:
            await self.close()
        else:
            self._call.cancel()


class NpcClient:
    def __init__(self, address: str = "127.0.0.1:50050", api_key: str | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._metadata = [("x-api-key", api_key)] if api_key else []
        self.stub = conversation_pb2_grpc.ConversationServiceStub(self._channel)

    async def conversation(
        self,
        npc_id: str,
        player_id: str,
        *,
        voice_reply: bool = True,
        player_name: str = "",
        input_sample_rate: int = 16000,
        output_sample_rate: int = 0,
        frame_rate: int = 0,
        seed: int | None = None,
        scene: list[str] | None = None,
    ) -> NpcConversation:
        """Open a conversation (``seed``: every reply sampled with it, for replies that replay); with
        ``scene``, a conversation with these NPCs (``npc_id`` empty, or the one the player talks to first)."""
        config = conversation_pb2.ConverseConfig(
            scene_npc_ids=scene or [],
            npc_id=npc_id,
            player_id=player_id,
            player_name=player_name,
            reply_mode=conversation_pb2.REPLY_MODE_VOICE if voice_reply else conversation_pb2.REPLY_MODE_TEXT,
            input_audio=audio_pb2.AudioFormat(
                encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=input_sample_rate
            ),
            output_audio=audio_pb2.AudioFormat(
                encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=output_sample_rate
            ),
            visemes=conversation_pb2.VisemeOptions(frame_rate=frame_rate),
            seed=seed,
        )
        return await NpcConversation(self.stub, config, self._metadata).open()

    async def list_npcs(self) -> list[conversation_pb2.NpcInfo]:
        response = await self.stub.ListNpcs(conversation_pb2.ListNpcsRequest(), metadata=self._metadata)
        return list(response.npcs)

    async def reset_memory(self, npc_id: str, player_id: str) -> None:
        """Make the NPC forget the player."""
        request = conversation_pb2.ResetMemoryRequest(npc_id=npc_id, player_id=player_id)
        await self.stub.ResetMemory(request, metadata=self._metadata)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> NpcClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of a PCM16 WAV file (stereo is averaged)."""
    with wave.open(str(path), "rb") as source:
        if source.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
        frames = np.frombuffer(source.readframes(source.getnframes()), "<i2").astype(np.float32) / 32768.0
        channels = source.getnchannels()
        return frames.reshape(-1, channels).mean(axis=1), source.getframerate()
