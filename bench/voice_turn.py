"""Where a spoken turn's time goes: every model call of every service on one timeline, per turn.

    PYTHONPATH=services:. .venv/bin/python -m bench.voice_turn [--turns 13] [--option service:key=value]

The recordings of people of bench.speech (tests/data/realspeech, Kennedy's address left out) are streamed
in real time to Hilda through Redis and the five services as processes, as `bench.conversation
--recordings` does. The services write each call on their worker pools (queued, started, ended, the CPU
time of its thread) to one file (``NPCVOICE_TIMELINE``, npcvoice.runtime.timeline); the player's true end
of speech (the last sample above -40 dBFS) and the first reply audio are on the same monotonic clock. So
each turn says, from the end of speech: when the transcription the reply was written on started and
ended, when the dialogue started writing and had the first piece, when the voice synthesized it, when the
first audio arrived; and what else ran meanwhile (interims, prefill, summaries), with how many cores
were busy (CTranslate2's threads are not the calling thread: Whisper's CPU shows as nearly none). The
player speaks once the last reply has played out (its audio's length from its first audio) and half a
second more, as a player who listens would. Prints the stages' p50 / p95, the busy time per service in
the wait, and the median turn's calls one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import machine, p50, percentile, table
from bench.conversation import NPC, RATE, recorded_voices, suites, voice_turn
from npcvoice.client import NpcClient

TRANSCRIPTIONS = ("speculative final", "final")


@dataclass(frozen=True)
class Call:
    pool: str
    label: str
    queued: float
    started: float
    ended: float
    cpu: float


@dataclass(frozen=True)
class Turn:
    began: float  # when its audio started to stream
    speech_end: float
    first_audio: float
    text: str
    drafted: bool


async def play(address: str, turns: int) -> list[Turn]:
    voices = recorded_voices()
    played = []
    async with NpcClient(address) as client:
        npc = await client.conversation(NPC, f"bench-profile-{time.time_ns()}", input_sample_rate=RATE)
        await npc.say("Hello.")  # warm-up: the persona's prompt, the voice
        loop = asyncio.get_running_loop()
        for index in range(turns):
            began = loop.time()
            latency, reply = await voice_turn(npc, voices[index % len(voices)])
            end = reply.first_audio_at - latency
            played.append(Turn(began, end, reply.first_audio_at, reply.player_text, reply.drafted))
            # the player hears the reply out (from its first audio), and answers half a second later
            await asyncio.sleep(max(0.0, reply.first_audio_at + reply.seconds - loop.time()) + 0.5)
        await npc.close()
    return played


def read(path: Path) -> list[Call]:
    calls = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        calls.append(
            Call(
                entry["pool"], entry["label"], entry["queued"], entry["started"], entry["ended"], entry["cpu"]
            )
        )
    return sorted(calls, key=lambda c: c.started)


def stages(turn: Turn, calls: list[Call]) -> dict[str, float]:
    """Seconds from the end of speech to each stage of this turn (a stage not found is left out)."""
    found: dict[str, float] = {"first audio": turn.first_audio}
    within = [c for c in calls if turn.began <= c.started <= turn.first_audio]
    heard = [c for c in within if c.pool == "whisper" and c.label in TRANSCRIPTIONS]
    if heard:  # the last transcription before the first audio: what the reply was written on
        t = heard[-1]
        found |= {
            "transcription queued": t.queued,
            "transcription started": t.started,
            "transcription ended": t.ended,
        }
        after = [c for c in within if c.pool == "dialogue" and c.started >= t.ended - 0.05]
        if after:
            found["dialogue started"] = after[0].started
        pieces = [
            c for c in within if c.pool == "dialogue" and c.label == "burst" and c.started >= t.ended - 0.05
        ]
        if pieces:
            # A burst ends at the reply's first event, often its emotion: the first piece is written by the
            # last burst that ended before the voice began synthesizing.
            synthesis = [c for c in within if c.pool == "piper" and c.started >= pieces[0].ended - 0.01]
            if synthesis:
                found["synthesis started"] = synthesis[0].started
                found["synthesis ended"] = synthesis[0].ended
                written = [c.ended for c in pieces if c.ended <= synthesis[0].started + 0.01]
                found["first piece written"] = written[-1] if written else pieces[0].ended
            else:
                found["first piece written"] = pieces[0].ended
    return {k: v - turn.speech_end for k, v in found.items()}


def busy(turn: Turn, calls: list[Call]) -> dict[str, tuple[float, float]]:
    """Per pool and label, in the wait from the end of speech to the first audio: wall seconds of calls
    (clipped to the wait) and the CPU seconds of their threads (in proportion)."""
    spent: dict[str, tuple[float, float]] = {}
    for c in calls:
        overlap = min(c.ended, turn.first_audio) - max(c.started, turn.speech_end)
        if overlap <= 0:
            continue
        share = overlap / max(c.ended - c.started, 1e-9)
        key = f"{c.pool}: {c.label}"
        wall, cpu = spent.get(key, (0.0, 0.0))
        spent[key] = (wall + overlap, cpu + c.cpu * share)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=13)
    parser.add_argument("--option", action="append", default=[], help="service:key=value for the suite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "timeline.jsonl"
        os.environ["NPCVOICE_TIMELINE"] = str(path)  # the services read it when they start
        with contextlib.ExitStack() as stack:
            address = stack.enter_context(suites(args.option))[-1]
            turns = asyncio.run(play(address, args.turns))
        calls = read(path)

    per_turn = [stages(t, calls) for t in turns]
    order = [
        "transcription queued",
        "transcription started",
        "transcription ended",
        "dialogue started",
        "first piece written",
        "synthesis started",
        "synthesis ended",
        "first audio",
    ]
    rows: list[list[object]] = []
    for stage in order:
        values = [s[stage] for s in per_turn if stage in s]
        if values:
            rows.append([stage, len(values), p50(values) * 1000, percentile(values, 95) * 1000])
    waits = [t.first_audio - t.speech_end for t in turns]
    spent = [busy(t, calls) for t in turns]
    keys = sorted({k for s in spent for k in s}, key=lambda k: -sum(s.get(k, (0, 0))[0] for s in spent))
    load = [
        [
            k,
            sum(s.get(k, (0, 0))[0] for s in spent) / len(turns) * 1000,
            sum(s.get(k, (0, 0))[1] for s in spent) / len(turns) * 1000,
        ]
        for k in keys
    ]
    cores = sum(c for s in spent for _, c in s.values()) / sum(waits)

    print(
        f"\n{machine()}; {len(turns)} voice turns from recordings of people to {NPC}; options: "
        f"{args.option or 'defaults'}; drafts used {sum(t.drafted for t in turns)} of {len(turns)}\n"
    )
    print("From the true end of speech, ms (n: turns where the stage was found)")
    print(table(["stage", "n", "p50 ms", "p95 ms"], rows), "\n")
    print(
        f"In the wait (end of speech to first audio, mean {sum(waits) / len(waits) * 1000:.0f} ms), per "
        f"turn on average: the model calls running, and their threads' CPU ({cores:.2f} cores busy)"
    )
    print(table(["pool: call", "wall ms", "cpu ms"], load), "\n")
    median = sorted(range(len(turns)), key=lambda i: waits[i])[len(turns) // 2]
    turn = turns[median]
    print(f"The median turn ({waits[median] * 1000:.0f} ms, {turn.text!r}): calls, ms from its end of speech")
    detail = [
        [
            c.pool,
            c.label,
            (c.queued - turn.speech_end) * 1000,
            (c.started - turn.speech_end) * 1000,
            (c.ended - turn.speech_end) * 1000,
            c.cpu * 1000,
        ]
        for c in calls
        if c.ended >= turn.speech_end - 0.5 and c.started <= turn.first_audio
    ]
    print(table(["pool", "call", "queued", "started", "ended", "cpu ms", "calls"], merge(detail)))


def merge(rows: list[list[object]]) -> list[list[object]]:
    """Runs of the same call back to back (a reply's decode steps) as one row, with their count."""
    merged: list[list[object]] = []
    for row in rows:
        last = merged[-1] if merged else None
        if (
            last
            and last[:2] == row[:2]
            and isinstance(last[4], float)
            and isinstance(row[3], float)
            and row[3] - last[4] < 20
        ):
            last[4], last[5] = row[4], float(last[5]) + float(row[5])  # type: ignore[arg-type]
            last[6] = int(last[6]) + 1  # type: ignore[call-overload]
        else:
            merged.append([*row, 1])
    return merged


if __name__ == "__main__":
    main()
