"""What the soak (bench/soak.py) counts and checks, and its report."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import redis

from bench.common import machine, p50, table
from npcvoice.client import Reply, TurnRefused
from npcvoice.conversation.memory import MemoryStore
from npcvoice.conversation.redis_urls import memory_client


@dataclass
class Tally:
    started: float
    acknowledged: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)  # (when, kind, first audio s)
    kinds: dict[str, int] = field(default_factory=dict)
    interrupted: int = 0
    refused: int = 0
    failed: list[str] = field(default_factory=list)

    def ack(self, npc: str, player: str, kind: str, reply: Reply | TurnRefused) -> None:
        if isinstance(reply, TurnRefused):
            self.refused += 1
            return
        self.acknowledged.setdefault((npc, player), []).append(reply.player_text)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.interrupted += reply.interrupted
        if not reply.interrupted and reply.latency.get("first_audio_s"):
            self.latencies.append((time.monotonic() - self.started, kind, reply.latency["first_audio_s"]))


async def missing_turns(redis_url: str, tally: Tally) -> list[str]:
    """Conversations whose acknowledged player lines are not all in Redis in the order they were
    acknowledged. Redis may hold more: a turn is stored before its TurnEnd is sent, and a stream that
    fails in between never delivers that TurnEnd. A spoken line the player went on with before any of its
    reply was heard is acknowledged on its own but stored once, joined with the rest (the next line)."""
    client = memory_client(redis_url)
    store, missing = MemoryStore(client), []
    for (npc, player), acknowledged in tally.acknowledged.items():
        following = [*acknowledged[1:], ""]
        lines = [
            line
            for line, then in zip(acknowledged, following, strict=True)
            if not then.startswith(f"{line} ")
        ]
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


def report(
    args: argparse.Namespace,
    tally: Tally,
    samples: list[dict[str, float]],
    missing: list[str],
    keys: tuple[int, list[str]],
) -> bool:
    """Print the run's tables and checks; True if every check passed."""
    key_count, no_ttl = keys
    warm_up = min(len(samples) - 1, int(len(samples) * args.warm_up))
    rss, flat = memory_rows(samples, warm_up, args.max_growth)
    turns = sum(tally.kinds.values())
    pacing = (
        "no pauses (stress)"
        if args.no_pacing
        else "players wait for the reply to play, then think {:g}-{:g} s".format(*args.think_s)
    )
    print(f"\n{machine()}; {args.conversations} conversations for {args.minutes:g} min, {pacing}, "
          f"Redis stopped for {args.redis_down_s:g} s halfway\n")  # fmt: skip
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(tally.kinds.items()))
    print(f"turns acknowledged: {turns} ({kinds}); interrupted by a barge-in: {tally.interrupted}; "
          f"refused (busy, said again): {tally.refused}\n")  # fmt: skip
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
    return all(ok for _, ok, _ in checks)
