"""What the model decoding the rest of a reply costs the voice speaking its first clause, on this CPU.

    .venv/bin/python -m bench.first_clause [--rounds 8] [--gap-ms 0]

piper synthesizes the same clause alone and while the dialogue model decodes replies in another process
(as the two services do), alternately, so that a change in the machine's load falls on both. This is what the
dialogue's wait after a reply's first piece (`first_piece_yield_ms_per_char`) spares the first clause.

The model decodes twice over, in two processes taking turns: with onnxruntime's threads spinning between
steps (its default) and without (the dialogue's ``spinning`` option). ``--gap-ms`` pauses between the
model's steps (as when the service interleaves replies or waits after a first piece): that is when the
spinning threads hold cores that do nothing.
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


def decode_while(
    decoding: Event, stop: Event, steps: Synchronized[int], spinning: bool, gap_s: float
) -> None:
    """In its own process: decode replies token by token whenever ``decoding`` is set, until ``stop``;
    one reply after another in the same conversation (its prompt cached after the first)."""
    options = DialogueOptions(spinning=spinning)
    engine = DialogueEngine(options, PersonaStore(Path("npc_personas")))
    while not stop.is_set():
        generation = engine.begin(TurnRequest("blacksmith_hilda", LINE, "bench", MemoryView()))
        while not generation.prefill_step():
            pass
        while not generation.done and not stop.is_set():
            if decoding.wait(0.05):
                generation.decode_step()
                with steps.get_lock():
                    steps.value += 1
                time.sleep(gap_s)
        generation.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause between the model's steps")
    args = parser.parse_args()
    voice = VoiceEngine(VoiceOptions())
    settings = voice.check(SynthesisSettings(sample_rate=16000))
    voice.synthesize_piece(CLAUSE, settings, 0, 0)  # loaded and warm
    stop = multiprocessing.Event()
    models: dict[str, tuple[Event, Synchronized[int]]] = {}
    for name, spinning in (("while the model decodes, threads spinning", True),
                           ("while the model decodes, no spinning", False)):  # fmt: skip
        decoding, steps = multiprocessing.Event(), multiprocessing.Value("i", 0)
        worker = multiprocessing.Process(
            target=decode_while, args=(decoding, stop, steps, spinning, args.gap_ms / 1000), daemon=True
        )
        worker.start()
        decoding.set()
        while steps.value < 5:  # the model loaded and decoding
            time.sleep(0.1)
        decoding.clear()
        models[name] = (decoding, steps)
    times: dict[str, list[float]] = {"alone": [], **{name: [] for name in models}}
    for _ in range(args.rounds):
        for condition in times:
            model = models.get(condition)
            if model is not None:
                model[0].set()
                time.sleep(0.3)  # decoding under way
            before, started = model[1].value if model else 0, time.perf_counter()
            voice.synthesize_piece(CLAUSE, settings, 0, 0)
            times[condition].append((time.perf_counter() - started) * 1000)
            if model is not None:
                assert model[1].value > before, "the model did not decode while the voice was timed"
                model[0].clear()
            time.sleep(0.3)
    stop.set()
    for child in multiprocessing.active_children():
        child.join()
    alone = p50(times["alone"])
    rows: list[list[object]] = [
        [name, p50(values), percentile(values, 95), p50(values) / alone] for name, values in times.items()
    ]
    print(f"{machine()}; piper on {CLAUSE!r} ({len(CLAUSE)} characters), {args.rounds} rounds, "
          f"{args.gap_ms:g} ms between the model's steps\n")  # fmt: skip
    print(table(["piper", "p50 ms", "p95 ms", "x alone"], rows))


if __name__ == "__main__":
    main()
