"""Time to a reply's first piece (what the voice can start speaking), straight through the dialogue engine.

    .venv/bin/python bench/dialogue_first_piece.py [--label NAME] [--models-dir .models]

The conversations of bench/dialogue.py (six three-turn conversations with Hilda, each turn its own seed,
first clauses released on their own, as the gateway asks), persona prompt not prefilled ahead: from the
request to the first Sentence event, on the first turn (the whole prompt prefilled) and the later ones
(the conversation's cache reused), and the model steps it took. Speed is what the engine does between
the prompt and the first thing the player hears: tags, blocking, sampling.

To compare two versions of the engine on one machine, run it as a script (not ``-m``) from each checkout
with that checkout's services first on the path, alternating, e.g.
``PYTHONPATH=/path/to/old/services:. .venv/bin/python bench/dialogue_first_piece.py --label before``
(the personas are read from the working directory's npc_personas/, so run it from each checkout).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.common import machine, p50, percentile, table
from bench.dialogue import CONVERSATIONS, PERSONA
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import Sentence
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.turns import Turn


def first_piece(engine: DialogueEngine, request: TurnRequest) -> tuple[float, int, str]:
    """Seconds to the reply's first piece, the decode steps to it, and the reply's text."""
    generation = engine.begin(request)
    started = time.perf_counter()
    while not generation.prefill_step():
        pass
    seconds, steps, count = 0.0, 0, 0
    while not generation.done:
        count += 1
        events = generation.decode_step()
        if not seconds and any(isinstance(e, Sentence) for e in events):
            seconds, steps = time.perf_counter() - started, count
    generation.close()
    return seconds, steps, generation.summary().text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--models-dir", type=Path, default=Path(".models"))
    args = parser.parse_args()
    engine = DialogueEngine(DialogueOptions(models_dir=args.models_dir))
    first: list[float] = []
    later: list[float] = []
    steps: list[float] = []
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
            seconds, count, text = first_piece(engine, request)
            (later if i else first).append(seconds * 1000)
            steps.append(count)
            history += [Turn("player", line), Turn("npc", text)]
    print(f"\n{machine()}; {len(CONVERSATIONS)} conversations x 3 turns, {args.label}\n")
    rows = [
        ["first piece, turn 1 ms", p50(first), percentile(first, 95)],
        ["first piece, turns 2-3 ms", p50(later), percentile(later, 95)],
        ["decode steps to the first piece", p50(steps), percentile(steps, 95)],
    ]
    print(table(["", "p50", "p95"], rows))


if __name__ == "__main__":
    main()
