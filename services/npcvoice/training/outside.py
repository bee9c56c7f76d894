"""Builds the out-of-world line model (``npcvoice.dialogue.outside``) from player lines labelled by hand:
the lines of training/outside/*.yaml (written for it) and the corpus's player lines (those its
``injection`` and ``deflect`` replies answer are from outside). The words' scores come from the bundled
GGUF's token embeddings through one learned direction; the word and pair weights are learned beside it.

    .venv/bin/python -m npcvoice.training.outside     # about two minutes on 2 cores; writes outside.json

Deterministic for a seed on one machine. The threshold is set on a development set never trained on (set 1
of bench/data/outside_lines.yaml, written by another hand): none of its in-world lines passes it (a line
of the world refused as strange talk costs more than a strange line answered: the tuned model refuses many
of those itself, and the word lists take most of the rest). Sets 2
and 3 there are only measured (``python -m bench.outside``). Needs the ``convert`` extra (torch, gguf), as
``npcvoice tune`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from npcvoice.dialogue.outside import MODEL_PATH, grams, word_forms
from npcvoice.training.corpus import CORPUS_DIR, read_conversations

# set 1 of the lines bench/outside.py measures, never trained on: where the threshold is set
DEV_LINES = CORPUS_DIR.parent / "bench" / "data" / "outside_lines.yaml"
OUTSIDE_SKILLS = ("injection", "deflect")
_TOKEN_WORD = re.compile(r"^Ġ([A-Za-z][A-Za-z']*)$")


@dataclass(frozen=True)
class Options:
    seed: int = 0
    epochs: int = 25
    batch: int = 128
    learning_rate: float = 0.01
    l2_direction: float = 1e-3
    l2_grams: float = 1e-5
    in_world_rate: float = 0.0  # of the development set's in-world lines passing the threshold: none


def labelled_lines(directory: Path = CORPUS_DIR) -> tuple[list[str], list[str]]:
    """(outside, inside): the distinct lines of ``directory``/outside/*.yaml, then the corpus's player lines
    (``corpus_player_lines``). A line labelled both ways counts as outside."""
    outside: dict[str, None] = {}
    inside: dict[str, None] = {}
    for path in sorted((directory / "outside").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        outside.update(dict.fromkeys(data["outside"]))
        inside.update(dict.fromkeys(data["inside"]))
    corpus_outside, corpus_inside = corpus_player_lines(directory)
    outside.update(dict.fromkeys(corpus_outside))
    inside.update(dict.fromkeys(corpus_inside))
    return list(outside), [line for line in inside if line not in outside]


def corpus_player_lines(directory: Path = CORPUS_DIR) -> tuple[list[str], list[str]]:
    """The corpus's distinct player lines: those an injection or out-of-world reply answers, and the rest."""
    outside: dict[str, None] = {}
    inside: dict[str, None] = {}
    for path in sorted((directory / "conversations").glob("*.jsonl")):
        for located in read_conversations(path):
            for step, answer in itertools.pairwise(located.conversation.steps):
                if step.player is not None and answer.npc is not None:
                    (outside if answer.skill in OUTSIDE_SKILLS else inside)[step.player] = None
    return list(outside), [line for line in inside if line not in outside]


def lines_digest(outside: list[str], inside: list[str]) -> str:
    """What the model was built from, as the shipped file records it."""
    return hashlib.sha256(json.dumps([outside, inside]).encode()).hexdigest()[:16]


def token_words() -> tuple[list[str], np.ndarray]:
    """The words the bundled model has a token for (with its leading space), and their embeddings."""
    import gguf

    from npcvoice.dialogue.model import bundled_gguf

    reader = gguf.GGUFReader(str(bundled_gguf()))
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
    table = next(t for t in reader.tensors if t.name == "token_embd.weight")
    embeddings = gguf.quants.dequantize(table.data, table.tensor_type).astype(np.float32)
    chosen = [(i, m[1]) for i, token in enumerate(tokens) if (m := _TOKEN_WORD.match(token))]
    return [word for _, word in chosen], embeddings[[i for i, _ in chosen]]


class _Data:
    """Lines as the model reads them: their word tokens (padded) and their grams (a bag with weights)."""

    def __init__(self, lines: list[str], words: dict[str, int], gram_ids: dict[str, int]) -> None:
        import torch

        found = [sorted({words[f] for f in word_forms(line) if f in words}) for line in lines]
        width = max(1, *map(len, found)) if found else 1
        self.tokens = torch.tensor([ids + [0] * (width - len(ids)) for ids in found])
        self.mask = torch.tensor([[1.0] * len(ids) + [0.0] * (width - len(ids)) for ids in found])
        said = [grams(line) for line in lines]
        self.bags = [[gram_ids[g] for g in s if g in gram_ids] for s in said]
        self.scale = [1 / np.sqrt(len(s)) if s else 0.0 for s in said]

    def batch(self, rows: list[int]) -> tuple[Any, Any, Any, Any, Any]:
        import torch

        flat = [i for r in rows for i in self.bags[r]]
        offsets = list(itertools.accumulate((len(self.bags[r]) for r in rows[:-1]), initial=0))
        weights = [self.scale[r] for r in rows for _ in self.bags[r]]
        return (
            self.tokens[rows],
            self.mask[rows],
            torch.tensor(flat, dtype=torch.long),
            torch.tensor(offsets, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32),
        )


class LineModel:
    """For each of ``outputs``: bias + max(0, the line's best word's score) + the line's word and pair
    weights / sqrt(n), a word's score its token's embedding times one learned direction an output (the
    emotion model, ``npcvoice.training.emotions``, has one output an emotion; this one, one)."""

    def __init__(self, embeddings: Any, gram_count: int, outputs: int = 1, bias: float = 0.0) -> None:
        import torch

        self.embeddings = embeddings
        self.directions = torch.zeros(embeddings.shape[1], outputs, requires_grad=True)
        self.bias = torch.full((outputs,), bias, requires_grad=True)
        self.grams = torch.nn.EmbeddingBag(max(gram_count, 1), outputs, mode="sum")
        torch.nn.init.zeros_(self.grams.weight)

    def parameters(self) -> list[Any]:
        return [self.directions, self.bias, self.grams.weight]

    def word_scores(self) -> Any:
        return self.embeddings @ self.directions

    def __call__(self, batch: tuple[Any, Any, Any, Any, Any]) -> Any:
        tokens, mask, flat, offsets, weights = batch
        best = (self.word_scores()[tokens] * mask.unsqueeze(2)).clamp(min=0).max(dim=1).values
        said = self.grams(flat, offsets, per_sample_weights=weights)
        return self.bias + best + said


def fit(
    model: LineModel,
    data: _Data,
    loss_of: Callable[[Any, list[int]], Any],
    options: Any,
    l2_directions: float,
) -> None:
    """Adam over ``data``'s lines in seeded batches: ``loss_of(outputs, rows)``, plus L2 on the directions
    and on the word and pair weights (``options``: seed, epochs, batch, learning_rate, l2_grams)."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    order = list(range(len(data.bags)))
    for epoch in range(options.epochs):
        random.Random(options.seed * 1000 + epoch).shuffle(order)
        for start in range(0, len(order), options.batch):
            rows = order[start : start + options.batch]
            loss = loss_of(model(data.batch(rows)), rows)
            loss = loss + l2_directions * model.directions.pow(2).sum()
            loss = loss + options.l2_grams * model.grams.weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def _train(
    outside: list[str], inside: list[str], words: dict[str, int], embeddings: Any, options: Options
) -> tuple[LineModel, dict[str, int]]:
    import torch

    torch.manual_seed(options.seed)
    lines = outside + inside
    gram_ids = {g: i for i, g in enumerate(sorted({g for line in lines for g in grams(line)}))}
    data = _Data(lines, words, gram_ids)
    labels = torch.tensor([1.0] * len(outside) + [0.0] * len(inside))
    weights = torch.tensor([len(inside) / len(outside)] * len(outside) + [1.0] * len(inside))
    model = LineModel(embeddings, len(gram_ids), bias=-2.0)

    def loss_of(outputs: Any, rows: list[int]) -> Any:
        logits = outputs.squeeze(1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[rows], weights[rows])

    fit(model, data, loss_of, options, options.l2_direction)
    return model, gram_ids


def predict(
    model: LineModel, lines: list[str], words: dict[str, int], gram_ids: dict[str, int]
) -> np.ndarray:
    """``model``'s outputs for each of ``lines``: one row a line."""
    import torch

    with torch.no_grad():
        return np.asarray(model(_Data(lines, words, gram_ids).batch(list(range(len(lines))))).numpy())


def build(options: Options, directory: Path = CORPUS_DIR) -> dict[str, Any]:
    """The model's file: its weights, its threshold and how it was built."""
    import torch

    torch.set_num_threads(1)  # the same sums in the same order on every machine of one kind
    outside, inside = labelled_lines(directory)
    names, table = token_words()
    words = {w: i for i, w in enumerate(names)}
    model, gram_ids = _train(outside, inside, words, torch.from_numpy(table), options)
    # the threshold: passed by ``in_world_rate`` of the development set's in-world lines, written by
    # another hand than any line trained on (a writer's own lines are alike: held out of training, they
    # pass less often than a new writer's do)
    dev = yaml.safe_load(DEV_LINES.read_text())
    dev_inside = predict(model, dev["inworld_1"], words, gram_ids)[:, 0]
    dev_outside = predict(model, dev["outside_1"], words, gram_ids)[:, 0]
    threshold = float(np.quantile(dev_inside, 1 - options.in_world_rate)) + 0.001  # past the rounding below
    with torch.no_grad():
        scores = model.word_scores()[:, 0].numpy()
        gram_weights = model.grams.weight[:, 0].numpy()
    digest = lines_digest(outside, inside)
    return {
        "built_by": "python -m npcvoice.training.outside",
        "options": options.__dict__,
        "lines": {"outside": len(outside), "inside": len(inside), "sha256": digest},
        "development_set": {
            "outside_taken": f"{int(np.sum(dev_outside > threshold))} / {len(dev_outside)}",
            "inside_taken": f"{int(np.sum(dev_inside > threshold))} / {len(dev_inside)}",
        },
        "bias": round(float(model.bias.detach()[0]), 4),
        "threshold": round(threshold, 4),
        "words": {w: round(float(s), 3) for w, s in zip(names, scores, strict=True) if s > 0.0005},
        "grams": {
            g: round(float(gram_weights[i]), 3) for g, i in gram_ids.items() if abs(gram_weights[i]) >= 0.0005
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npcvoice.training.outside", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--seed", type=int, default=Options.seed)
    args = parser.parse_args(argv)
    built = build(Options(seed=args.seed))
    args.out.write_text(json.dumps(built, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{args.out}: {len(built['words'])} words, {len(built['grams'])} grams; lines {built['lines']}")
    print(f"development set (set 1 of {DEV_LINES.name}), at {built['threshold']}: {built['development_set']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
