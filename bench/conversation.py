"""Conversation gateway benchmark: time to the NPC's first audio, text and voice turns, and concurrency.

    .venv/bin/python -m bench.conversation [--turns 20]

Redis and all five services run as their own processes, as in production; the player is this process,
through the Python client.

1. Text turns (one conversation with Hilda): from sending the line to the first reply audio.
2. Voice turns: the player's lines are synthesized (another piper voice would do; the bundled one is
   what there is), streamed in real time in 100 ms chunks, followed by silence in real time until the
   reply starts. Measured from the true end of speech in the audio (the last sample above -40 dBFS) to
   the first reply audio.
3. 1, 2, 4 and 8 conversations at once, three text turns each: first-audio latency.

The same numbers as the gateway's own latency breakdown (TurnEnd) are printed next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import machine, p50, percentile, service_process, speech_end_s, table
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.audio import encode
from npcvoice.client import NpcClient, NpcConversation, Reply
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


@contextlib.contextmanager
def suite() -> Iterator[str]:
    """Redis and the five services as processes; yields the gateway's address."""
    with tempfile.TemporaryDirectory() as data, contextlib.ExitStack() as stack:
        redis = RedisServer(Path(data) / "redis", free_port())
        redis.start()
        stack.callback(redis.stop)
        addresses = {
            name: stack.enter_context(service_process(name))
            for name in ("speech", "dialogue", "voice", "face")
        }
        options = [
            f"redis_url={redis.url}",
            *(f"{name}_address={address}" for name, address in addresses.items()),
        ]
        yield stack.enter_context(
            service_process("conversation", *[a for o in options for a in ("--option", o)])
        )


async def text_turn(npc: NpcConversation, line: str) -> tuple[float, Reply]:
    started = asyncio.get_running_loop().time()
    reply = await npc.say(line)
    return reply.first_audio_at - started, reply


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
    reply = await reply_task
    assert end_of_speech_at is not None
    return reply.first_audio_at - end_of_speech_at, reply


async def run_text(address: str, turns: int) -> tuple[list[float], list[Reply]]:
    async with NpcClient(address) as client:
        npc = await client.conversation(NPC, f"bench-text-{time.time_ns()}")
        await npc.say("Hello.")  # warm-up: the persona's prompt, the voice
        results = [await text_turn(npc, LINES[i % len(LINES)]) for i in range(turns)]
        await npc.close()
    return [r[0] for r in results], [r[1] for r in results]


async def run_voice(address: str, turns: int, voices: list[np.ndarray]) -> tuple[list[float], list[Reply]]:
    async with NpcClient(address) as client:
        npc = await client.conversation(NPC, f"bench-voice-{time.time_ns()}", input_sample_rate=RATE)
        await npc.say("Hello.")
        results = [await voice_turn(npc, voices[i % len(voices)]) for i in range(turns)]
        await npc.close()
    return [r[0] for r in results], [r[1] for r in results]


async def run_concurrent(address: str, count: int) -> list[float]:
    async with NpcClient(address) as client:

        async def one(index: int) -> list[float]:
            npc = await client.conversation(NPC, f"bench-at-once-{count}-{index}-{time.time_ns()}")
            latencies = [(await text_turn(npc, LINES[(index + k) % len(LINES)]))[0] for k in range(3)]
            await npc.close()
            return latencies

        results = await asyncio.gather(*(one(i) for i in range(count)))
    return [value for values in results for value in values]


def player_voices() -> list[np.ndarray]:
    """The player's lines as speech at RATE (the bundled piper voice: what there is offline)."""
    engine = VoiceEngine(VoiceOptions())
    settings = engine.check(SynthesisSettings(sample_rate=RATE))
    return [engine.synthesize_piece(line, settings, 0, 0).audio.astype(np.float32) for line in LINES]


def breakdown(replies: list[Reply]) -> str:
    def ms(key: str) -> float:
        return p50([r.latency[key] for r in replies]) * 1000

    parts = [f"first token {ms('first_token_s'):.0f} ms", f"first clause {ms('first_clause_s'):.0f} ms",
             f"first audio {ms('first_audio_s'):.0f} ms"]  # fmt: skip
    if any(r.latency["transcript_s"] for r in replies):
        parts.insert(0, f"transcript {ms('transcript_s'):.0f} ms")
    return "gateway's own breakdown (p50): " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--at-once", default="1,2,4,8")
    args = parser.parse_args()
    voices = player_voices()

    with suite() as address:
        text, text_replies = asyncio.run(run_text(address, args.turns))
        voice, voice_replies = asyncio.run(run_voice(address, args.turns, voices))
        sweep = [
            (count, asyncio.run(run_concurrent(address, int(count)))) for count in args.at_once.split(",")
        ]

    def ms(values: list[float]) -> list[object]:
        return [p50(values) * 1000, percentile(values, 95) * 1000]

    print(f"\n{machine()}; {args.turns} turns each, persona {NPC}\n")
    print(
        table(
            ["turn", "first audio p50 ms", "p95 ms"],
            [["text", *ms(text)], ["voice (from end of speech)", *ms(voice)]],
        )
    )
    print(f"\ntext:  {breakdown(text_replies)}")
    print(f"voice: {breakdown(voice_replies)}")
    print("\nconversations at once, three text turns each:\n")
    print(
        table(
            ["at once", "first audio p50 ms", "p95 ms", "max ms"],
            [[c, *ms(v), max(v) * 1000] for c, v in sweep],
        )
    )


if __name__ == "__main__":
    main()
