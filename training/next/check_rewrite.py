"""Check one rewritten part of the corpus against its source (see REWRITE.md).

.venv/bin/python training/next/check_rewrite.py <part>
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from npcvoice.text import clean_for_speech, split_sentences

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "conversations"
TARGET = HERE / "conversations"
MAX_WORDS = 32
KEEP_NUMBERS = True  # a shortening may drop a fact the line did not ask for (--may-drop)
_NUMBER = re.compile(r"\d+")


def without_npc_text(obj: dict) -> dict:
    copy = json.loads(json.dumps(obj))
    for step in copy.get("steps", []):
        if "npc" in step:
            step["npc"] = ""
    return copy


def problems(part: str) -> tuple[list[str], int]:
    source = (SOURCE / f"{part}.jsonl").read_text().splitlines()
    target = (TARGET / f"{part}.jsonl").read_text().splitlines()
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
            found += [f"{where}: {p}" for p in sentence_problems(text)]
            lost = set(_NUMBER.findall(was["npc"])) - set(_NUMBER.findall(text))
            if lost and KEEP_NUMBERS:
                found.append(f"{where}: numbers lost {sorted(lost)}: {text!r}")
            if text.strip() == was["npc"].strip() and len(split_sentences(was["npc"])) > 1:
                found.append(f"{where}: not rewritten")
    return found, replies


def new_part_problems(part: str) -> tuple[list[str], int]:
    found, replies = [], 0
    for number, line in enumerate((TARGET / f"{part}.jsonl").read_text().splitlines(), 1):
        for index, step in enumerate(json.loads(line)["steps"]):
            if "npc" in step:
                replies += 1
                found += [f"{part}:{number}: step {index}: {p}" for p in sentence_problems(step["npc"])]
    return found, replies


def sentence_problems(text: str) -> list[str]:
    found = []
    sentences = split_sentences(clean_for_speech(text))
    if len(sentences) != 1 or not re.search(r"[.!?]$", text.strip()):
        found.append(f"{len(sentences)} sentences, one wanted: {text!r}")
    if "..." in text or "…" in text:
        found.append(f"an ellipsis: {text!r}")
    if len(text.split()) > MAX_WORDS:
        found.append(f"{len(text.split())} words (at most {MAX_WORDS}): {text!r}")
    return found


def main() -> int:
    global SOURCE, TARGET, MAX_WORDS, KEEP_NUMBERS
    parser = argparse.ArgumentParser()
    parser.add_argument("part")
    parser.add_argument("--new", action="store_true", help="a new part: no source to compare with")
    parser.add_argument("--source", type=Path, help="the corpus folder rewritten (default: training)")
    parser.add_argument("--target", type=Path, help="the rewrite's corpus folder (default: training/next)")
    parser.add_argument("--max-words", type=int, default=MAX_WORDS)
    parser.add_argument("--may-drop", action="store_true", help="numbers of the source may go")
    args = parser.parse_args()
    KEEP_NUMBERS = not args.may_drop
    SOURCE = args.source / "conversations" if args.source else SOURCE
    TARGET = args.target / "conversations" if args.target else TARGET
    MAX_WORDS = args.max_words
    found, replies = new_part_problems(args.part) if args.new else problems(args.part)
    for problem in found:
        print(problem)
    print(f"{replies} replies checked, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
