"""Conversation gateway benchmark: time to the NPC's first audio, text and voice turns, and concurrency.

    .venv/bin/python -m bench.conversation [--turns 20] [--at-once 1,2,4,8] [--recordings]
        [--variant conversation:prefill_while_speaking=false] [--base-port 51500 --redis-port 16579]

``--variant`` measures a change off and on in one run: a second gateway runs with those options (over
its own instance of each service named, the others shared), and the two take turns.

Redis and all five services run as their own processes, as in production; the player is this process,
through the Python client.

1. Text turns (one conversation with Hilda): from sending the line to the first reply audio.
2. Voice turns: the player's lines are synthesized (another piper voice would do; the bundled one is
   what there is), or with ``--recordings`` they are the recordings of people of bench.speech
   (tests/data/realspeech), streamed in real time in 100 ms chunks, followed by silence in real time
   until the reply starts. Measured from the true end of speech in the audio (the last sample above
   -40 dBFS) to the first reply audio; how many replies were drafted on the player's settled words and
   released (TurnEnd.drafted) is counted.
3. 1, 2, 4 and 8 conversations at once, three text turns each: first-audio latency.

The same numbers as the gateway's own latency breakdown (TurnEnd) are printed next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import machine, p50, percentile, service_process, speech_end_s, table
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.audio import encode
from npcvoice.client import NpcClient, NpcConversation, Reply, TurnRefused
from npcvoice.redis_server import RedisServer
from npcvoice.runtime.ports import free_port
from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
from npcvoice.voice.options import VoiceOptions

NPC = "blacksmith_hilda"
LINES = [
    "Good morning! Is the forge open today?",
    "Can you repair my sword? The blade is chipped.",
    "How much would that cost me?",
    "Where does your iron come from?",
    "What happened to the old forge?",
    "Do you like the merchants from Vaelmoor?",
    "I need four new horseshoes.",
    "Is the Kharzad mine still closed?",
    "Who taught you to work the forge?",
    "Thank you, I will come back tomorrow.",
]
RATE = 16000
CHUNK_S = 0.1
REPLY_TIMEOUT_S = 60.0  # after the line, for its reply to end


@contextlib.contextmanager
def suite() -> Iterator[str]:
    """Redis and the five services as processes; yields the gateway's address."""
    with suites([]) as addresses:
        yield addresses[0]


@contextlib.contextmanager
def suites(variant: list[str], base_port: int = 0, redis_port: int = 0) -> Iterator[list[str]]:
    """Redis and the five services as processes; yields the gateway's address, and with ``variant``
    (``service:key=value`` options) a second gateway's, whose named services run with those options (the
    others are shared). ``base_port``: the services take ports from there on (0: free ones)."""
    ports = itertools.count(base_port) if base_port else iter(free_port, None)
    with tempfile.TemporaryDirectory() as data, contextlib.ExitStack() as stack:
        redis = RedisServer(Path(data) / "redis", redis_port or free_port())
        redis.start()
        stack.callback(redis.stop)
        changed: dict[str, list[str]] = {}
        for item in variant:
            service, option = item.split(":", 1)
            changed.setdefault(service, []).append(option)

        def services(options: dict[str, list[str]], shared: dict[str, str]) -> dict[str, str]:
            return {
                name: shared[name]
                if name in shared and name not in options
                else stack.enter_context(
                    service_process(name, *flags(options.get(name, [])), port=next(ports))
                )
                for name in ("speech", "dialogue", "voice", "face")
            }

        def gateway(addresses: dict[str, str], extra: list[str]) -> str:
            options = [
                f"redis_url={redis.url}",
                *(f"{name}_address={address}" for name, address in addresses.items()),
                *extra,
            ]
            return stack.enter_context(service_process("conversation", *flags(options), port=next(ports)))

        first = services({}, {})
        gateways = [gateway(first, [])]
        if variant:
            gateways.append(gateway(services(changed, first), changed.get("conversation", [])))
        yield gateways


def flags(options: list[str]) -> list[str]:
    return [a for o in options for a in ("--option", o)]


async def text_turn(npc: NpcConversation, line: str, refused: list[int] | None = None) -> tuple[float, Reply]:
    """First audio after the line; a line refused (the services at capacity) is said again after the wait
    the gateway asks for, as a game would, and counted in ``refused``: the player's wait includes it."""
    started = asyncio.get_running_loop().time()
    while True:
        try:
            reply = await npc.say(line)
            return reply.first_audio_at - started, reply
        except TurnRefused as refusal:
            if refused is None:
                raise
            refused.append(1)
            await asyncio.sleep(refusal.retry_after_s)


async def voice_turn(npc: NpcConversation, speech: np.ndarray) -> tuple[float, Reply]:
    """Stream ``speech`` in real time, then silence until the reply's first audio; from the end of speech."""
    loop = asyncio.get_running_loop()
    speech_end = speech_end_s(speech, RATE)
    reply_task = asyncio.create_task(npc.reply())
    step = int(RATE * CHUNK_S)
    started = loop.time()
    sent = 0
    end_of_speech_at = None
    while not reply_task.done() and sent < len(speech) + RATE * 10:
        chunk = speech[sent : sent + step] if sent < len(speech) else np.zeros(step, np.float32)
        due = started + sent / RATE
        await asyncio.sleep(max(0.0, due - loop.time()))
        npc.send(conversation_pb2.ConverseRequest(audio=encode(chunk, "pcm16")))
        if end_of_speech_at is None and sent + len(chunk) >= speech_end * RATE:
            # the chunk holding the last voiced sample: when that sample was "spoken"
            end_of_speech_at = due + speech_end - sent / RATE
        sent += len(chunk)
    # a reply that never comes is a failure to report, not a bench that waits for ever
    reply = await asyncio.wait_for(reply_task, REPLY_TIMEOUT_S)
    assert end_of_speech_at is not None
    return reply.first_audio_at - end_of_speech_at, reply


async def run_turns(
    addresses: list[str], turns: int, voices: list[np.ndarray] | None = None
) -> list[tuple[list[float], list[Reply]]]:
    """``turns`` text turns (voice turns with ``voices``) on one conversation per gateway, the gateways
    taking turns (which goes first alternates), so that both see the same load; results per gateway."""
    results: list[tuple[list[float], list[Reply]]] = [([], []) for _ in addresses]
    async with contextlib.AsyncExitStack() as stack:
        npcs = []
        for address in addresses:
            client = await stack.enter_async_context(NpcClient(address))
            name = f"bench-{'voice' if voices else 'text'}-{time.time_ns()}"
            npc = await client.conversation(NPC, name, input_sample_rate=RATE)
            await npc.say("Hello.")  # warm-up: the persona's prompt, the voice
            npcs.append(npc)
        for i in range(turns):
            order = list(range(len(npcs)))[:: 1 if i % 2 == 0 else -1]
            for k in order:
                if voices:
                    latency, reply = await voice_turn(npcs[k], voices[i % len(voices)])
                else:
                    latency, reply = await text_turn(npcs[k], LINES[i % len(LINES)])
                results[k][0].append(latency)
                results[k][1].append(reply)
        for npc in npcs:
            await npc.close()
    return results


async def run_concurrent(address: str, count: int) -> tuple[list[float], int]:
    """First audio of ``count`` conversations at once, three text turns each; and how many lines were
    refused (and said again)."""
    refused: list[int] = []
    async with NpcClient(address) as client:

        async def one(index: int) -> list[float]:
            npc = await client.conversation(NPC, f"bench-at-once-{count}-{index}-{time.time_ns()}")
            lines = [LINES[(index + k) % len(LINES)] for k in range(3)]
            latencies = [(await text_turn(npc, line, refused))[0] for line in lines]
            await npc.close()
            return latencies

        results = await asyncio.gather(*(one(i) for i in range(count)))
    return [value for values in results for value in values], len(refused)


def player_voices() -> list[np.ndarray]:
    """The player's lines as speech at RATE (the bundled piper voice: what there is offline)."""
    engine = VoiceEngine(VoiceOptions())
    settings = engine.check(SynthesisSettings(sample_rate=RATE))
    return [engine.synthesize_piece(line, settings, 0, 0).audio.astype(np.float32) for line in LINES]


def recorded_voices() -> list[np.ndarray]:
    """The player's lines as people said them (tests/data/realspeech, 16 kHz), the longest speech left out
    (Kennedy's: a whole address, not a line to an NPC)."""
    from tests.support.realspeech import RATE as RECORDED
    from tests.support.realspeech import clips

    assert RECORDED == RATE
    return [c.audio.astype(np.float32) for c in clips() if c.kind != "speech"]


def breakdown(replies: list[Reply]) -> str:
    def ms(key: str) -> float:
        return p50([r.latency[key] for r in replies]) * 1000

    parts = [f"first token {ms('first_token_s'):.0f} ms", f"first clause {ms('first_clause_s'):.0f} ms",
             f"first audio {ms('first_audio_s'):.0f} ms"]  # fmt: skip
    if any(r.latency["transcript_s"] for r in replies):
        parts.insert(0, f"transcript {ms('transcript_s'):.0f} ms")
        parts.append(f"drafts used {sum(r.drafted for r in replies)} of {len(replies)} replies")
    return "gateway's own breakdown (p50): " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--at-once", default="1,2,4,8")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="service:key=value, e.g. conversation:prefill_while_speaking=false: a second gateway (with its "
        "own instance of each named service) runs with these options, alternating with the default one",
    )
    parser.add_argument("--base-port", type=int, default=0, help="services' ports from here (0: free ones)")
    parser.add_argument("--redis-port", type=int, default=0)
    parser.add_argument("--recordings", action="store_true", help="voice turns from recordings of people")
    parser.add_argument("--voice-only", action="store_true", help="only the voice turns")
    args = parser.parse_args()
    voices = recorded_voices() if args.recordings else player_voices()
    counts = [int(c) for c in args.at_once.split(",")]

    with suites(args.variant, args.base_port, args.redis_port) as addresses:
        skipped: list[tuple[list[float], list[Reply]]] = [([], []) for _ in addresses]
        text = skipped if args.voice_only else asyncio.run(run_turns(addresses, args.turns))
        voice = asyncio.run(run_turns(addresses, args.turns, voices))
        sweep: list[dict[int, tuple[list[float], int]]] = [{} for _ in addresses]
        for round_ in range(0 if args.voice_only else len(counts)):
            count = counts[round_]
            for k in list(range(len(addresses)))[:: 1 if round_ % 2 == 0 else -1]:
                sweep[k][count] = asyncio.run(run_concurrent(addresses[k], count))

    labels = ["default", "variant " + " ".join(args.variant)][: len(addresses)]
    print(f"\n{machine()}; {args.turns} turns each, persona {NPC}")
    for k, label in enumerate(labels):
        report(label, text[k], voice[k], sweep[k])


def report(
    label: str,
    text: tuple[list[float], list[Reply]],
    voice: tuple[list[float], list[Reply]],
    sweep: dict[int, tuple[list[float], int]],
) -> None:
    def ms(values: list[float]) -> list[object]:
        return [p50(values) * 1000, percentile(values, 95) * 1000]

    print(f"\n## {label}\n")
    rows = [["text", *ms(text[0])]] if text[0] else []
    rows.append(["voice (from end of speech)", *ms(voice[0])])
    print(table(["turn", "first audio p50 ms", "p95 ms"], rows))
    if text[0]:
        print(f"\ntext:  {breakdown(text[1])}")
    print(f"voice: {breakdown(voice[1])}")
    if not sweep:
        return
    print("\nconversations at once, three text turns each:\n")
    print(
        table(
            ["at once", "first audio p50 ms", "p95 ms", "max ms", "lines refused, said again"],
            [[c, *ms(v), max(v) * 1000, refused] for c, (v, refused) in sweep.items()],
        )
    )


if __name__ == "__main__":
    main()
