"""Soak: a bounded load on the local suite, long enough to see leaks and lost turns.

    .venv/bin/python -m bench.soak [--conversations 8] [--minutes 10] [--base-port 51300] [--redis-port 16379]

Redis and the five services run as their own processes on loopback (gRPC and metrics ports from
``--base-port``). Each conversation talks until the time is up: typed lines, spoken lines (the player's
voice streamed in real time) and barge-ins (a second line typed while the NPC is still answering the
first). Halfway through, Redis is stopped for ``--redis-down-s`` and started again (from its append-only
file). Then it checks, and exits 1 if one fails:

- no turn failed (every turn ended with TurnEnd, none with an error status);
- every acknowledged turn (each TurnEnd's player line) is in Redis, in order (the soak's personas have
  ``summarize_after: 1000``, so no line is folded into a summary and each can be found word for word);
- every memory key in Redis carries a TTL;
- each process's memory (RSS) is flat after warm-up: less than ``--max-growth`` (10 %) above its value
  at the end of warm-up.

It prints the first-audio latency at the start and at the end of the run (the start is the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import redis
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import REPO_ROOT, machine, p50, running_service, table
from bench.conversation import LINES, RATE, player_voices
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.client import NpcClient, NpcConversation, Reply
from npcvoice.conversation.gateway import MEMORY_HEALTH
from npcvoice.conversation.memory import MemoryStore
from npcvoice.conversation.redis_urls import memory_client
from npcvoice.redis_server import RedisServer

NPCS = ["blacksmith_hilda", "innkeeper_tobin", "guard_captain_vael"]
SERVICE_PORTS = {"conversation": 0, "speech": 1, "dialogue": 2, "voice": 3, "face": 4}  # + base port


@dataclass
class Tally:
    started: float
    acknowledged: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)  # (when, kind, first audio s)
    kinds: dict[str, int] = field(default_factory=dict)
    interrupted: int = 0
    failed: list[str] = field(default_factory=list)

    def ack(self, npc: str, player: str, kind: str, reply: Reply) -> None:
        self.acknowledged.setdefault((npc, player), []).append(reply.player_text)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.interrupted += reply.interrupted
        if not reply.interrupted and reply.latency.get("first_audio_s"):
            self.latencies.append((time.monotonic() - self.started, kind, reply.latency["first_audio_s"]))


def soak_personas(directory: Path) -> Path:
    """The shipped personas, with summaries off so every stored line stays word for word."""
    for source in (REPO_ROOT / "npc_personas").glob("*.yaml"):
        persona = yaml.safe_load(source.read_text())
        persona["memory"] = {**persona.get("memory", {}), "summarize_after": 1000}
        (directory / source.name).write_text(yaml.safe_dump(persona, sort_keys=False))
    return directory


@dataclass
class Suite:
    address: str
    redis: RedisServer
    pids: dict[str, int]


@contextlib.contextmanager
def suite(base_port: int, redis_port: int, data: Path) -> Iterator[Suite]:
    redis_server = RedisServer(data / "redis", redis_port)
    redis_server.start()
    personas = soak_personas(Path(tempfile.mkdtemp(dir=data)))
    with contextlib.ExitStack() as stack:
        stack.callback(redis_server.stop)
        addresses: dict[str, str] = {}
        pids: dict[str, int] = {}
        for name in ("speech", "dialogue", "voice", "face", "conversation"):
            port = base_port + SERVICE_PORTS[name]
            flags = ["--metrics-port", str(port + 10)]
            if name in ("dialogue", "conversation"):
                flags += ["--option", f"persona_dir={personas}"]
            if name == "conversation":
                options = [f"redis_url={redis_server.url}", f"spool_file={data / 'spool.jsonl'}",
                           *(f"{n}_address={a}" for n, a in addresses.items())]  # fmt: skip
                flags += [arg for option in options for arg in ("--option", option)]
            address, process = stack.enter_context(running_service(name, *flags, port=port))
            addresses[name], pids[name] = address, process.pid
        yield Suite(addresses["conversation"], redis_server, pids)


async def barge_in(npc: NpcConversation, first: str, second: str, ack: Callable[[Reply], None]) -> None:
    """Type ``second`` a moment after ``first``, as a player who talks over the NPC's answer (if the
    answer is already over by then, it is simply the next turn)."""
    npc.send(conversation_pb2.ConverseRequest(text=first))
    await asyncio.sleep(random.uniform(0.3, 1.2))  # the player's timing, not a wait for the suite
    npc.send(conversation_pb2.ConverseRequest(text=second))
    ack(await npc.reply())
    ack(await npc.reply())


async def one_turn(
    npc: NpcConversation,
    kind: str,
    rng: random.Random,
    voices: list[np.ndarray],
    ack: Callable[[Reply], None],
) -> None:
    """One turn of ``kind``; each TurnEnd is counted as it arrives (``ack``)."""
    line = LINES[rng.randrange(len(LINES))]
    if kind == "voice":
        ack(await npc.speak(voices[rng.randrange(len(voices))], RATE, realtime=True))
    elif kind == "barge-in":
        await barge_in(npc, line, LINES[rng.randrange(len(LINES))], ack)
    else:
        ack(await npc.say(line))


async def talk(
    index: int, address: str, deadline: float, voices: list[np.ndarray], tally: Tally, think_s: float
) -> None:
    """One player talking to one NPC until ``deadline``, pausing about ``think_s`` between turns; a failed
    turn is counted and the stream reopened."""
    npc_id, player = NPCS[index % len(NPCS)], f"soak-{int(tally.started)}-{index}"
    rng = random.Random(index)
    turn, kind = 0, "text"
    async with NpcClient(address) as client:
        while time.monotonic() < deadline:
            try:
                # closed at the end; cancelled on an error, before the next one opens
                async with await client.conversation(npc_id, player, input_sample_rate=RATE) as npc:
                    while time.monotonic() < deadline:
                        kind = ("voice", "barge-in", "text", "text")[turn % 4]
                        await one_turn(
                            npc, kind, rng, voices, functools.partial(tally.ack, npc_id, player, kind)
                        )
                        turn += 1
                        await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)  # the player reads, thinks
            except (grpc.aio.AioRpcError, ConnectionError) as error:
                tally.failed.append(f"{player} turn {turn} ({kind}): {error}")
                turn += 1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sample_memory(the_suite: Suite, deadline: float, every_s: float) -> list[dict[str, float]]:
    samples = []
    while time.monotonic() < deadline:
        sample = {name: rss_mb(pid) for name, pid in the_suite.pids.items()}
        if the_suite.redis.exit_code() is None and the_suite.redis.pid:  # not while it is restarted
            sample["redis"] = rss_mb(the_suite.redis.pid)
        samples.append(sample)
        await asyncio.sleep(every_s)
    return samples


async def restart_redis(the_suite: Suite, at: float, down_s: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    await asyncio.to_thread(the_suite.redis.stop)
    await asyncio.sleep(down_s)  # the outage's length is the scenario
    await asyncio.to_thread(the_suite.redis.start)


async def drained(address: str, timeout_s: float = 60.0) -> bool:
    """Until the gateway reports its memory store SERVING again (its replay queue written)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=MEMORY_HEALTH))
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return True
            await asyncio.sleep(0.2)
    return False


async def missing_turns(redis_url: str, tally: Tally) -> list[str]:
    """Conversations whose acknowledged player lines are not all in Redis in the order they were
    acknowledged. Redis may hold more: a turn is stored before its TurnEnd is sent, and a stream that
    fails in between never delivers that TurnEnd."""
    client = memory_client(redis_url)
    store, missing = MemoryStore(client), []
    for (npc, player), lines in tally.acknowledged.items():
        stored = iter([t.text for t in (await store.load(npc, player)).turns if t.role == "player"])
        found = sum(1 for line in lines if any(line == s for s in stored))  # in order: a subsequence
        if found != len(lines):
            missing.append(f"{npc}/{player}: {len(lines) - found} of {len(lines)} acknowledged not stored")
    await client.aclose()
    return missing


def keys_without_ttl(redis_url: str) -> tuple[int, list[str]]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        keys = list(client.scan_iter("npcvoice:*"))
        return len(keys), [key for key in keys if client.ttl(key) < 0]


def memory_rows(
    samples: list[dict[str, float]], warm_up: int, max_growth: float
) -> tuple[list[list[object]], bool]:
    """One row per process; flat if no service grew more than ``max_growth`` after warm-up. Redis is
    shown but not judged: it holds the data, which grows with every turn, and it restarts halfway."""
    rows, flat = [], True
    for name in samples[0]:
        values = [sample[name] for sample in samples if name in sample]
        later = [sample[name] for sample in samples[warm_up:] if name in sample] or values
        warm, end = later[0], values[-1]
        growth = (end - warm) / warm if warm else 0.0
        if name != "redis":
            flat &= growth < max_growth
        rows.append([name, values[0], warm, max(later), end, f"{growth * 100:+.1f} %"])
    return rows, flat


def latency_rows(tally: Tally, seconds: float) -> list[list[object]]:
    rows: list[list[object]] = []
    for kind in ("text", "voice"):
        first = [v for t, k, v in tally.latencies if k == kind and t < seconds * 0.25]
        last = [v for t, k, v in tally.latencies if k == kind and t >= seconds * 0.75]
        if first and last:
            rows.append(
                [kind, len(first), p50(first) * 1000, len(last), p50(last) * 1000, p50(last) / p50(first)]
            )
    return rows


async def soak(args: argparse.Namespace, the_suite: Suite) -> tuple[Tally, list[dict[str, float]]]:
    voices = player_voices()
    seconds = args.minutes * 60
    tally = Tally(started=time.monotonic())
    deadline = tally.started + seconds
    sampler = asyncio.create_task(sample_memory(the_suite, deadline, args.sample_s))
    restart = asyncio.create_task(restart_redis(the_suite, tally.started + seconds / 2, args.redis_down_s))
    await asyncio.gather(
        *(
            talk(i, the_suite.address, deadline, voices, tally, args.think_s)
            for i in range(args.conversations)
        )
    )
    await restart
    samples = await sampler
    if not await drained(the_suite.address):
        tally.failed.append("the gateway's replay queue was not written back within 60 s")
    return tally, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--base-port", type=int, default=51300, help="gRPC ports from here, metrics +10")
    parser.add_argument("--redis-port", type=int, default=16379)
    parser.add_argument("--redis-down-s", type=float, default=5.0)
    parser.add_argument("--think-s", type=float, default=0.0, help="the players' mean pause between turns")
    parser.add_argument(
        "--warm-up", type=float, default=0.2, help="fraction of the run before memory is judged"
    )
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--raw", default="soak-raw.json", help="where the raw readings are written")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as data,
        suite(args.base_port, args.redis_port, Path(data)) as the_suite,
    ):
        tally, samples = asyncio.run(soak(args, the_suite))
        tallied = {
            **dataclasses.asdict(tally),
            "acknowledged": {f"{n}/{p}": lines for (n, p), lines in tally.acknowledged.items()},
        }
        raw = {"tally": tallied, "samples": samples, "args": vars(args)}
        Path(args.raw).write_text(json.dumps(raw, default=str))
        missing = asyncio.run(missing_turns(the_suite.redis.url, tally))
        key_count, no_ttl = keys_without_ttl(the_suite.redis.url)
    warm_up = min(len(samples) - 1, int(len(samples) * args.warm_up))
    rss, flat = memory_rows(samples, warm_up, args.max_growth)
    turns = sum(tally.kinds.values())
    print(f"\n{machine()}; {args.conversations} conversations for {args.minutes:g} min, pauses of about "
          f"{args.think_s:g} s between turns, Redis stopped for "
          f"{args.redis_down_s:g} s halfway\n")  # fmt: skip
    print(f"turns acknowledged: {turns} ({', '.join(f'{k} {n}' for k, n in sorted(tally.kinds.items()))}); "
          f"interrupted by a barge-in: {tally.interrupted}\n")  # fmt: skip
    print("memory (RSS, MB): at start, at the end of warm-up, highest after it, at the end\n")
    print(table(["process", "start", "warmed up", "peak", "end", "end vs warmed up"], rss))
    print("\nfirst audio p50 (ms), first quarter of the run (the baseline) and last quarter\n")
    print(table(["turn", "turns", "first p50 ms", "turns", "last p50 ms", "last / first"],
                latency_rows(tally, args.minutes * 60)))  # fmt: skip
    checks = [
        ("no failed turn", not tally.failed, "; ".join(tally.failed[:5])),
        ("every acknowledged turn in Redis, in order", not missing, "; ".join(missing[:5])),
        (f"every key has a TTL ({key_count} keys)", not no_ttl and key_count > 0, ", ".join(no_ttl[:5])),
        (f"memory flat after warm-up (< {args.max_growth:.0%})", flat, ""),
    ]
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail and not ok else ''}")
    raise SystemExit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
