"""What the model decoding the rest of a reply costs the voice speaking its first clause, on this CPU.

    .venv/bin/python -m bench.first_clause [--rounds 8]

piper synthesizes the same clause alone and while the dialogue model decodes replies in another process
(as the two services do), alternately, so that a change in the machine's load falls on both. This is what the
dialogue's wait after a reply's first piece (`first_piece_yield_ms_per_char`) spares the first clause.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

from bench.common import machine, p50, percentile, table
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.types import TurnRequest
from npcvoice.personas import PersonaStore
from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
from npcvoice.voice.options import VoiceOptions

CLAUSE = "Welcome to my forge, traveller,"
LINE = "Tell me everything about your forge, your family and the mine."


def decode_while(decoding: Event, stop: Event, steps: Synchronized[int]) -> None:
    """In its own process: decode replies token by token whenever ``decoding`` is set, until ``stop``;
    one reply after another in the same conversation (its prompt cached after the first)."""
    engine = DialogueEngine(DialogueOptions(), PersonaStore(Path("npc_personas")))
    while not stop.is_set():
        generation = engine.begin(TurnRequest("blacksmith_hilda", LINE, "bench", MemoryView()))
        while not generation.prefill_step():
            pass
        while not generation.done and not stop.is_set():
            if decoding.wait(0.05):
                generation.decode_step()
                with steps.get_lock():
                    steps.value += 1
        generation.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    voice = VoiceEngine(VoiceOptions())
    settings = voice.check(SynthesisSettings(sample_rate=16000))
    voice.synthesize_piece(CLAUSE, settings, 0, 0)  # loaded and warm
    decoding, stop, steps = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Value("i", 0)
    worker = multiprocessing.Process(target=decode_while, args=(decoding, stop, steps), daemon=True)
    worker.start()
    decoding.set()
    while steps.value < 5:  # the model loaded and decoding
        time.sleep(0.1)
    decoding.clear()
    times: dict[str, list[float]] = {"alone": [], "while the model decodes": []}
    for _ in range(args.rounds):
        for condition in times:
            if condition != "alone":
                decoding.set()
                time.sleep(0.3)  # decoding under way
            before, started = steps.value, time.perf_counter()
            voice.synthesize_piece(CLAUSE, settings, 0, 0)
            times[condition].append((time.perf_counter() - started) * 1000)
            if condition != "alone":
                assert steps.value > before, "the model did not decode while the voice was timed"
            decoding.clear()
            time.sleep(0.3)
    stop.set()
    worker.join()
    alone = p50(times["alone"])
    rows: list[list[object]] = [
        [name, p50(values), percentile(values, 95), p50(values) / alone] for name, values in times.items()
    ]
    print(f"{machine()}; piper on {CLAUSE!r} ({len(CLAUSE)} characters), {args.rounds} rounds\n")
    print(table(["piper", "p50 ms", "p95 ms", "x alone"], rows))


if __name__ == "__main__":
    main()
