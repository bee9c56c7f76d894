"""Conversations per core: how many paced players one node serves while the first reply audio stays at
p95 <= 1.5 s, ours and Pipecat's on the same models, in one run.

    .venv/bin/python -m bench.capacity [--levels 1,2,3,4,5,6] [--turns 6] [--limit-s 1.5] [--only ours]

Our side is Redis and the five services as processes (as bench.conversation), Pipecat's its worker and
llama.cpp's server from .venv-peer (as bench.peer_pipecat, which builds that venv on its first run; the
same models, persona text and sampling). Players pace as the soak's do: each conversation alternates
typed lines and recordings of people (tests/data/realspeech, up to 6 s, streamed in real time), and after
each reply the player waits for its audio to play out (its length from its first audio) and thinks 1-3 s
(random, seeded per player) before the next line; the players of a level start 0-3 s apart. A line our
gateway refuses at capacity (TurnRefused) is said again after the wait it asks for; the player's wait
includes it.

For each number of players at once (a level): the first reply audio, p50 and p95 over every timed turn
and for typed and spoken turns apart (typed: from the line; spoken: from the end of speech, the last
sample above -40 dBFS; each player's first turn is a warm-up and not timed), turns refused and failed,
and the CPU seconds per turn of each process (where the machine's time goes). A level passes a limit
when its p95 is within it and no turn failed; conversations served at a limit (``--limits``, 1.5 s and
3 s) are the most players at once whose level and every level below it passed, and per core that
divided by the machine's cores. A system's ramp stops after a level past ``--stop-s`` (4 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.common import children, cpu_seconds, machine, p50, percentile, table
from bench.conversation import LINES, NPC, RATE, suite, text_turn, voice_turn
from bench.peer_pipecat import WARM_UP, Recording, as_job, ask, pipecat_system, recordings, setup
from npcvoice.client import NpcClient

CORES = os.cpu_count() or 1
SETTLE_S = 15.0  # after the suite's first line: its background prefills of the personas end


@dataclass(frozen=True)
class Line:
    turn: str | Recording
    wait_s: float  # after the reply before it has played out (the first line: after the level starts)


@dataclass
class Level:
    players: int
    typed: list[float] = field(default_factory=list)  # timed typed turns' first audio (from the line), s
    spoken: list[float] = field(default_factory=list)  # timed spoken turns' (from the end of speech), s
    refused: int = 0
    failed: int = 0
    turns: int = 0  # every turn played, warm-ups included
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds over the level

    @property
    def first(self) -> list[float]:
        return self.typed + self.spoken

    def passed(self, limit_s: float) -> bool:
        return bool(self.first) and not self.failed and percentile(self.first, 95) <= limit_s


def plans(players: int, turns: int, voices: list[Recording], seed: int) -> list[list[Line]]:
    """Each player's lines: a warm-up, then typed lines and recordings in turn, each paced."""
    made = []
    for player in range(players):
        rng = random.Random(seed * 1000 + player)
        lines = [Line(WARM_UP, rng.uniform(0.0, 3.0))]
        for k in range(turns):
            turn: str | Recording = (
                LINES[(player + k) % len(LINES)] if k % 2 == 0 else voices[(player + k) % len(voices)]
            )
            lines.append(Line(turn, rng.uniform(1.0, 3.0)))
        made.append(lines)
    return made


# --- where the CPU goes --------------------------------------------------------------------------------


def process_names() -> dict[int, str]:
    """This bench's child processes by what they are (a service's name, redis, llama.cpp, the worker)."""
    names = {}
    for pid in children(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        text = " ".join(words)
        if "redis-server" in text:
            names[pid] = "redis"
        elif "llama_cpp.server" in text:
            names[pid] = "llama.cpp server"
        elif "pipecat_worker" in text:
            names[pid] = "pipecat worker"
        else:
            service = next(
                (w for w in words if w in ("conversation", "speech", "dialogue", "voice", "face")), ""
            )
            names[pid] = service or (Path(words[0]).name if words else str(pid))
    return names


def cpu_by_process() -> dict[str, float]:
    spent: dict[str, float] = {}
    for pid, name in process_names().items():
        spent[name] = spent.get(name, 0.0) + cpu_seconds([pid])
    return spent


@contextlib.contextmanager
def metered(level: Level) -> Iterator[None]:
    before = cpu_by_process()
    yield
    after = cpu_by_process()
    level.cpu = {name: after[name] - before.get(name, 0.0) for name in after}


# --- the two systems --------------------------------------------------------------------------------


async def our_player(client: NpcClient, name: str, lines: list[Line], level: Level) -> None:
    loop = asyncio.get_running_loop()
    npc = await client.conversation(NPC, f"capacity-{name}-{time.time_ns()}", input_sample_rate=RATE)
    heard_until = loop.time()
    for index, line in enumerate(lines):
        await asyncio.sleep(max(0.0, heard_until - loop.time()) + line.wait_s)
        level.turns += 1
        try:
            if isinstance(line.turn, Recording):
                first, reply = await voice_turn(npc, line.turn.speech)
            else:
                refused: list[int] = []
                first, reply = await text_turn(npc, line.turn, refused)
                level.refused += len(refused)
        except (grpc.RpcError, TimeoutError) as error:  # counted; the player goes on in a new stream
            print(f"ours, player {name}: a turn failed: {error!r}", file=sys.stderr)
            level.failed += index > 0
            npc = await client.conversation(NPC, f"capacity-{name}-{time.time_ns()}", input_sample_rate=RATE)
            heard_until = loop.time()
            continue
        if index > 0:
            (level.spoken if isinstance(line.turn, Recording) else level.typed).append(first)
        heard_until = reply.first_audio_at + reply.seconds
    await npc.close()


async def settle(address: str) -> None:
    """One untimed line, then a pause: the services have loaded their models and prefilled the personas'
    prompts ahead (startup work, not a level's)."""
    async with NpcClient(address) as client:
        npc = await client.conversation(NPC, f"capacity-settle-{time.time_ns()}", input_sample_rate=RATE)
        await npc.say(WARM_UP)
        await npc.close()
    await asyncio.sleep(SETTLE_S)


def run_ours(levels: list[int], turns: int, voices: list[Recording], seed: int, stop_s: float) -> list[Level]:
    async def play(address: str, level: Level) -> None:
        async with NpcClient(address) as client:
            await asyncio.gather(
                *(
                    our_player(client, str(i), lines, level)
                    for i, lines in enumerate(plans(level.players, turns, voices, seed))
                )
            )

    done = []
    with suite() as address:
        asyncio.run(settle(address))
        for players in levels:
            level = Level(players)
            with metered(level):
                asyncio.run(play(address, level))
            done.append(level)
            print(f"ours, {players} at once: {summary(level)}", file=sys.stderr)
            if not level.passed(stop_s):
                break
    return done


def run_pipecat(
    levels: list[int], turns: int, voices: list[Recording], seed: int, stop_s: float
) -> list[Level]:
    done = []
    with pipecat_system() as worker:
        for players in levels:
            level = Level(players)
            made = plans(players, turns, voices, seed)
            ask(worker, "open", count=players)  # models loaded, pipelines started: untimed
            with metered(level):
                answer = ask(
                    worker,
                    "run",
                    turns=[
                        [{**as_job(line.turn), "wait_s": line.wait_s} for line in lines] for lines in made
                    ],
                )
            ask(worker, "close")
            for lines, played in zip(made, answer, strict=True):
                level.turns += len(played)
                for line, result in zip(lines[1:], played[1:], strict=True):
                    if result is None:
                        level.failed += 1
                    else:
                        spoken = isinstance(line.turn, Recording)
                        (level.spoken if spoken else level.typed).append(result["first_audio_s"])
            done.append(level)
            print(f"Pipecat, {players} at once: {summary(level)}", file=sys.stderr)
            if not level.passed(stop_s):
                break
    return done


# --- the report ------------------------------------------------------------------------------------


def summary(level: Level) -> str:
    if not level.first:
        return f"no timed turn answered ({level.failed} failed)"
    cpu = sum(level.cpu.values()) / max(level.turns, 1)
    return (
        f"first audio p50 {p50(level.first) * 1000:.0f} ms, p95 {percentile(level.first, 95) * 1000:.0f} ms, "
        f"{level.refused} refused, {level.failed} failed, CPU {cpu:.2f} s/turn ({cpu_shares(level)})"
    )


def cpu_shares(level: Level) -> str:
    """CPU seconds per turn by process, the largest first (those under 1 % of the level's left out)."""
    total = sum(level.cpu.values()) or 1.0
    return ", ".join(
        f"{process} {seconds / max(level.turns, 1):.2f} s ({seconds / total:.0%})"
        for process, seconds in sorted(level.cpu.items(), key=lambda kv: -kv[1])
        if seconds > 0.01 * total
    )


def served(levels: list[Level], limit_s: float) -> int:
    """The most players at once whose level passed (and every level below it)."""
    count = 0
    for level in sorted(levels, key=lambda level: level.players):
        if not level.passed(limit_s):
            break
        count = level.players
    return count


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{p50(values) * 1000:.0f} / {percentile(values, 95) * 1000:.0f}"


def report(systems: dict[str, list[Level]], limits: list[float]) -> str:
    rows: list[list[object]] = []
    for name, levels in systems.items():
        for level in levels:
            rows.append([
                name, level.players, ms(level.first), ms(level.typed), ms(level.spoken), level.refused,
                level.failed, f"{sum(level.cpu.values()) / max(level.turns, 1):.2f}",
            ])  # fmt: skip
    lines = [table(["system", "players at once", "first audio p50 / p95 ms", "typed", "spoken", "refused",
                    "failed", "CPU s per turn"], rows)]  # fmt: skip
    lines.append("")
    for limit in limits:
        counts = ", ".join(
            f"{name} {served(levels, limit)} ({served(levels, limit) / CORES:.1f} per core)"
            for name, levels in systems.items()
        )
        lines.append(
            f"paced conversations served on {CORES} cores with first audio p95 <= {limit:g} s: {counts}"
        )
    for name, levels in systems.items():
        lines.append(
            f"{name}, CPU per turn by process at {levels[-1].players} at once: {cpu_shares(levels[-1])}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,2,3,4,5,6", help="players at once, in the order tried")
    parser.add_argument("--turns", type=int, default=6, help="timed lines per player (after a warm-up)")
    parser.add_argument("--limits", default="1.5,3", help="first audio p95 limits (s) to count players at")
    parser.add_argument("--stop-s", type=float, default=4.0, help="the ramp stops past this first audio p95")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=["ours", "pipecat"], help="one system only")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    limits = [float(limit) for limit in args.limits.split(",")]
    voices = recordings()
    systems: dict[str, list[Level]] = {}
    if args.only != "pipecat":
        systems["npcvoice"] = run_ours(levels, args.turns, voices, args.seed, args.stop_s)
    if args.only != "ours":
        setup()
        systems["Pipecat"] = run_pipecat(levels, args.turns, voices, args.seed, args.stop_s)
    print(f"\n{machine()}; persona {NPC}; {args.turns} timed lines per player, half typed, half spoken; "
          f"python -m bench.capacity {' '.join(sys.argv[1:])}\n")  # fmt: skip
    print(report(systems, limits))


if __name__ == "__main__":
    main()
