"""The gateway when something fails: a downstream service killed mid-turn, Redis restarted, the gateway
itself killed while Redis is away, and a Redis outage long enough to fill the replay queue. Every
acknowledged turn ends up in Redis; every failure gets a status that says what failed."""

from __future__ import annotations

import os
import signal
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.conversation.gateway import MEMORY_HEALTH
from npcvoice.conversation.registration import REGISTRATION
from npcvoice.redis_server import RedisServer
from npcvoice.runtime.ports import free_port
from tests.conftest import HostedService, start_service
from tests.support.conversation import Conversation, config, export, gateway_options
from tests.support.processes import serve
from tests.support.waiting import eventually

TEXT = conversation_pb2.REPLY_MODE_TEXT
COURIER = "courier_quick_test"


class Remote:
    """A service running as a process, addressed like a hosted one."""

    def __init__(self, port: int) -> None:
        self.host = type("Address", (), {"address": f"127.0.0.1:{port}"})()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of the test's own, to stop and start (not started yet); stopped after the test."""
    redis = RedisServer(tmp_path / "redis", free_port())
    yield redis
    redis.stop()


async def memory_health(service: HostedService | grpc.aio.Channel) -> int:
    channel = service.channel if isinstance(service, HostedService) else service
    request = health_pb2.HealthCheckRequest(service=MEMORY_HEALTH)
    return (await health_pb2_grpc.HealthStub(channel).Check(request)).status


async def until_memory_serving(service: HostedService) -> None:
    """Until the gateway reports its memory store back (everything it held is written)."""

    async def serving() -> bool:
        return await memory_health(service) == health_pb2.HealthCheckResponse.SERVING

    await eventually(serving, 10)


async def player_lines(service: HostedService, player: str, npc: str) -> list[str]:
    """The player's lines of this conversation, as stored in Redis."""
    return [t.text for t in (await export(service, player, npc)).turns if t.role == "player"]


async def test_kill_9_of_the_voice_service_mid_turn_gives_unavailable_and_a_later_turn_works(
    test_persona_dir, redis_server, speech_service, dialogue_service, face_service
):
    port = free_port()

    def start_voice() -> subprocess.Popen[bytes]:
        return serve("voice", port, {})

    voice = start_voice()
    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, Remote(port), face_service
    )
    options["synthesis_timeout_s"] = 5.0
    service = await start_service("conversation", REGISTRATION, options)
    try:
        player = "player-kill"
        conversation = Conversation(service, config(player))
        conversation.send(text="Hello! Who are you?")
        assert (await conversation.next()).WhichOneof("event") == "started"
        os.kill(voice.pid, signal.SIGKILL)  # before the first sentence reaches the voice service
        voice.wait(10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await conversation.turn()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "voice service at 127.0.0.1:" in (caught.value.details() or "")
        assert (await export(service, player)).turns == []  # the failed turn left memory untouched

        voice = start_voice()
        conversation = Conversation(service, config(player))
        conversation.send(text="Hello again!")
        out = await conversation.turn()
        await conversation.close()
        assert out.audio and not out.end.interrupted
    finally:
        voice.kill()
        voice.wait(10)
        await service.channel.close()
        await service.host.stop(grace=0)


async def test_redis_restarted_mid_conversation_loses_no_acknowledged_turn(
    own_redis, hosted, test_persona_dir, speech_service, dialogue_service, voice_service, face_service
):
    redis = own_redis
    redis.start()
    options = gateway_options(
        test_persona_dir, redis, speech_service, dialogue_service, voice_service, face_service
    )
    service = await hosted("conversation", REGISTRATION, options)
    player, npc = "player-redis", COURIER
    conversation = Conversation(service, config(player, npc, reply_mode=TEXT))
    acknowledged = []
    conversation.send(text="First, while Redis is up.")
    acknowledged.append((await conversation.turn()).end)
    redis.stop()
    for line in ("Second, Redis is gone.", "Third, still gone."):
        conversation.send(text=line)
        acknowledged.append((await conversation.turn()).end)  # the turn still completes
    assert await memory_health(service) == health_pb2.HealthCheckResponse.NOT_SERVING
    redis.start()

    await until_memory_serving(service)
    conversation.send(text="Fourth, Redis is back.")
    acknowledged.append((await conversation.turn()).end)
    await conversation.close()
    assert await player_lines(service, player, npc) == [end.player_text for end in acknowledged]


async def test_a_scene_keeps_each_npc_s_own_view_of_it_through_a_redis_restart(
    own_redis, hosted, test_persona_dir, speech_service, dialogue_service, voice_service, face_service
):
    """Two NPCs in a scene, Redis restarted mid-scene: each NPC's memory holds its own lines and what it
    overheard of the other's, in order, nothing lost."""
    own_redis.start()
    options = gateway_options(
        test_persona_dir, own_redis, speech_service, dialogue_service, voice_service, face_service
    )
    service = await hosted("conversation", REGISTRATION, options)
    wren, player = "herbalist_events_test", "player-scene-redis"
    scene = conversation_pb2.ConverseConfig(player_id=player, scene_npc_ids=[COURIER, wren], reply_mode=TEXT)
    conversation = Conversation(service, conversation_pb2.ConverseRequest(config=scene))
    await conversation.next()  # started
    conversation.send(text="Wren, do you sell mandrake root?")
    to_wren = (await conversation.turn()).end
    own_redis.stop()
    conversation.send(text="Fenn, any letters for me?")
    to_fenn = (await conversation.turn()).end
    own_redis.start()
    await until_memory_serving(service)
    await conversation.close()

    def said_to(end: conversation_pb2.TurnEnd, name: str) -> list[tuple[str, str]]:
        return [("event", f'The player said to {name}: "{end.player_text}"'),
                ("event", f'{name} answered: "{end.reply_text}"')]  # fmt: skip

    own = lambda end: [("player", end.player_text), ("npc", end.reply_text)]  # noqa: E731
    fenn = [(t.role, t.text) for t in (await export(service, player, COURIER)).turns]
    assert (to_wren.npc_id, to_fenn.npc_id) == (wren, COURIER)
    assert fenn == said_to(to_wren, "Wren the Herbalist") + own(to_fenn)
    wren_view = [(t.role, t.text) for t in (await export(service, player, wren)).turns]
    assert wren_view == own(to_wren) + said_to(to_fenn, "Fenn the Courier")


async def test_a_gateway_killed_while_redis_is_away_writes_every_acknowledged_turn_after_its_restart(
    tmp_path, test_persona_dir, speech_service, dialogue_service, voice_service, face_service
):
    redis = RedisServer(tmp_path / "redis", free_port())
    redis.start()
    port = free_port()
    spool = tmp_path / "gateway" / "spool.jsonl"
    options = gateway_options(
        test_persona_dir, redis, speech_service, dialogue_service, voice_service, face_service
    )
    options |= {"spool_file": spool, "memory_timeout_s": 1.0}
    gateway = serve("conversation", port, options)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    remote = HostedService(host=None, channel=channel)  # type: ignore[arg-type]
    try:
        player = "player-spool"
        conversation = Conversation(remote, config(player, COURIER, reply_mode=TEXT))
        acknowledged = []
        conversation.send(text="First, while Redis is up.")
        acknowledged.append((await conversation.turn()).end.player_text)
        redis.stop()
        for line in ("Second, Redis is gone.", "Third, still gone."):
            conversation.send(text=line)
            acknowledged.append((await conversation.turn()).end.player_text)
        assert spool.exists()
        os.kill(gateway.pid, signal.SIGKILL)  # the gateway dies with two turns not yet in Redis
        gateway.wait(10)
        conversation.call.cancel()

        redis.start()
        gateway = serve("conversation", port, options)  # the same spool: it replays what it kept

        async def all_written() -> bool:
            stored = await export(remote, player, COURIER)
            return len([t for t in stored.turns if t.role == "player"]) >= len(acknowledged)

        await eventually(all_written)
        stored = await export(remote, player, COURIER)
        assert [t.text for t in stored.turns if t.role == "player"] == acknowledged
        assert await memory_health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert not spool.exists()  # removed once everything in it is written
    finally:
        await channel.close()
        gateway.kill()
        gateway.wait(10)
        redis.stop()


async def test_while_the_replay_queue_is_full_new_turns_are_refused_and_none_is_dropped(
    own_redis, hosted, test_persona_dir, speech_service, dialogue_service, voice_service, face_service
):
    redis = own_redis
    redis.start()
    options = gateway_options(
        test_persona_dir, redis, speech_service, dialogue_service, voice_service, face_service
    )
    options |= {"max_pending_turns": 1, "memory_timeout_s": 1.0}
    service = await hosted("conversation", REGISTRATION, options)
    player = "player-full"
    redis.stop()
    conversation = Conversation(service, config(player, COURIER, reply_mode=TEXT))
    conversation.send(text="One turn fits in the queue.")
    kept = (await conversation.turn()).end.player_text
    conversation.send(text="The next does not: it is refused, and the stream stays open.")
    refused = (await conversation.turn()).refused
    assert refused is not None and "finished turns are waiting" in refused.reason

    redis.start()

    await until_memory_serving(service)
    assert await player_lines(service, player, COURIER) == [kept]
    conversation.send(text="Redis is back.")  # on the same stream
    again = (await conversation.turn()).end.player_text
    assert await player_lines(service, player, COURIER) == [kept, again]


async def test_a_session_that_starts_while_redis_is_away_talks_and_its_turns_reach_redis_later(
    own_redis, hosted, test_persona_dir, speech_service, dialogue_service, voice_service, face_service
):
    redis = own_redis
    options = gateway_options(
        test_persona_dir, redis, speech_service, dialogue_service, voice_service, face_service
    )
    options["memory_timeout_s"] = 1.0
    service = await hosted("conversation", REGISTRATION, options)
    player = "player-no-redis"
    conversation = Conversation(service, config(player, COURIER, reply_mode=TEXT))
    conversation.send(text="Hello, is anyone there?")
    out = await conversation.turn()
    assert out.started is not None and out.started.remembered_turns == 0
    assert out.end.reply_text  # the NPC answers without its memory store
    assert await memory_health(service) == health_pb2.HealthCheckResponse.NOT_SERVING
    redis.start()

    await until_memory_serving(service)
    conversation.send(text="Good, now you remember.")
    await conversation.turn()
    await conversation.close()
    assert await player_lines(service, player, COURIER) == [
        out.end.player_text,
        "Good, now you remember.",
    ]


async def test_kill_9_of_the_speech_service_while_the_player_talks_ends_the_stream_at_once_naming_it(
    test_persona_dir, redis_server, dialogue_service, voice_service, face_service
):
    import numpy as np

    from npcvoice.api.npc.audio.v1 import audio_pb2
    from tests.support.conversation import pcm16

    port = free_port()
    speech = serve("speech", port, {})
    options = gateway_options(
        test_persona_dir, redis_server, Remote(port), dialogue_service, voice_service, face_service
    )
    service = await start_service("conversation", REGISTRATION, options)
    try:
        audio_format = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=16000)
        conversation = Conversation(service, config("player-speech-dies", input_audio=audio_format))
        assert (await conversation.next()).WhichOneof("event") == "started"
        conversation.send(audio=pcm16(np.zeros(1600, np.float32)))  # the speech stream is open
        os.kill(speech.pid, signal.SIGKILL)
        speech.wait(10)
        # The client keeps its side open and sends nothing more: the error must come without it.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await conversation.next()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "speech service at 127.0.0.1:" in (caught.value.details() or "")
    finally:
        speech.kill()
        speech.wait(10)
        await service.channel.close()
        await service.host.stop(grace=0)
