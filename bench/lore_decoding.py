"""Whether another way of decoding makes the tuned model answer lore questions better: greedy against
context-aware decoding and beam search, on the tuned weights in transformers (a research bench, not the
served engine: no aids, no guards), read blind.

    .venv/bin/python -m bench.lore_decoding run --out /tmp/lore.json [--every 3] [--cad 0.5,1.0] [--beams 4]
    .venv/bin/python -m bench.lore_decoding pack /tmp/lore.json --out /tmp/read   # items.md for readers
    .venv/bin/python -m bench.lore_decoding tally /tmp/read                      # verdicts-*.jsonl

The questions are bench/data/lore_questions.yaml's (written apart from the scripts, each NPC's entries in
everyday words), each the first line of a conversation, with the served prompt (`build_messages`,
compact) and the emotion tag the lean would give. Each reply is the first sentence.

- greedy: the likeliest token each step (what the engine does, before its aids);
- context-aware decoding (Shi et al. 2023, "Trusting Your Evidence"): each step's logits are (1 + a)
  times the prompt's minus a times those of the same prompt without its "You know:" lore line, to make
  the model lean on what the prompt tells it rather than its habits;
- beam search (transformers' ``generate``, stopped at the sentence's end).

Needs the convert extra (torch, transformers, peft: what ``npcvoice tune`` needs). ``pack`` writes the
replies that differ, shuffled and unnamed, with a brief; a reader (a person or a
helper model) writes ``verdicts-K.jsonl`` (one {"item": n, "X": true, "Y": false} a line); ``tally``
counts each way's passes.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO_ROOT, machine, table
from npcvoice.dialogue.feelings import called_for
from npcvoice.dialogue.prompt import MemoryView, build_messages
from npcvoice.personas.loader import load_persona
from npcvoice.personas.schema import Persona

QUESTIONS = REPO_ROOT / "bench" / "data" / "lore_questions.yaml"
PERSONA_DIRS = (REPO_ROOT / "bench" / "unseen" / "personas", REPO_ROOT / "npc_personas")
_SENTENCE_END = re.compile(r"[.!?][\"']?\s*$")
_LETTERS = "XYZWVU"
BRIEF = """# Judging NPC replies to questions about the NPC's lore

Each item below is the first line a player says to a game NPC, a question, and replies written by
different systems (in no particular order). Open the persona file named (its `lore` entries are what the
NPC knows). For each reply decide whether it PASSES, strictly, as a player who knows the lore: it passes
only if it answers the question with the right fact from the lore, as sensible English; a reply that is
garbled, repeats itself, answers a different question, gives a wrong fact, or only names the topic without
answering fails, even if it contains a right word. A reply with the right answer plus a small harmless
addition passes; a wrong or garbled addition fails it.

Write one JSON object per line to your verdict file, for every item: {"item": 1, "X": true, "Y": false,
"note": "a few words"} (a key for every reply of the item).
"""


def questions(every: int) -> list[tuple[str, str]]:
    data = yaml.safe_load(QUESTIONS.read_text())
    asked = [
        (npc["persona"], q["say"]) for part in ("a", "b") for npc in data[part] for q in npc["questions"]
    ]
    return asked[::every]


def persona_file(persona_id: str) -> Path:
    return next(d / f"{persona_id}.yaml" for d in PERSONA_DIRS if (d / f"{persona_id}.yaml").exists())


def prompts(persona: Persona, line: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The served prompt for ``line`` opening a conversation, and the same without its lore."""
    messages = build_messages(persona, MemoryView(), line, lambda _: 0, 10**6, style="compact")
    last = messages[-1]["content"].split("\n")
    bare = "\n".join(part for part in last if not part.startswith("You know:"))
    return messages, [*messages[:-1], {"role": "user", "content": bare}]


class Tuned:
    """The tuned model in fp32: the bundled GGUF with the shipped adapter merged."""

    def __init__(self) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoTokenizer

        from npcvoice.dialogue.model import bundled_gguf
        from npcvoice.training.tune import base_model

        gguf = bundled_gguf()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        adapter = REPO_ROOT / "training" / "adapter"
        self.model = PeftModel.from_pretrained(base_model(), adapter).merge_and_unload().eval()
        self.ends = {self.tokenizer.convert_tokens_to_ids("<|im_end|>"), self.tokenizer.eos_token_id}

    def ids(self, messages: list[dict[str, str]], emotion: str) -> list[int]:
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
        return list(prompt) + self.tokenizer.encode(f"[emotion: {emotion}]", add_special_tokens=False)

    def _run(self, ids: list[int], past: Any = None) -> tuple[Any, Any]:
        with self.torch.no_grad():
            out = self.model(self.torch.tensor([ids]), past_key_values=past, use_cache=True)
        return out.logits[0, -1], out.past_key_values

    def contrasted(self, ids: list[int], bare: list[int], alphas: list[float], limit: int = 48) -> list[str]:
        """The first sentence greedily, for each ``alpha`` (0: plain greedy)."""
        first, first_past = self._run(ids)
        bare_first, bare_past = self._run(bare)
        replies = []
        for alpha in alphas:
            logits, past = first, copy.deepcopy(first_past)
            bare_logits, bare_cache = bare_first, copy.deepcopy(bare_past)
            written: list[int] = []
            for _ in range(limit):
                mixed = logits if alpha == 0 else (1 + alpha) * logits - alpha * bare_logits
                token = int(self.torch.argmax(mixed))
                if token in self.ends:
                    break
                written.append(token)
                text = str(self.tokenizer.decode(written))
                if len(written) > 2 and len(text.strip()) > 3 and _SENTENCE_END.search(text):
                    break
                logits, past = self._run([token], past)
                if alpha:
                    bare_logits, bare_cache = self._run([token], bare_cache)
            replies.append(str(self.tokenizer.decode(written)).strip())
        return replies

    def beam(self, ids: list[int], beams: int, limit: int = 40) -> str:
        with self.torch.no_grad():
            out = self.model.generate(self.torch.tensor([ids]), max_new_tokens=limit, num_beams=beams,
                                      do_sample=False, stop_strings=[".", "!", "?"], tokenizer=self.tokenizer,
                                      early_stopping=True)  # fmt: skip
        text = str(self.tokenizer.decode(out[0][len(ids) :], skip_special_tokens=True)).strip()
        sentence = re.match(r"(.*?[.!?])", text)
        return sentence.group(1) if sentence else text


def run(out: Path, every: int, alphas: list[float], beams: int) -> None:
    model = Tuned()
    rows = []
    for persona_id, line in questions(every):
        persona = load_persona(persona_file(persona_id))
        emotion = called_for(line, persona.emotions) or persona.emotions[0]
        messages, bare = prompts(persona, line)
        ids = model.ids(messages, emotion)
        replies = model.contrasted(ids, model.ids(bare, emotion), [0.0, *alphas])
        row = {"persona": persona_id, "say": line, "greedy": replies[0]}
        row |= {f"cad {a}": reply for a, reply in zip(alphas, replies[1:], strict=True)}
        if beams > 1:
            row[f"beam {beams}"] = model.beam(ids, beams)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=1))


def pack(replies: Path, out: Path, seed: int) -> None:
    rows = json.loads(replies.read_text())
    ways = [k for k in rows[0] if k not in ("persona", "say")]
    rng = random.Random(seed)
    items: list[str] = []
    key: dict[int, dict[str, str]] = {}
    for row in rows:
        said = [(way, row[way]) for way in ways]
        if len({text for _, text in said}) == 1:
            continue
        rng.shuffle(said)
        n = len(items) + 1
        lines = "".join(f'- Reply {_LETTERS[i]}: "{text}"\n' for i, (_, text) in enumerate(said))
        items.append(f"## Item {n}\nPersona file: {persona_file(row['persona'])}\n"
                     f"The player's first line to the NPC: \"{row['say']}\"\n{lines}")  # fmt: skip
        key[n] = {_LETTERS[i]: way for i, (way, _) in enumerate(said)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "items.md").write_text(BRIEF + "\n" + "\n".join(items))
    (out / "key.json").write_text(json.dumps(key))
    print(f"{len(items)} items (of {len(rows)} questions) in {out / 'items.md'}; the key: {out / 'key.json'}")


def tally(directory: Path) -> None:
    key = json.loads((directory / "key.json").read_text())
    rows: list[list[object]] = []
    ways = sorted({way for item in key.values() for way in item.values()})
    for verdicts in sorted(directory.glob("verdicts-*.jsonl")):
        passed: Counter[str] = Counter()
        for line in verdicts.read_text().splitlines():
            verdict = json.loads(line)
            for letter, way in key[str(verdict["item"])].items():
                passed[way] += bool(verdict.get(letter))
        rows.append([verdicts.stem, *(f"{passed[way]} / {len(key)}" for way in ways)])
    print(f"\n{machine()}\n")
    print(table(["reader", *ways], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runs = sub.add_parser("run")
    runs.add_argument("--out", type=Path, required=True)
    runs.add_argument("--every", type=int, default=3, help="every Nth question (3: 119 of 357)")
    runs.add_argument("--cad", default="0.5,1.0", help="context-aware decoding's weights")
    runs.add_argument("--beams", type=int, default=4)
    packs = sub.add_parser("pack")
    packs.add_argument("replies", type=Path)
    packs.add_argument("--out", type=Path, required=True)
    packs.add_argument("--seed", type=int, default=303)
    tallies = sub.add_parser("tally")
    tallies.add_argument("directory", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.every, [float(a) for a in args.cad.split(",") if a], args.beams)
    elif args.command == "pack":
        pack(args.replies, args.out, args.seed)
    else:
        tally(args.directory)


if __name__ == "__main__":
    main()
