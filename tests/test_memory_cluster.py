"""Conversation memory on a real Redis Cluster (three masters, each with a replica: six redis-server
processes) and behind a real Sentinel: the same store, save-game RPCs and replay queue as on one Redis,
and a master killed mid-conversation."""

from __future__ import annotations

import logging

import pytest
import redis
from pydantic import ValidationError
from redis.crc import key_slot

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.memory import PARTS, MemoryStore, Retention, TurnRecord
from npcvoice.conversation.options import GatewayOptions
from npcvoice.conversation.redis_urls import memory_client, parse_redis_url
from npcvoice.conversation.registration import REGISTRATION
from npcvoice.launcher import Launcher
from npcvoice.personas import PersonaStore
from npcvoice.runtime.ports import free_port
from npcvoice.turns import Turn
from tests.conftest import PERSONA_DIR
from tests.support.memory import append_turns
from tests.support.redis_cluster import LocalRedisCluster, LocalSentinel
from tests.support.waiting import eventually

NPC = "blacksmith_hilda"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def store(cluster):
    client = memory_client(cluster.url, timeout_s=2.0)
    yield MemoryStore(client)
    await client.aclose()


def _gateway(url: str, store: MemoryStore) -> Gateway:
    # dialogue on a closed port: no background summary may fold the turns these tests count
    options = GatewayOptions(
        persona_dir=PERSONA_DIR, redis_url=url, memory_timeout_s=1.0, replay_interval_s=0.1,
        dialogue_address="127.0.0.1:1",
    )  # fmt: skip
    return Gateway(options, PersonaStore(PERSONA_DIR), store, None)


def _line(player: str, i: int) -> TurnRecord:
    return TurnRecord(NPC, player, [Turn("player", f"line {i}")], [], 0.0, 0.0)


async def test_a_turn_is_stored_whole_in_one_slot_with_its_ttl_and_read_back(cluster, store):
    player = "player-cluster-turn"
    record = TurnRecord(NPC, player, [Turn("player", "My name is Ada."), Turn("npc", "Welcome, Ada.")],
                        ["My name is Ada."], 0.3, 0.2)  # fmt: skip
    await store.record_turn(record, Retention(ttl_s=600, max_turns=50, max_facts=10))
    memory = await store.load(NPC, player)
    assert [t.text for t in memory.turns] == ["My name is Ada.", "Welcome, Ada."]
    assert memory.player_facts == ["My name is Ada."]
    assert (memory.affinity, memory.trust) == pytest.approx((0.3, 0.2))
    keys = [store.key(NPC, player, part) for part in PARTS if part != "summary"]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    master = cluster.master_of(keys[0])
    with redis.Redis(port=master.port) as node:  # the keys live on that master, each with its TTL
        assert all(0 < node.ttl(key) <= 600 for key in keys)


async def test_a_reply_cut_short_after_it_was_stored_is_replaced_on_a_cluster(store):
    player = "player-cluster-cut-short"
    said = Turn("npc", "Welcome to the forge, traveller.")
    await append_turns(store, NPC, player, [Turn("player", "Hello."), said], 600)
    heard = TurnRecord(NPC, player, [Turn("npc", "Welcome to", True, said.time)], [], 0.0, 0.0, replaces=said)
    await store.record_turn(heard, Retention(ttl_s=600, max_turns=50, max_facts=10))
    turns = (await store.load(NPC, player)).turns
    assert [(t.text, t.interrupted) for t in turns] == [("Hello.", False), ("Welcome to", True)]


async def test_the_summary_folds_the_oldest_turns_on_a_cluster(store):
    player = "player-cluster-summary"
    await append_turns(store, NPC, player, [Turn("player", f"old {i}") for i in range(4)], 600)
    await store.fold_summary(NPC, player, 3, "They talked about swords.", Retention(600, 50, 10))
    memory = await store.load(NPC, player)
    assert memory.summary == "They talked about swords."
    assert [t.text for t in memory.turns] == ["old 3"]


async def test_export_reset_and_import_through_the_gateway_on_a_cluster(cluster, store, hosted):
    service = await hosted(
        "conversation", REGISTRATION, {"persona_dir": str(PERSONA_DIR), "redis_url": cluster.url}
    )
    stub = conversation_pb2_grpc.ConversationServiceStub(service.channel)
    player = "player-cluster-save"
    await append_turns(store, NPC, player, [Turn("player", "Remember me."), Turn("npc", "I will.")], 600)
    snapshot = (
        await stub.ExportMemory(conversation_pb2.ExportMemoryRequest(npc_id=NPC, player_id=player))
    ).snapshot
    assert [t.text for t in snapshot.turns] == ["Remember me.", "I will."]
    await stub.ResetMemory(conversation_pb2.ResetMemoryRequest(npc_id=NPC, player_id=player))
    assert (await store.load(NPC, player)).turns == []
    snapshot.summary = "An old friend."
    await stub.ImportMemory(conversation_pb2.ImportMemoryRequest(snapshot=snapshot))
    restored = await store.load(NPC, player)
    assert [t.text for t in restored.turns] == ["Remember me.", "I will."]
    assert restored.summary == "An old friend."


async def test_turns_finished_while_the_whole_cluster_is_down_are_replayed_when_it_is_back(cluster, store):
    gateway = _gateway(cluster.url, store)
    persona = gateway.personas.get(NPC)
    assert persona is not None
    player = "player-cluster-outage"
    assert await gateway.replay.add(_line(player, 0))
    cluster.stop()  # every node, gracefully: the append-only files keep what was written
    try:
        for i in (1, 2, 3):
            await gateway.record(_line(player, i), persona)  # acknowledged: queued, not lost
        assert len(gateway.replay) == 3
    finally:
        for node in cluster.nodes:
            node.start()
        cluster.wait_until_healthy()
    await eventually(lambda: len(gateway.replay) == 0)
    assert [t.text for t in (await store.load(NPC, player)).turns] == [f"line {i}" for i in range(4)]
    await gateway.aclose()


async def test_kill_9_of_a_master_mid_conversation_its_replica_takes_over_and_no_turn_is_lost(tmp_path):
    """What Redis's asynchronous replication can lose: a turn the master acknowledged (its EXEC answered)
    but had not yet sent to its replica when it died. The gateway took that answer as the turn being
    stored, so its replay queue no longer holds it: Redis Cluster does not promise it (WAIT narrows the
    window; only synchronous replication, which Redis does not have, would close it). What the replay
    queue covers: every turn finished from the moment the master stops answering until the replica is
    promoted and the client has learned the new slot map; those are queued and written in order.
    This test makes the replica catch up (WAIT) before the kill, so every acknowledged turn must be there."""
    cluster = LocalRedisCluster(tmp_path)
    cluster.start()
    client = memory_client(cluster.url, timeout_s=1.0)
    store = MemoryStore(client)
    gateway = _gateway(cluster.url, store)
    persona = gateway.personas.get(NPC)
    assert persona is not None
    player = "player-failover"
    try:
        for i in range(10):
            assert await gateway.replay.add(_line(player, i))
        master = cluster.master_of(store.key(NPC, player, "turns"))
        replica = cluster.replica_of(master)
        with redis.Redis(port=master.port) as node:
            assert node.execute_command("WAIT", 1, 5000) == 1  # the replica has all ten
        master.kill()
        queued = 0
        for i in range(10, 30):
            await gateway.record(_line(player, i), persona)
            queued = max(queued, len(gateway.replay))
        assert queued > 0  # the turns right after the kill waited in the queue for the promotion
        await eventually(lambda: len(gateway.replay) == 0, timeout_s=60)
        with redis.Redis(port=replica.port, decode_responses=True) as node:
            assert node.info("replication")["role"] == "master"
        stored = [t.text for t in (await store.load(NPC, player)).turns]
        # in order and none lost (a write cut off by the client's timeout after Redis applied it comes
        # back from the queue a second time: the replay promises at least once)
        assert list(dict.fromkeys(stored)) == [f"line {i}" for i in range(30)]
    finally:
        await gateway.aclose()
        await client.aclose()
        cluster.stop()


async def test_memory_behind_a_sentinel_is_stored_and_read_through_the_master_it_names(tmp_path):
    sentinel = LocalSentinel(tmp_path)
    sentinel.start()
    client = memory_client(sentinel.url, timeout_s=2.0)
    try:
        store = MemoryStore(client)
        await append_turns(store, NPC, "player-sentinel", [Turn("player", "Through the sentinel.")], 600)
        assert [t.text for t in (await store.load(NPC, "player-sentinel")).turns] == ["Through the sentinel."]
        with redis.Redis(port=sentinel.master.port) as master:
            assert master.exists(store.key(NPC, "player-sentinel", "turns"))
    finally:
        await client.aclose()
        sentinel.stop()


def test_up_with_a_cluster_or_sentinel_url_checks_each_master_that_holds_the_memory(
    cluster, tmp_path, caplog
):
    sentinel = LocalSentinel(tmp_path)
    sentinel.start()
    try:
        with redis.Redis(port=sentinel.master.port) as master:  # this one keeps nothing on disk
            master.config_set("appendonly", "no")
            master.config_set("save", "")
        with caplog.at_level(logging.INFO, logger="npcvoice.launcher"):
            for url in (cluster.url, sentinel.url):
                launcher = Launcher([], redis_url=url)
                launcher.start()
                launcher.stop()
    finally:
        sentinel.stop()
    said = [r.getMessage() for r in caplog.records]
    checked = [m for m in said if m.startswith("using the existing Redis at")]
    masters = {
        n.port for n in cluster.alive() if redis.Redis(port=n.port).info("replication")["role"] == "master"
    }
    for port in masters:
        assert any(f":{port}/0 (not started by npcvoice" in m and f"Redis Cluster at {cluster.url}" in m
                   for m in checked), checked  # fmt: skip
    assert sum("Redis Cluster" in m for m in checked) == len(masters) == 3
    named = f"127.0.0.1:{sentinel.master.port}/0"
    assert any(named in m and f"the master the Sentinel names at {sentinel.url}" in m for m in checked), said
    assert any(named in m and "keeps nothing on disk" in m for m in said), said


def test_up_with_a_cluster_url_where_nothing_answers_says_so():
    port = free_port()
    with pytest.raises(
        RuntimeError, match=f"nothing answers at --redis-url redis\\+cluster://127.0.0.1:{port}"
    ):
        Launcher([], redis_url=f"redis+cluster://127.0.0.1:{port}").start()


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "extra"),
    [
        ("redis://127.0.0.1:6379/0", "standalone", [], {}),
        ("rediss://:pw@cache.example:6380/2", "standalone", [], {}),
        ("redis+cluster://a:7000,b:7001", "cluster", [("a", 7000), ("b", 7001)], {}),
        ("rediss+cluster://:s3cret@a:7000/0", "cluster", [("a", 7000)], {"password": "s3cret", "tls": True}),
        ("redis+sentinel://s1:26379,s2/mymaster/3", "sentinel", [("s1", 26379), ("s2", 26379)], {"service_name": "mymaster", "db": 3}),
        ("redis+sentinel://:pw@s1:26379/main?sentinel_password=x", "sentinel", [("s1", 26379)], {"password": "pw", "sentinel_password": "x", "db": 0}),
    ],
)  # fmt: skip
def test_redis_url_forms(url, kind, hosts, extra):
    target = parse_redis_url(url)
    assert (target.kind, target.hosts) == (kind, hosts)
    for name, value in extra.items():
        assert getattr(target, name) == value, name
    assert GatewayOptions(redis_url=url).redis_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://a:1", "scheme must be redis, rediss, unix, redis+cluster or redis+sentinel"),
        ("redis+cluster://a:7000/3", "a Redis Cluster has only database 0"),
        ("redis+sentinel://s1:26379", "expected redis+sentinel://host:port/MASTER_NAME[/DB]"),
        ("redis+cluster://a:port", "bad host 'a:port'"),
    ],
)
def test_a_redis_url_of_no_known_form_stops_the_gateway_at_start_naming_it(url, message):
    with pytest.raises(ValidationError, match="redis_url") as caught:
        GatewayOptions(redis_url=url)
    assert message in str(caught.value)
