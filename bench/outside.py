"""How many lines from outside a game's world the deflection takes (``deflection.from_outside``: the reply is
led to a refusal in character), and how many of the world's own it takes by mistake: on the corpus's player
lines (their skills say which are injections and out-of-world) and on lines written apart from both the
detector and the corpus (bench/data/outside_lines.yaml), by its word lists alone, by the learned model
alone (``dialogue.outside``, trained on the corpus's lines and training/outside/, never on the written
sets) and by both, as served. Pure text, no dialogue model: it runs in seconds.

    .venv/bin/python -m bench.outside [--misses]
"""

from __future__ import annotations

import argparse

import yaml

from bench.common import REPO_ROOT, table
from npcvoice.dialogue.deflection import from_outside, listed
from npcvoice.dialogue.outside import shipped
from npcvoice.training.outside import corpus_player_lines

LINES = REPO_ROOT / "bench" / "data" / "outside_lines.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="print the lines it gets wrong")
    args = parser.parse_args()
    written = yaml.safe_load(LINES.read_text())
    sets = [("corpus player lines (training/)", *corpus_player_lines())]
    sets += [(f"written apart, set {n}", written[f"outside_{n}"], written[f"inworld_{n}"]) for n in (1, 2, 3)]
    detectors = [("word lists", listed), ("learned model", shipped().takes), ("both (served)", from_outside)]
    rows: list[list[object]] = []
    for name, outside, inside in sets:
        for detector, takes in detectors:
            missed = [line for line in outside if not takes(line)]
            taken = [line for line in inside if takes(line)]
            rows.append(
                [
                    name,
                    detector,
                    f"{len(outside) - len(missed)} / {len(outside)}",
                    f"{len(taken)} / {len(inside)}",
                ]
            )
            if args.misses and takes is from_outside:
                wrong = [*(f"  missed: {line}" for line in missed), *(f"  taken: {line}" for line in taken)]
                print(f"{name}:", *wrong, sep="\n")
    print(table(["lines", "by", "outside the world, taken", "of the world, taken by mistake"], rows))


if __name__ == "__main__":
    main()
