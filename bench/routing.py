"""Cache-affine dialogue routing against per-call round robin, on two dialogue replicas.

    .venv/bin/python -m bench.routing [--conversations 6] [--turns 5] [--base-port 51320]

Two dialogue processes (persona prefill ahead off, so a prompt a replica has not seen is prefilled in
full). The gateway's own client (Downstream) plays each conversation's turns with its history, as the
gateway would, twice: once with the replicas listed (``dialogue_addresses``: each conversation stays on
the replica holding its cache), once as one round-robin address (``ipv4:a,b``: what a Kubernetes
Service balanced per call gives), which is the baseline. Fresh conversation ids for each, so neither
finds the other's caches. It prints the share of prompt tokens served from a cache and the time to the
first token, turn 1 apart (cold in both: "turn 1 p50 ms").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from bench.common import REPO_ROOT, machine, p50, percentile, service_process, table
from bench.conversation import LINES
from npcvoice.api.npc.dialogue.v1 import dialogue_pb2
from npcvoice.conversation.downstream import Downstream
from npcvoice.conversation.options import GatewayOptions

NPCS = ["blacksmith_hilda", "innkeeper_tobin", "guard_captain_vael"]


async def conversation(
    downstream: Downstream, npc: str, conversation_id: str, turns: int
) -> list[dialogue_pb2.GenerationSummary]:
    history: list[dialogue_pb2.Turn] = []
    summaries = []
    for turn in range(turns):
        line = LINES[turn % len(LINES)]
        request = dialogue_pb2.GenerateRequest(
            persona_id=npc,
            conversation_id=conversation_id,
            player_text=line,
            memory=dialogue_pb2.Memory(recent_turns=history),
            sampling=dialogue_pb2.Sampling(seed=turn, max_tokens=32),
        )
        summary = [r.summary async for r in downstream.generate(request) if r.HasField("summary")][-1]
        summaries.append(summary)
        history += [dialogue_pb2.Turn(role=dialogue_pb2.ROLE_PLAYER, text=line),
                    dialogue_pb2.Turn(role=dialogue_pb2.ROLE_NPC, text=summary.text)]  # fmt: skip
    return summaries


async def run(
    options: GatewayOptions, label: str, conversations: int, turns: int
) -> list[list[dialogue_pb2.GenerationSummary]]:
    downstream = Downstream(options)
    try:
        npcs = [NPCS[i % len(NPCS)] for i in range(conversations)]
        ids = [f"{npc}:{label}-{i}-{time.time_ns()}" for i, npc in enumerate(npcs)]
        return await asyncio.gather(
            *(conversation(downstream, n, c, turns) for n, c in zip(npcs, ids, strict=True))
        )
    finally:
        await downstream.aclose()


def row(label: str, results: list[list[dialogue_pb2.GenerationSummary]]) -> list[object]:
    later = [s for summaries in results for s in summaries[1:]]
    first = [summaries[0] for summaries in results]
    cached = sum(s.cached_prompt_tokens for s in later) / max(1, sum(s.prompt_tokens for s in later))
    ttft = [s.time_to_first_token_seconds * 1000 for s in later]
    return [label, f"{cached:.0%}", p50(ttft), percentile(ttft, 95),
            p50([s.time_to_first_token_seconds * 1000 for s in first])]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=6)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument(
        "--base-port", type=int, default=0, help="the replicas' ports from here (0: free ones)"
    )
    args = parser.parse_args()
    options = ["--option", f"models_dir={REPO_ROOT / '.models'}", "--option", "prewarm=false",
               "--option", f"persona_dir={REPO_ROOT / 'npc_personas'}"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        replicas = [
            stack.enter_context(service_process("dialogue", *options, port=args.base_port + i))
            for i in range(2)
        ]
        base = {"persona_dir": REPO_ROOT / "npc_personas"}
        affine = asyncio.run(
            run(GatewayOptions(**base, dialogue_addresses=replicas), "affine", args.conversations, args.turns)
        )
        spread = "ipv4:" + ",".join(replicas)
        per_call = asyncio.run(
            run(
                GatewayOptions(**base, dialogue_address=spread), "round-robin", args.conversations, args.turns
            )
        )
    print(f"\n{machine()}; 2 dialogue replicas, {args.conversations} conversations at once, "
          f"{args.turns} turns each\n")  # fmt: skip
    print(table(
        ["routing", "later turns: prompt cached", "first token p50 ms", "p95 ms", "turn 1 p50 ms"],
        [row("round robin per call (baseline)", per_call), row("cache-affine (consistent hashing)", affine)],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
