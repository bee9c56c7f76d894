"""First audio for the NPC the player talks to in a scene of three, against a conversation with that NPC
alone, in one run, alternating.

    PYTHONPATH=services:. .venv/bin/python -m bench.scene [--turns 10]

Redis and the five services run as their own processes. Two conversations with Hilda, one alone and one
in a scene with Tobin and Captain Vael (the game addresses Hilda; the other two overhear every line and
store it), take turns on the same typed lines with the same seed (so the same replies), after a warm-up
turn each: from sending the line to the first ``ReplyAudio``, and the gateway's own first-audio time
(TurnEnd's latency).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import machine, p50, percentile, table
from bench.conversation import LINES, NPC, suite, text_turn
from npcvoice.client import NpcClient

SCENE = [NPC, "innkeeper_tobin", "guard_captain_vael"]
SEED = 7


async def run(gateway: str, turns: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    seen: dict[str, list[float]] = {"one NPC": [], "scene of three": []}
    inside: dict[str, list[float]] = {"one NPC": [], "scene of three": []}
    async with NpcClient(gateway) as client:
        alone = await client.conversation(NPC, f"bench-alone-{time.time_ns()}", seed=SEED)
        scene = await client.conversation("", f"bench-scene-{time.time_ns()}", seed=SEED, scene=SCENE)
        scene.address(NPC)
        conversations = {"one NPC": alone, "scene of three": scene}
        for npc in conversations.values():
            await npc.say("Hello.")  # warm-up: the persona's prompt, the voice
        for i in range(turns):
            line = LINES[i % len(LINES)]
            for name in list(conversations) if i % 2 == 0 else list(conversations)[::-1]:
                first, reply = await text_turn(conversations[name], line)
                assert reply.npc_id == NPC and reply.player_text == line and first > 0, (name, first, reply)
                seen[name].append(first)
                inside[name].append(reply.latency.get("first_audio_s", 0.0))
        for npc in conversations.values():
            await npc.close()
    return seen, inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    with suite() as gateway:
        seen, inside = asyncio.run(run(gateway, args.turns))
    rows = [
        [name, len(v), f"{p50(v):.3f}", f"{percentile(v, 95):.3f}", f"{p50(inside[name]):.3f}"]
        for name, v in seen.items()
    ]
    print(f"\n# bench.scene on {machine()}: typed lines to {NPC}, seed {SEED}, alternating")
    print(table(["conversation", "turns", "first audio p50 s", "p95 s", "gateway's own p50 s"], rows))
    alone, scene = seen["one NPC"], seen["scene of three"]
    print(f"\nfirst audio p50, scene / one NPC: {p50(scene) / p50(alone):.2f}x")


if __name__ == "__main__":
    main()
