"""Hybrid dialogue on the shipped scripts: how often each escalation signal fires, and what escalating costs
the first piece the player hears, against the small model alone in the same run.

    PYTHONPATH=services:. .venv/bin/python -m bench.hybrid [--rounds 1] [--remote llama-cpp]
    PYTHONPATH=services:. .venv/bin/python -m bench.hybrid --remote-url http://gpu:8000/v1 --remote-model M

Each shipped script (npc_personas/evals/*.yaml) is played line by line through the dialogue service's
scheduler (the library called directly, as the gRPC servicer calls it): its ``say`` lines as the player's,
its context as the world, its events as event turns, the memory carried as the gateway carries it, first
clauses released on their own. Each script is played twice, alternating: with the persona as shipped (the
small model alone) and with ``escalate: hard`` (a copy of the persona, ``<id>__hard``). Both runs share
the machine and the model, and the personas' prompts are not prefilled ahead.

Without ``--remote-url`` the larger model is another dialogue service started here, over its own OpenAI
endpoint (the same small model, so the bench proves the plumbing and times the cover, not the wit; and it
runs on the same cores, so its work competes with the small model's). ``--remote llama-cpp``: llama.cpp's
server on the bundled GGUF, as bench.peer_pipecat builds it. With ``--remote-url`` it is any
OpenAI-compatible server (vLLM, llama.cpp's server, NIM, Ollama, a hosted API).

Prints, per mode: turns, the first piece p50 and p95 (from the request to the first Sentence), the turns
escalated and by which signal, the turns the larger model answered, and its failures; then the escalated
turns' replies.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO_ROOT, machine, p50, percentile, service_process, table
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import Sentence
from npcvoice.dialogue.scheduler import DialogueScheduler
from npcvoice.dialogue.types import GenerationSummary, TurnRequest
from npcvoice.runtime.ports import free_port
from npcvoice.turns import Turn

PERSONAS = REPO_ROOT / "npc_personas"


def hard_copies(directory: Path, remote_for: dict[str, str]) -> None:
    """The shipped personas, and a copy of each escalating hard turns to ``remote_for[persona id]``."""
    for source in PERSONAS.glob("*.yaml"):
        document = yaml.safe_load(source.read_text())
        (directory / source.name).write_text(yaml.safe_dump(document))
        persona_id = document["id"]
        document["id"] = f"{persona_id}__hard"
        document["dialogue"] = {**document.get("dialogue", {}), "escalate": "hard",
                                "escalate_to": remote_for[persona_id]}  # fmt: skip
        (directory / f"{persona_id}__hard.yaml").write_text(yaml.safe_dump(document))


async def play(
    scheduler: DialogueScheduler, script: dict[str, Any], persona_id: str, run: str
) -> list[dict[str, Any]]:
    """One script through the scheduler; per turn: the first piece's time, the summary, the line."""
    turns: list[Turn] = []
    world: dict[str, str] = {}
    out = []
    for line in script["lines"]:
        world |= {k: str(v) for k, v in (line.get("context") or {}).items()}
        turns += [Turn("event", e.get("description") or e["name"]) for e in line.get("events") or []]
        if not line.get("say"):
            continue
        request = TurnRequest(
            persona_id=persona_id,
            player_text=line["say"],
            conversation_id=f"{run}-{persona_id}",
            memory=MemoryView(recent_turns=list(turns), world=dict(world)),
            first_clause=True,
        )
        started, first = time.perf_counter(), None
        summary: GenerationSummary | None = None
        async for output in scheduler.generate(request):
            if first is None and isinstance(output, Sentence):
                first = time.perf_counter() - started
            if isinstance(output, GenerationSummary):
                summary = output
        assert summary is not None
        turns += [Turn("player", line["say"]), Turn("npc", summary.text)]
        out.append(
            {"first": first or 0.0, "summary": summary, "say": line["say"], "tag": line.get("tag", "")}
        )
    return out


async def bench(remote: str, remote_url: str, remote_model: str, rounds: int) -> None:
    scripts = [yaml.safe_load(p.read_text()) for p in sorted((PERSONAS / "evals").glob("*.yaml"))]
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        personas = Path(folder)
        ids = [s["npc"] for s in scripts]
        remotes: dict[str, dict[str, Any]]
        if remote == "llama-cpp":
            from bench.peer_pipecat import llm_server, setup

            setup()  # .venv-peer, as bench.peer_pipecat builds it (first time: 10-15 minutes)
            remote_url, remote_model = stack.enter_context(llm_server()), "smollm2"
        if remote_url:
            remotes = {"big": {"base_url": remote_url, "model": remote_model}}
            remote_for = dict.fromkeys(ids, "big")
        else:  # another dialogue service here, over its OpenAI endpoint (the model is a persona id)
            port = free_port()
            flags = ["--metrics-port", "0", "--option", f"openai_port={port}", "--option", "prewarm=false"]
            stack.enter_context(service_process("dialogue", *flags))
            remotes = {f"big_{i}": {"base_url": f"http://127.0.0.1:{port}/v1", "model": i} for i in ids}
            remote_for = {i: f"big_{i}" for i in ids}
        for entry in remotes.values():
            entry |= {"first_text_timeout_s": 20.0, "timeout_s": 60.0}
        hard_copies(personas, remote_for)
        options = DialogueOptions(persona_dir=personas, models_dir=REPO_ROOT / ".models", prewarm=False,
                                  remote_models=remotes)  # fmt: skip
        engine = DialogueEngine(options)
        scheduler = DialogueScheduler(engine)
        results: dict[str, list[dict[str, Any]]] = {"small alone": [], "escalate: hard": []}
        for round_ in range(rounds):
            for script in scripts:
                for mode, suffix in (("small alone", ""), ("escalate: hard", "__hard")):
                    run = f"r{round_}-{'hard' if suffix else 'small'}"
                    results[mode] += await play(scheduler, script, script["npc"] + suffix, run)
        await scheduler.aclose()
        await engine.aclose()
    rows = []
    for mode, turns in results.items():
        firsts = [t["first"] for t in turns]
        reasons = collections.Counter(r for t in turns for r in t["summary"].escalation)
        escalated = sum(bool(t["summary"].escalation) for t in turns)
        answered = sum(t["summary"].execution_provider == "remote" for t in turns)
        failures = collections.Counter(
            t["summary"].remote_failure for t in turns if t["summary"].remote_failure
        )
        rows.append([mode, len(turns), f"{p50(firsts):.2f}", f"{percentile(firsts, 95):.2f}",
                     f"{escalated} ({escalated / max(len(turns), 1):.0%})",
                     ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-", answered,
                     ", ".join(f"{k} {v}" for k, v in failures.items()) or "-"])  # fmt: skip
    print(
        f"# bench.hybrid on {machine()}, larger model: {remote_url or 'a dialogue service here (same model)'}"
    )
    print(table(["mode", "turns", "first piece p50 s", "p95 s", "escalated", "signals", "answered by larger",
                 "remote failures"], rows))  # fmt: skip
    sure = sorted(t["summary"].confidence for t in results["small alone"])
    if sure:
        quartiles = ", ".join(f"{percentile(sure, q):.2f}" for q in (10, 25, 50, 75))
        print(f"\nthe small model's confidence in its first words, p10/p25/p50/p75: {quartiles}")
    # After the small model's opening, how long until the larger model's first sentence is out (the
    # opening plays meanwhile: about 60 ms a character of it at the shipped voice's pace).
    handover = [
        t["summary"].time_to_first_token_s - t["first"]
        for t in results["escalate: hard"]
        if t["summary"].execution_provider == "remote" and t["summary"].time_to_first_token_s > t["first"]
    ]
    if handover:
        print(f"\nthe larger model's first sentence after the opening, p50/p95 s: {p50(handover):.2f}, "
              f"{percentile(handover, 95):.2f} ({len(handover)} turns)")  # fmt: skip
    small, hard = (sorted(t["first"] for t in results[m]) for m in results)
    if small and hard:
        print(f"\nfirst piece p50, escalate: hard / small alone: {p50(hard) / p50(small):.2f}x")
    print("\nescalated turns:")
    for turn in results["escalate: hard"]:
        s = turn["summary"]
        if s.escalation:
            print(f"- [{turn['tag']}] {turn['say']!r} ({', '.join(s.escalation)}; {s.answered_by}"
                  f"{'; ' + s.remote_failure if s.remote_failure else ''}): {s.text!r}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--remote",
        choices=["npcvoice", "llama-cpp"],
        default="npcvoice",
        help="the larger model without --remote-url: another dialogue service started here, or llama.cpp's "
        "server on the bundled GGUF as bench.peer_pipecat builds it",
    )
    parser.add_argument(
        "--remote-url", default="", help="an OpenAI-compatible base URL (default: one started here)"
    )
    parser.add_argument("--remote-model", default="", help="the model name it serves (with --remote-url)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    if args.remote_url and not args.remote_model:
        sys.exit("--remote-url needs --remote-model")
    asyncio.run(bench(args.remote, args.remote_url, args.remote_model, args.rounds))


if __name__ == "__main__":
    main()
