"""Time to a reply's first piece (what the voice can start speaking), straight through the dialogue engine.

    .venv/bin/python bench/dialogue_first_piece.py [--label NAME] [--models-dir .models]
    .venv/bin/python -m bench.dialogue_first_piece --models smollm2-135m,npc-smollm2-135m --rounds 2

The conversations of bench/dialogue.py (six three-turn conversations with Hilda, each turn its own seed,
first clauses released on their own, as the gateway asks), persona prompt not prefilled ahead: from the
request to the first Sentence event, on the first turn (the whole prompt prefilled) and the later ones
(the conversation's cache reused), and the model steps it took. Speed is what the engine does between
the prompt and the first thing the player hears: tags, blocking, sampling.

To compare two versions of the engine on one machine, run it as a script (not ``-m``) from each checkout
with that checkout's services first on the path, alternating, e.g.
``PYTHONPATH=/path/to/old/services:. .venv/bin/python bench/dialogue_first_piece.py --label before``
(the personas are read from the working directory's npc_personas/, so run it from each checkout).
To compare models in one run, ``--models`` gives Hilda each in turn (``--rounds`` times, alternating);
the decode rate counts every decode step of the replies over the time from the first step to the reply's end
(since session 32: before, from the first piece, which a reply of one clause no longer has after it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import machine, p50, percentile, table
from bench.dialogue import CONVERSATIONS, PERSONA
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import Sentence
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.turns import Turn


def first_piece(engine: DialogueEngine, request: TurnRequest) -> tuple[float, int, str, float]:
    """Seconds to the reply's first piece, the decode steps to it, the reply's text and its decode rate
    (decode steps a second, from the first to the end: a reply of one clause is all first piece)."""
    generation = engine.begin(request)
    started = time.perf_counter()
    while not generation.prefill_step():
        pass
    decoding = time.perf_counter()
    seconds, steps, count = 0.0, 0, 0
    while not generation.done:
        count += 1
        events = generation.decode_step()
        if not seconds and any(isinstance(e, Sentence) for e in events):
            seconds, steps = time.perf_counter() - started, count
    rest = time.perf_counter() - decoding
    generation.close()
    rate = (count - 1) / rest if count > 1 and rest > 0 else 0.0
    return seconds, steps, generation.summary().text, rate


def conversations(engine: DialogueEngine) -> dict[str, list[float]]:
    """The bench's conversations once: the times to the first piece (turn 1, later turns), the decode
    steps to it, and the decode rate."""
    times: dict[str, list[float]] = {"first": [], "later": [], "steps": [], "rate": []}
    for c, lines in enumerate(CONVERSATIONS):
        history: list[Turn] = []
        conversation = f"first-piece-{c}-{time.time_ns()}"  # one cache per conversation, reused by its turns
        for i, line in enumerate(lines):
            request = TurnRequest(
                persona_id=PERSONA,
                conversation_id=conversation,
                player_text=line,
                memory=MemoryView(recent_turns=list(history)),
                first_clause=True,
                sampling=SamplingOverrides(seed=7 + 10 * c + i, max_tokens=48),
            )
            seconds, count, text, rate = first_piece(engine, request)
            times["later" if i else "first"].append(seconds * 1000)
            times["steps"].append(count)
            if rate:
                times["rate"].append(rate)
            history += [Turn("player", line), Turn("npc", text)]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--models-dir", type=Path, default=Path(".models"))
    parser.add_argument("--models", default="", help="comma-separated model ids for Hilda (default: hers)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(args.rounds):
            for model in args.models.split(",") if args.models else [""]:
                personas = Path("npc_personas")
                if model:
                    persona = yaml.safe_load((personas / f"{PERSONA}.yaml").read_text())
                    persona.setdefault("dialogue", {})["model"] = model
                    personas = Path(directory) / model
                    personas.mkdir(exist_ok=True)
                    (personas / f"{PERSONA}.yaml").write_text(yaml.safe_dump(persona, sort_keys=False))
                engine = DialogueEngine(DialogueOptions(models_dir=args.models_dir, persona_dir=personas))
                runs.setdefault(model or args.label, []).append(conversations(engine))
    print(f"\n{machine()}; {len(CONVERSATIONS)} conversations x 3 turns, {args.rounds} round(s)\n")
    rows = []
    measures = {"first piece, turn 1 ms": "first", "first piece, turns 2-3 ms": "later",
                "decode steps to the first piece": "steps", "decode tokens/s": "rate"}  # fmt: skip
    for label, measured in measures.items():
        row: list[object] = [label]
        for results in runs.values():
            row.append(
                " / ".join(f"{p50(r[measured]):.0f} ({percentile(r[measured], 95):.0f})" for r in results)
            )
        rows.append(row)
    print(table(["p50 (p95), each round", *runs], rows))


if __name__ == "__main__":
    main()
