"""``npcvoice talk`` and ``npcvoice demo``: talk to a running NPC from the command line.

Each turn prints what the player said (the transcript, for a WAV), the NPC's reply, its emotions,
actions and latency, and writes the reply's audio (turn-N.wav) and viseme track (turn-N.visemes.json).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc

from npcvoice.catalog import SERVICES
from npcvoice.client import NpcClient, Reply, read_wav

DEFAULT_ADDRESS = f"127.0.0.1:{SERVICES['conversation'].port}"
DEMO_NPC = "blacksmith_hilda"
DEMO_LINES = [
    "Good morning! Is the forge open?",
    "My name is Ada. I just came down from the Kharzad mine.",
    "Can you repair my sword? The blade is chipped.",
    "What do you think of the merchants from Vaelmoor?",
    "Thank you, Hilda. Do you remember my name?",
]


def show(index: int, said: str, reply: Reply, out_dir: Path | None) -> None:
    print(f"\n[{index}] player: {reply.player_text or said}")
    print(f"    npc:    {reply.text}" + ("  (interrupted)" if reply.interrupted else ""))
    if reply.emotions:
        print(f"    emotion: {', '.join(reply.emotions)}")
    for action in reply.actions:
        print(f"    action: {action['name']} {action['parameters']}")
    latency = reply.latency
    print(
        "    latency: "
        + (f"transcript {latency['transcript_s'] * 1000:.0f} ms, " if latency["transcript_s"] else "")
        + f"first token {latency['first_token_s'] * 1000:.0f} ms, "
        f"first audio {latency['first_audio_s'] * 1000:.0f} ms, total {latency['total_s'] * 1000:.0f} ms"
    )
    if out_dir is not None and reply.audio:
        reply.write_wav(out_dir / f"turn-{index}.wav")
        reply.write_visemes(out_dir / f"turn-{index}.visemes.json")
        frames = len(reply.visemes)
        wav = out_dir / f"turn-{index}.wav"
        print(f"    wrote {wav} ({reply.seconds:.1f} s) and its visemes ({frames} frames)")


async def converse(
    address: str, npc_id: str, player_id: str, turns: list[str | Path], out_dir: Path | None, text_only: bool
) -> int:
    async with NpcClient(address) as client:
        npc = await client.conversation(npc_id, player_id, voice_reply=not text_only)
        print(f"{npc.started.display_name}: {npc.greeting}")
        if npc.started.remembered_turns:
            print(f"(remembers {npc.started.remembered_turns} earlier lines with {player_id})")
        for index, turn in enumerate(turns):
            if isinstance(turn, Path):
                samples, rate = read_wav(turn)
                reply = await npc.speak(samples, rate)
            else:
                reply = await npc.say(turn)
            show(index, str(turn), reply, out_dir)
        await npc.close()
    return 0


def main(argv: list[str], demo: bool = False) -> int:
    parser = argparse.ArgumentParser(
        prog="npcvoice demo" if demo else "npcvoice talk",
        description="A scripted conversation with Hilda the blacksmith." if demo else __doc__.splitlines()[0],
    )
    if not demo:
        parser.add_argument("npc_id", help="the NPC's persona id, e.g. blacksmith_hilda")
        parser.add_argument("turns", nargs="+", help="lines to say, or WAV files (16-bit PCM) to speak")
    parser.add_argument("--player", default="demo-player" if demo else "cli-player", help="player id")
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="the conversation gateway")
    parser.add_argument(
        "--out", type=Path, default=Path("demo-out") if demo else Path(), help="where WAVs go"
    )
    parser.add_argument("--text-only", action="store_true", help="reply in text, without audio")
    args = parser.parse_args(argv)
    npc_id, lines = (DEMO_NPC, DEMO_LINES) if demo else (args.npc_id, args.turns)
    # A WAV file that exists is spoken; anything else is said as text.
    turns: list[str | Path] = [
        Path(t) if t.lower().endswith(".wav") and Path(t).is_file() else t for t in lines
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(converse(args.address, npc_id, args.player, turns, args.out, args.text_only))
    except grpc.aio.AioRpcError as error:
        print(f"npcvoice: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
