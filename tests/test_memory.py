"""Conversation memory in a real Redis, through the gateway's save-game RPCs over real gRPC."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.conversation.memory import MemoryStore
from npcvoice.conversation.registration import REGISTRATION
from npcvoice.turns import Turn
from tests.conftest import PERSONA_DIR
from tests.support.grpc_status import status_of
from tests.support.memory import append_turns

NPC = "blacksmith_hilda"


@pytest.fixture
async def store(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    yield MemoryStore(client)
    await client.aclose()


@pytest.fixture
async def gateway(hosted, redis_server):
    service = await hosted(
        "conversation", REGISTRATION, {"persona_dir": str(PERSONA_DIR), "redis_url": redis_server.url}
    )
    return conversation_pb2_grpc.ConversationServiceStub(service.channel)


async def test_export_reset_import_restores_a_players_memory(store, gateway):
    player = "player-export"
    await append_turns(
        store,
        NPC,
        player,
        [Turn("player", "My name is Aric."), Turn("npc", "Mind the sparks, Aric.")],
        3600,
    )
    exported = (
        await gateway.ExportMemory(conversation_pb2.ExportMemoryRequest(npc_id=NPC, player_id=player))
    ).snapshot
    assert [(t.role, t.text) for t in exported.turns] == [
        ("player", "My name is Aric."),
        ("npc", "Mind the sparks, Aric."),
    ]
    assert exported.version == 1 and exported.npc_id == NPC and exported.player_id == player

    await gateway.ResetMemory(conversation_pb2.ResetMemoryRequest(npc_id=NPC, player_id=player))
    assert (await store.load(NPC, player)).turns == []

    exported.summary = "Aric wants a sword."
    exported.player_facts.append("The player is called Aric.")
    exported.affinity = 0.4
    await gateway.ImportMemory(conversation_pb2.ImportMemoryRequest(snapshot=exported))
    restored = await store.load(NPC, player)
    assert [t.text for t in restored.turns] == ["My name is Aric.", "Mind the sparks, Aric."]
    assert restored.summary == "Aric wants a sword." and restored.player_facts == [
        "The player is called Aric."
    ]
    assert restored.affinity == pytest.approx(0.4)


async def test_one_conversations_keys_share_a_cluster_slot_and_expire_together(store, redis_server):
    player = "player-slots"
    await append_turns(store, NPC, player, [Turn("player", "Hello.")], 120)
    keys = [store.key(NPC, player, part) for part in ("turns", "summary", "facts", "relationship")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    client = aioredis.Redis.from_url(redis_server.url)
    assert 0 < await client.ttl(keys[0]) <= 120
    await client.aclose()


async def test_memory_of_one_player_is_not_anothers(store):
    await append_turns(store, NPC, "player-a", [Turn("player", "I am A.")], 60)
    await append_turns(store, NPC, "player-b", [Turn("player", "I am B.")], 60)
    assert [t.text for t in (await store.load(NPC, "player-a")).turns] == ["I am A."]
    assert [t.text for t in (await store.load("innkeeper_tobin", "player-a")).turns] == []


@pytest.mark.parametrize(
    ("call", "request_", "code", "message"),
    [
        ("ExportMemory", conversation_pb2.ExportMemoryRequest(npc_id="nobody", player_id="p"), grpc.StatusCode.NOT_FOUND, "NPC 'nobody' not found"),
        ("ExportMemory", conversation_pb2.ExportMemoryRequest(npc_id=NPC, player_id=""), grpc.StatusCode.INVALID_ARGUMENT, "player_id: must be 1-128 characters"),
        ("ResetMemory", conversation_pb2.ResetMemoryRequest(npc_id="a b", player_id="p"), grpc.StatusCode.INVALID_ARGUMENT, "npc_id: must be 1-128 characters"),
        ("ImportMemory", conversation_pb2.ImportMemoryRequest(snapshot=conversation_pb2.MemorySnapshot(version=2, npc_id=NPC, player_id="p")),
         grpc.StatusCode.INVALID_ARGUMENT, "snapshot.version: must be 1, got 2"),
        ("ImportMemory", conversation_pb2.ImportMemoryRequest(snapshot=conversation_pb2.MemorySnapshot(
            version=1, npc_id=NPC, player_id="p", turns=[conversation_pb2.MemoryTurn(role="narrator", text="x")])),
         grpc.StatusCode.INVALID_ARGUMENT, "snapshot.turns[0].role: must be 'player', 'npc' or 'event', got 'narrator'"),
        ("ImportMemory", conversation_pb2.ImportMemoryRequest(snapshot=conversation_pb2.MemorySnapshot(version=1, npc_id=NPC, player_id="p", trust=3)),
         grpc.StatusCode.INVALID_ARGUMENT, "snapshot.trust: must be between -1 and 1, got 3.0"),
    ],
)  # fmt: skip
async def test_bad_memory_requests_get_their_status(gateway, call, request_, code, message):
    got, details = await status_of(getattr(gateway, call)(request_))
    assert got == code
    assert details.startswith(message), details


async def test_a_failed_import_leaves_memory_as_it_was(store, gateway):
    player = "player-intact"
    await append_turns(store, NPC, player, [Turn("player", "Keep this.")], 60)
    bad = conversation_pb2.MemorySnapshot(version=1, npc_id=NPC, player_id=player, affinity=7)
    await status_of(gateway.ImportMemory(conversation_pb2.ImportMemoryRequest(snapshot=bad)))
    assert [t.text for t in (await store.load(NPC, player)).turns] == ["Keep this."]


async def test_without_redis_memory_calls_are_unavailable_not_a_crash(hosted):
    service = await hosted(
        "conversation", REGISTRATION, {"persona_dir": str(PERSONA_DIR), "redis_url": "redis://127.0.0.1:1/0"}
    )
    stub = conversation_pb2_grpc.ConversationServiceStub(service.channel)
    code, details = await status_of(
        stub.ExportMemory(conversation_pb2.ExportMemoryRequest(npc_id=NPC, player_id="p"))
    )
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("memory store (Redis) unavailable")


async def test_turns_finished_at_once_by_several_sessions_are_each_stored_once(store, redis_server):
    import asyncio

    from npcvoice.conversation.gateway import Gateway
    from npcvoice.conversation.memory import TurnRecord
    from npcvoice.conversation.options import GatewayOptions
    from npcvoice.personas import PersonaStore

    personas = PersonaStore(PERSONA_DIR)
    gateway = Gateway(
        GatewayOptions(persona_dir=PERSONA_DIR, redis_url=redis_server.url), personas, store, None
    )
    player = "player-at-once"
    records = [TurnRecord(NPC, player, [Turn("player", f"line {i}")], [], 0.0, 0.0) for i in range(12)]
    persona = personas.get(NPC)
    assert persona is not None
    await asyncio.gather(*(gateway.record(record, persona) for record in records))
    stored = [t.text for t in (await store.load(NPC, player)).turns]
    assert sorted(stored) == sorted(f"line {i}" for i in range(12))
    await gateway.aclose()


async def test_a_turn_that_never_read_memory_does_not_overwrite_the_relationship(store):
    from npcvoice.conversation.memory import Retention, TurnRecord

    player = "player-relationship"
    retention = Retention.of(None)
    await store.record_turn(TurnRecord(NPC, player, [Turn("player", "Hi.")], [], 0.6, 0.4), retention)
    blind = TurnRecord(NPC, player, [Turn("player", "Hello again.")], [], 0.0, 0.0, relationship_known=False)
    await store.record_turn(blind, retention)
    memory = await store.load(NPC, player)
    assert (memory.affinity, memory.trust) == pytest.approx((0.6, 0.4))
    assert [t.text for t in memory.turns] == ["Hi.", "Hello again."]


async def test_a_reply_cut_short_after_it_was_stored_becomes_what_was_heard_in_place(store):
    """A reply stored in full, then talked over while it still played: its line (found wherever it is
    now) becomes the heard part, marked interrupted, or goes when nothing of it was heard; a line no longer
    stored (folded into the summary) changes nothing."""
    from npcvoice.conversation.memory import Retention, TurnRecord

    player = "player-store-cut-short"
    retention = Retention.of(None)
    said = Turn("npc", "The forge burns hot tonight. Come back at dawn.")
    quiet = Turn("npc", "Mind the anvil.")
    for lines in ([Turn("player", "Hello.")], [said], [Turn("event", "The player paid 5 gold.")], [quiet]):
        await store.record_turn(TurnRecord(NPC, player, lines, [], 0.2, 0.1), retention)
    heard = Turn("npc", "The forge burns", interrupted=True, time=said.time)
    await store.record_turn(TurnRecord(NPC, player, [heard], [], 0.2, 0.1, replaces=said), retention)
    await store.record_turn(TurnRecord(NPC, player, [], [], 0.2, 0.1, replaces=quiet), retention)
    gone = Turn("npc", "A line the summary holds now.")
    await store.record_turn(TurnRecord(NPC, player, [heard], [], 0.2, 0.1, replaces=gone), retention)
    memory = await store.load(NPC, player)
    assert [(t.role, t.text, t.interrupted) for t in memory.turns] == [
        ("player", "Hello.", False),
        ("npc", "The forge burns", True),
        ("event", "The player paid 5 gold.", False),
    ]
