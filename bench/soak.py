"""Soak: a bounded load on the local suite, long enough to see leaks and lost turns.

    .venv/bin/python -m bench.soak [--conversations 8] [--minutes 10] [--no-pacing] [--base-port 51300]

Redis and the five services run as their own processes on loopback (gRPC and metrics ports from
``--base-port``). Each conversation talks until the time is up: typed lines, spoken lines (the player's
voice streamed in real time) and barge-ins (a second line typed while the NPC is still answering the
first). Players pace like players: after each reply they wait for its audio to play (its length, in real
time) and then think for a moment (``--think-s``, 1-3 s, random and seeded per player) before the next
line; ``--no-pacing`` sends each line as soon as the last reply is in (a stress test, more load than
players make). A turn refused because the suite is at capacity (TurnRefused) is counted, and the player
says a line again after the ``retry_after`` it was given. Halfway through, Redis is stopped for
``--redis-down-s`` and started again (from its append-only file). Then it checks, and exits 1 if one fails:

- no turn failed (every turn ended with TurnEnd or TurnRefused, none with an error status; the refused
  are shown apart: refusing fast is what an overloaded suite should do);
- every acknowledged turn (each TurnEnd's player line) is in Redis, in order (the soak's personas have
  ``summarize_after: 1000``, so no line is folded into a summary and each can be found word for word);
- every memory key in Redis carries a TTL;
- each process's memory (RSS) is flat after warm-up: less than ``--max-growth`` (10 %) above its value
  at the end of warm-up. The warm-up (``--warm-up``, the first 20 % of the run) must have seen the
  longest replies: onnxruntime's memory arenas grow to the largest input seen, once; growth after that is
  what counts as a leak.

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
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import REPO_ROOT, running_service
from bench.conversation import LINES, RATE, player_voices
from bench.soak_checks import Tally, keys_without_ttl, missing_turns, report
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.client import NpcClient, NpcConversation, Reply, TurnRefused
from npcvoice.conversation.gateway import MEMORY_HEALTH
from npcvoice.redis_server import RedisServer

NPCS = ["blacksmith_hilda", "innkeeper_tobin", "guard_captain_vael"]
SERVICE_PORTS = {"conversation": 0, "speech": 1, "dialogue": 2, "voice": 3, "face": 4}  # + base port


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


async def barge_in(
    npc: NpcConversation, first: str, second: str, ack: Callable[[Reply | TurnRefused], None]
) -> Reply:
    """Type ``second`` a moment after ``first``, as a player who talks over the NPC's answer (if the
    answer is already over by then, it is simply the next turn). The first line may be refused: the
    second is answered (or refused) after it all the same, so both are read off the stream."""
    npc.send(conversation_pb2.ConverseRequest(text=first))
    await asyncio.sleep(random.uniform(0.3, 1.2))  # the player's timing, not a wait for the suite
    npc.send(conversation_pb2.ConverseRequest(text=second))
    try:
        ack(await npc.reply())
    except TurnRefused as refused:
        ack(refused)
    ack(reply := await npc.reply())
    return reply


async def one_turn(
    npc: NpcConversation,
    kind: str,
    rng: random.Random,
    voices: list[np.ndarray],
    ack: Callable[[Reply | TurnRefused], None],
) -> Reply:
    """One turn of ``kind``; each TurnEnd is counted as it arrives (``ack``). Returns the reply the
    player listens to."""
    line = LINES[rng.randrange(len(LINES))]
    if kind == "voice":
        reply = await npc.speak(voices[rng.randrange(len(voices))], RATE, realtime=True)
    elif kind == "barge-in":
        return await barge_in(npc, line, LINES[rng.randrange(len(LINES))], ack)
    else:
        reply = await npc.say(line)
    ack(reply)
    return reply


def pause_s(reply: Reply, rng: random.Random, think_s: tuple[float, float] | None) -> float:
    """The player listens to the reply (its audio plays in real time), then thinks; no pause without
    pacing (``think_s`` None)."""
    return reply.seconds + rng.uniform(*think_s) if think_s else 0.0


async def talk(
    index: int,
    address: str,
    deadline: float,
    voices: list[np.ndarray],
    tally: Tally,
    think_s: tuple[float, float] | None,
) -> None:
    """One player talking to one NPC until ``deadline``; a refused turn is counted and the player waits
    as told, a failed turn is counted and the stream reopened."""
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
                        ack = functools.partial(tally.ack, npc_id, player, kind)
                        try:
                            reply = await one_turn(npc, kind, rng, voices, ack)
                            await asyncio.sleep(pause_s(reply, rng, think_s))  # the player's pace
                        except TurnRefused as refused:  # the stream goes on
                            ack(refused)
                            await asyncio.sleep(refused.retry_after_s)
                        turn += 1
            except (grpc.aio.AioRpcError, ConnectionError) as error:
                detail = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
                tally.failed.append(f"{player} turn {turn} ({kind}): {detail}")
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


async def soak(args: argparse.Namespace, the_suite: Suite) -> tuple[Tally, list[dict[str, float]]]:
    voices = player_voices()
    seconds = args.minutes * 60
    tally = Tally(started=time.monotonic())
    deadline = tally.started + seconds
    sampler = asyncio.create_task(sample_memory(the_suite, deadline, args.sample_s))
    restart = asyncio.create_task(restart_redis(the_suite, tally.started + seconds / 2, args.redis_down_s))
    await asyncio.gather(
        *(
            talk(i, the_suite.address, deadline, voices, tally, None if args.no_pacing else args.think_s)
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
    parser.add_argument(
        "--think-s",
        type=float,
        nargs=2,
        default=(1.0, 3.0),
        metavar=("MIN", "MAX"),
        help="after a reply has played, the players think this long (random, seeded)",
    )
    parser.add_argument("--no-pacing", action="store_true", help="no pauses: the next line at once")
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
    ok = report(args, tally, samples, missing, (key_count, no_ttl))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
