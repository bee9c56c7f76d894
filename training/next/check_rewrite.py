"""Check one rewritten part of the corpus against its source (see REWRITE.md), or a new part's replies
(``--new``: one sentence, at most 32 words; SUPPLEMENT.md).

    .venv/bin/python training/next/check_rewrite.py [--new] <part>
    .venv/bin/python training/next/check_rewrite.py <part> --source training/next --target training/short \\
        --max-words 12 --may-drop     # the short rewrite (training/short/SHORT.md) of the one-sentence one
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

from npcvoice.text import clean_for_speech, split_sentences

HERE = Path(__file__).resolve().parent
_NUMBER = re.compile(r"\d+")


@dataclass
class Rules:
    max_words: int = 32
    keep_numbers: bool = True  # a shortening may drop a fact the line did not ask for (--may-drop)


def without_npc_text(obj: dict) -> dict:
    copy = json.loads(json.dumps(obj))
    for step in copy.get("steps", []):
        if "npc" in step:
            step["npc"] = ""
    return copy


def problems(source_path: Path, target_path: Path, rules: Rules) -> tuple[list[str], int]:
    part = target_path.stem
    source = source_path.read_text().splitlines()
    target = target_path.read_text().splitlines()
    found, replies = [], 0
    if len(source) != len(target):
        found.append(f"{len(target)} lines, the source has {len(source)}")
    for number, (old_line, new_line) in enumerate(zip(source, target, strict=False), 1):
        old, new = json.loads(old_line), json.loads(new_line)
        if without_npc_text(old) != without_npc_text(new):
            found.append(f"{part}:{number}: something other than an npc text changed")
            continue
        for index, (was, now) in enumerate(zip(old["steps"], new["steps"], strict=True)):
            if "npc" not in now:
                continue
            replies += 1
            text, where = now["npc"], f"{part}:{number}: step {index}"
            found += [f"{where}: {p}" for p in sentence_problems(text, rules)]
            lost = set(_NUMBER.findall(was["npc"])) - set(_NUMBER.findall(text))
            if lost and rules.keep_numbers:
                found.append(f"{where}: numbers lost {sorted(lost)}: {text!r}")
            if text.strip() == was["npc"].strip() and len(split_sentences(was["npc"])) > 1:
                found.append(f"{where}: not rewritten")
    return found, replies


def new_part_problems(target_path: Path, rules: Rules) -> tuple[list[str], int]:
    found, replies = [], 0
    for number, line in enumerate(target_path.read_text().splitlines(), 1):
        for index, step in enumerate(json.loads(line)["steps"]):
            if "npc" in step:
                replies += 1
                where = f"{target_path.stem}:{number}: step {index}"
                found += [f"{where}: {p}" for p in sentence_problems(step["npc"], rules)]
    return found, replies


def sentence_problems(text: str, rules: Rules) -> list[str]:
    found = []
    sentences = split_sentences(clean_for_speech(text))
    if len(sentences) != 1 or not re.search(r"[.!?]$", text.strip()):
        found.append(f"{len(sentences)} sentences, one wanted: {text!r}")
    if "..." in text or "…" in text:
        found.append(f"an ellipsis: {text!r}")
    if len(text.split()) > rules.max_words:
        found.append(f"{len(text.split())} words (at most {rules.max_words}): {text!r}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("part")
    parser.add_argument("--new", action="store_true", help="a new part: no source to compare with")
    parser.add_argument("--source", type=Path, default=HERE.parent, help="the corpus folder rewritten")
    parser.add_argument("--target", type=Path, default=HERE, help="the rewrite's corpus folder")
    parser.add_argument("--max-words", type=int, default=Rules.max_words)
    parser.add_argument("--may-drop", action="store_true", help="numbers of the source may go")
    args = parser.parse_args()
    rules = Rules(max_words=args.max_words, keep_numbers=not args.may_drop)
    target = args.target / "conversations" / f"{args.part}.jsonl"
    if args.new:
        found, replies = new_part_problems(target, rules)
    else:
        found, replies = problems(args.source / "conversations" / f"{args.part}.jsonl", target, rules)
    for problem in found:
        print(problem)
    print(f"{replies} replies checked, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
