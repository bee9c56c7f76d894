"""Blind reading of NPC replies: transcripts of several models shuffled into packets for readers, and their
verdicts tallied back per model.

    python -m bench.blind pack --out /tmp/read --readers 4 base=a.json tuned=b.json   # npcvoice eval --record
    python -m bench.blind pack --out /tmp/read --readers 6 npc_mind.yaml   # bench.npc_mind --transcript
    python -m bench.blind tally /tmp/read

``pack`` writes ``reader-K.md`` (the brief, bench/READING.md, then that reader's packets: one conversation
each, its persona file named, no model named), ``verdicts-K.jsonl`` for the reader to fill, and
``key.json`` (which packet is which model's). The same conversation played by every model goes to the same
reader, in shuffled order, so each reader judges the models on the same lines. ``tally`` prints, per
model, the replies passed by tag and the flags readers gave, and names any reply left unjudged.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.common import table

HERE = Path(__file__).resolve().parent
BRIEF = HERE / "READING.md"
FLAGS = ("wrong_fact", "incoherent", "repeat", "identity_slip", "out_of_world", "unasked_action",
         "wrong_action", "wrong_emotion", "secret_revealed")  # fmt: skip


@dataclass
class Said:
    line: str  # what the player said (or the cue), with what the game set before it
    tag: str
    reply: str
    emotions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


@dataclass
class Played:
    """One conversation as one model played it."""

    model: str
    conversation: str  # the same for every model's play of it
    persona: str  # the persona file a reader opens
    lines: list[Said] = field(default_factory=list)


def from_eval(model: str, recorded: dict[str, list[dict[str, Any]]], personas: Path) -> list[Played]:
    """An ``npcvoice eval --record`` transcript; its keys are the scripts' paths (read for tags and the
    context each line sets)."""
    from npcvoice.evaluation.script import load_script

    played = []
    for path, entries in recorded.items():
        script = load_script(Path(path))
        one = Played(model, Path(path).stem, str(personas / f"{script.npc}.yaml"))
        for line, entry in zip(script.lines, entries, strict=True):
            set_first = [f"{k}={v}" for k, v in line.context.items()] + [e.name for e in line.events]
            shown = f"(the game sets: {'; '.join(set_first)}) " if set_first else ""
            one.lines.append(Said(shown + entry["say"], line.tag, entry["reply"], entry["emotions"],
                                  entry["actions"]))  # fmt: skip
        played.append(one)
    return played


def from_npc_mind(entries: list[dict[str, Any]], personas: Path) -> list[Played]:
    """A ``bench.npc_mind --transcript``: replies of every model, in order, on the corpus's conversations."""
    played: dict[tuple[str, int], Played] = {}
    for entry in entries:
        key = (entry["model"], entry["conversation"])
        if key not in played:
            name = f"{entry['npc']}-{entry['conversation']}"
            played[key] = Played(entry["model"], name, str(personas / f"{entry['npc']}.yaml"))
        played[key].lines.append(Said(entry["line"], entry["skill"] or "", entry["reply"], entry["emotions"],
                                      entry["actions"]))  # fmt: skip
    return list(played.values())


def pack(played: list[Played], out: Path, readers: int, seed: int) -> dict[str, dict[str, Any]]:
    """Packets for ``readers`` readers, written to ``out``; returns the key (packet -> what it is)."""
    rng = random.Random(seed)
    by_conversation: dict[str, list[Played]] = defaultdict(list)
    for one in played:
        by_conversation[one.conversation].append(one)
    names = sorted(by_conversation)
    rng.shuffle(names)
    numbers = list(range(1, len(played) + 1))
    rng.shuffle(numbers)
    shares: list[list[tuple[str, Played]]] = [[] for _ in range(readers)]
    key: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        for one in by_conversation[name]:
            packet = f"P{numbers.pop():03d}"
            reader = index % readers + 1
            key[packet] = {"model": one.model, "conversation": one.conversation, "reader": reader,
                           "lines": [asdict(s) for s in one.lines]}  # fmt: skip
            shares[reader - 1].append((packet, one))
    out.mkdir(parents=True, exist_ok=True)
    for number, share in enumerate(shares, 1):
        rng.shuffle(share)
        text = [BRIEF.read_text(), f"\nYour verdicts go to: {out / f'verdicts-{number}.jsonl'}\n"]
        for packet, one in share:
            text.append(f"\n## Packet {packet}: a conversation with the NPC of {one.persona}\n")
            for index, said in enumerate(one.lines, 1):
                marks = "".join(f" [{e}]" for e in said.emotions) + "".join(f" {{{a}}}" for a in said.actions)
                text.append(f"{index}. ({said.tag or '-'}) Player: {said.line}\n   NPC: {said.reply}{marks}")
        (out / f"reader-{number}.md").write_text("\n".join(text) + "\n")
        (out / f"verdicts-{number}.jsonl").touch()
    (out / "key.json").write_text(json.dumps(key, indent=1))
    return key


def tally(out: Path) -> tuple[list[str], list[list[object]], list[str]]:
    """The readers' verdicts per model: the table's header and rows, and the replies left unjudged."""
    key = json.loads((out / "key.json").read_text())
    verdicts: dict[tuple[str, int], dict[str, Any]] = {}
    for path in sorted(out.glob("verdicts-*.jsonl")):
        for text in path.read_text().splitlines():
            if text.strip():
                verdict = json.loads(text)
                verdicts[(verdict["packet"], int(verdict["line"]))] = verdict
    passed: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    flags: dict[str, Counter[str]] = defaultdict(Counter)
    missing = []
    for packet, what in sorted(key.items()):
        for index, said in enumerate(what["lines"], 1):
            verdict = verdicts.get((packet, index))
            if verdict is None:
                missing.append(f"{packet} line {index} (reader {what['reader']})")
                continue
            passed[what["model"]][said["tag"] or "-"].append(bool(verdict["pass"]))
            flags[what["model"]].update(f for f in verdict.get("flags", []) if f in FLAGS)
    models = sorted({what["model"] for what in key.values()})
    tags = sorted({t for m in models for t in passed[m]})
    rows: list[list[object]] = []
    for tag in [*tags, "all"]:
        row: list[object] = [tag]
        for model in models:
            got = [ok for t, oks in passed[model].items() if tag in (t, "all") for ok in oks]
            row.append(f"{sum(got)}/{len(got)}")
        rows.append(row)
    rows += [[flag, *(flags[m][flag] for m in models)] for flag in FLAGS]
    return ["tag / flag", *models], rows, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.blind", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="transcripts -> packets for readers")
    packing.add_argument(
        "transcripts", nargs="+", help="NAME=eval.json (npcvoice eval --record) or npc_mind.yaml"
    )
    packing.add_argument("--out", type=Path, required=True)
    packing.add_argument("--readers", type=int, default=4)
    packing.add_argument("--seed", type=int, default=1)
    packing.add_argument(
        "--personas", type=Path, help="the eval scripts' persona folder (default: npc_personas)"
    )
    counting = commands.add_parser("tally", help="the readers' verdicts per model")
    counting.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "tally":
        header, rows, missing = tally(args.out)
        print(table(header, rows))
        if missing:
            print(f"\n{len(missing)} replies not judged: {', '.join(missing[:20])}")
        return 1 if missing else 0
    played: list[Played] = []
    for given in args.transcripts:
        name, _, path = given.rpartition("=")
        if path.endswith((".yaml", ".yml")):
            from npcvoice.training.corpus import CORPUS_DIR

            played += from_npc_mind(yaml.safe_load(Path(path).read_text()), CORPUS_DIR / "personas")
        else:
            if not name:
                parser.error(f"{given}: name the model of an eval transcript, NAME={path}")
            personas = args.personas or Path("npc_personas")
            played += from_eval(name, json.loads(Path(path).read_text()), personas)
    key = pack(played, args.out, args.readers, args.seed)
    print(f"{len(key)} packets for {args.readers} readers in {args.out} (the key: {args.out / 'key.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
