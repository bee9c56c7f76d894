"""First audio through the WebSocket edge against gRPC, in one run, alternating.

    PYTHONPATH=services:. .venv/bin/python -m bench.edge [--turns 20]

Redis, the five services and the edge (``npcvoice edge``) run as their own processes, as in production.
Two conversations with Hilda, one over gRPC (the Python client) and one over ``ws://.../v1/converse``
(binary frames), take turns on the same typed lines (which goes first alternates), after a warm-up turn
each: from sending the line to the first ``ReplyAudio``. The two conversations get different replies
(the model's first clause decides most of first audio), so beside the ratio the bench prints what each
transport added to the gateway's own first-audio time (TurnEnd's latency): the hop, framing, the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator

from websockets.asyncio.client import ClientConnection, connect

from bench.common import http_process, machine, p50, percentile, table
from bench.conversation import LINES, NPC, suite, text_turn
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.client import NpcClient
from npcvoice.runtime.ports import free_port


@contextlib.contextmanager
def edge_process(gateway: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "npcvoice", "edge", "--port", str(port), "--gateway", gateway]
    with http_process(command, f"http://127.0.0.1:{port}/healthz", "the edge", timeout_s=60):
        yield f"ws://127.0.0.1:{port}/v1/converse"


async def ws_turn(websocket: ClientConnection, line: str) -> tuple[float, float]:
    """From sending ``line`` to the first reply audio, and the same as the gateway measured it (TurnEnd);
    the rest of the turn read to its end."""
    started = time.perf_counter()
    await websocket.send(conversation_pb2.ConverseRequest(text=line).SerializeToString())
    first = 0.0
    while True:
        frame = await websocket.recv()
        assert isinstance(frame, bytes)
        response = conversation_pb2.ConverseResponse.FromString(frame)
        kind = response.WhichOneof("event")
        if kind == "audio" and not first:
            first = time.perf_counter() - started
        if kind in ("turn_end", "refused"):
            return first, response.turn_end.latency.first_audio_seconds


async def run(gateway: str, edge: str, turns: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """First audio per transport as the player sees it, and what the transport added to the gateway's own
    first-audio time (the player's minus the gateway's: the hop, framing, the client)."""
    results: dict[str, list[float]] = {"gRPC": [], "WebSocket edge": []}
    added: dict[str, list[float]] = {"gRPC": [], "WebSocket edge": []}
    async with NpcClient(gateway) as client, connect(edge) as websocket:
        npc = await client.conversation(NPC, f"bench-grpc-{time.time_ns()}")
        await npc.say("Hello.")  # warm-up: the persona's prompt, the voice
        start = conversation_pb2.ConverseConfig(npc_id=NPC, player_id=f"bench-ws-{time.time_ns()}")
        await websocket.send(conversation_pb2.ConverseRequest(config=start).SerializeToString())
        await ws_turn(websocket, "Hello.")
        for i in range(turns):
            line = LINES[i % len(LINES)]
            for transport in ["gRPC", "WebSocket edge"] if i % 2 == 0 else ["WebSocket edge", "gRPC"]:
                if transport == "gRPC":
                    seen, reply = await text_turn(npc, line)
                    inside = reply.latency.get("first_audio_s", 0.0)
                else:
                    seen, inside = await ws_turn(websocket, line)
                results[transport].append(seen)
                added[transport].append(seen - inside)
        await npc.close()
    return results, added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    with suite() as gateway, edge_process(gateway) as edge:
        results, added = asyncio.run(run(gateway, edge, args.turns))
    rows = [
        [name, len(v), f"{p50(v):.3f}", f"{percentile(v, 95):.3f}", f"{p50(added[name]) * 1000:.1f}",
         f"{percentile(added[name], 95) * 1000:.1f}"]
        for name, v in results.items()
    ]  # fmt: skip
    print(f"\n# bench.edge on {machine()}: typed lines to {NPC}, alternating")
    headers = ["transport", "turns", "first audio p50 s", "p95 s", "added to the gateway's p50 ms", "p95 ms"]
    print(table(headers, rows))
    grpc, ws = results["gRPC"], results["WebSocket edge"]
    print(f"\nfirst audio p50, WebSocket edge / gRPC: {p50(ws) / p50(grpc):.2f}x")


if __name__ == "__main__":
    main()
