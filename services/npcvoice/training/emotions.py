"""Builds the emotion line model (``npcvoice.dialogue.feelings.EmotionModel``) from player lines labelled by
hand with the emotion an NPC would show in reply (training/emotions/*.yaml, written for it from
training/emotions/BRIEF.md). As the out-of-world model (``npcvoice.training.outside``), each word is scored
through the bundled GGUF's token embeddings (here one learned direction per emotion: a word nobody labelled
is placed by the words it lies beside), and the line's words and word pairs get weights learned beside them:

    logit(emotion) = bias + max(0, the best word's score) + sum(the line's word and pair weights) / sqrt(n)

    .venv/bin/python -m npcvoice.training.emotions          # 2 min on 2 cores; writes emotions.json
    .venv/bin/python -m npcvoice.training.emotions --folds F  # each file's lines, predicted with it held out

Deterministic for a seed on one machine. Never trained on: the emotion bench's lines
(bench/data/emotion_lines.yaml, emotion_lines_2.yaml), where it is measured (``python -m bench.emotions``).
Needs the ``convert`` extra (torch, gguf), as ``npcvoice tune`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from npcvoice.dialogue.feelings import EMOTION_MODEL_PATH
from npcvoice.dialogue.outside import grams
from npcvoice.personas.schema import KNOWN_EMOTIONS
from npcvoice.training.corpus import CORPUS_DIR
from npcvoice.training.outside import LineModel, _Data, fit, predict, token_words

LINES_DIR = CORPUS_DIR / "emotions"
ALSO_SHARE = 0.25  # of a line's target given to the emotions also apt for it


@dataclass(frozen=True)
class Options:
    seed: int = 0
    epochs: int = 40
    batch: int = 64
    learning_rate: float = 0.01
    l2_directions: float = 1e-2
    l2_grams: float = 1e-5
    # neutral's weight in the loss against each other emotion's: most lines of a conversation call for none
    # (session 33, on the first five files: 2 gave 958 of their held-out parts apt and another emotion than
    # neutral on 29 of 300 plain lines of the corpus, 1 gave 974 and 48, 4 gave 919 and 16; the word list 635
    # and 92. Session 34, with said.yaml and mixed.yaml, each line read by clause too and the lean at 2: 3
    # gave 70 of 84 and 106 of 140 apt on the emotion bench and 31 false alarms of 300; 2 gave 73, 105, 45)
    neutral_weight: float = 3.0


@dataclass(frozen=True)
class Line:
    say: str
    emotion: str
    also: tuple[str, ...] = ()
    part: str = ""

    def target(self) -> list[float]:
        """The line's emotion, with a share for those also apt."""
        target = [0.0] * len(KNOWN_EMOTIONS)
        others = [e for e in self.also if e != self.emotion]
        target[KNOWN_EMOTIONS.index(self.emotion)] = 1.0 - (ALSO_SHARE if others else 0.0)
        for emotion in others:
            target[KNOWN_EMOTIONS.index(emotion)] += ALSO_SHARE / len(others)
        return target


def read_lines(path: Path) -> list[Line]:
    """The lines of one file, in the emotion bench's shape (``say``, ``emotion``, ``also``)."""
    lines = []
    for entry in yaml.safe_load(path.read_text())["lines"]:
        also = tuple(entry.get("also") or ())
        for emotion in (entry["emotion"], *also):
            if emotion not in KNOWN_EMOTIONS:
                raise ValueError(f"{path.name}: {entry['say']!r}: unknown emotion {emotion!r}")
        lines.append(Line(entry["say"], entry["emotion"], also, path.stem))
    return lines


def labelled_lines(directory: Path = LINES_DIR) -> list[Line]:
    """Every line of ``directory``/*.yaml, the first of each text kept."""
    seen: dict[str, Line] = {}
    for path in sorted(directory.glob("*.yaml")):
        for line in read_lines(path):
            seen.setdefault(line.say, line)
    return list(seen.values())


def lines_digest(lines: list[Line]) -> str:
    """What the model was built from, as the shipped file records it."""
    return hashlib.sha256(json.dumps([[x.say, x.emotion, list(x.also)] for x in lines]).encode()).hexdigest()[
        :16
    ]


def _train(
    lines: list[Line], words: dict[str, int], embeddings: Any, options: Options
) -> tuple[LineModel, dict[str, int]]:
    import torch

    torch.manual_seed(options.seed)
    gram_ids = {g: i for i, g in enumerate(sorted({g for line in lines for g in grams(line.say)}))}
    data = _Data([line.say for line in lines], words, gram_ids)
    targets = torch.tensor([line.target() for line in lines])
    # each emotion weighs alike, however many lines call for it
    counts = targets.sum(dim=0).clamp(min=1.0)
    class_weights = counts.sum() / (len(KNOWN_EMOTIONS) * counts)
    class_weights[KNOWN_EMOTIONS.index("neutral")] *= options.neutral_weight
    model = LineModel(embeddings, len(gram_ids), outputs=len(KNOWN_EMOTIONS))

    def loss_of(outputs: Any, rows: list[int]) -> Any:
        log_probs = torch.log_softmax(outputs, dim=1)
        return -(targets[rows] * class_weights * log_probs).sum() / len(rows)

    fit(model, data, loss_of, options, options.l2_directions)
    return model, gram_ids


def _probabilities(
    model: LineModel, lines: list[str], words: dict[str, int], gram_ids: dict[str, int]
) -> np.ndarray:
    logits = predict(model, lines, words, gram_ids)
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(exps / exps.sum(axis=1, keepdims=True))


def _setup() -> tuple[dict[str, int], list[str], Any]:
    import torch

    torch.set_num_threads(1)  # the same sums in the same order on every machine of one kind
    names, table = token_words()
    return {w: i for i, w in enumerate(names)}, names, torch.from_numpy(table)


def folds(options: Options, directory: Path = LINES_DIR) -> dict[str, dict[str, float]]:
    """Each file's lines as predicted by a model trained on the other files: {line: {emotion: p}}."""
    words, _, embeddings = _setup()
    lines = labelled_lines(directory)
    predicted: dict[str, dict[str, float]] = {}
    for part in sorted({line.part for line in lines}):
        model, gram_ids = _train([x for x in lines if x.part != part], words, embeddings, options)
        held = [x.say for x in lines if x.part == part]
        for say, p in zip(held, _probabilities(model, held, words, gram_ids), strict=True):
            predicted[say] = {e: float(v) for e, v in zip(KNOWN_EMOTIONS, p, strict=True)}
    return predicted


def build(options: Options, directory: Path = LINES_DIR) -> dict[str, Any]:
    """The model's file: its weights and how it was built."""
    words, names, embeddings = _setup()
    lines = labelled_lines(directory)
    model, gram_ids = _train(lines, words, embeddings, options)
    with torch_no_grad():
        scores = model.word_scores().numpy()
        gram_weights = model.grams.weight.numpy()
        bias = model.bias.numpy()
    return {
        "built_by": "python -m npcvoice.training.emotions",
        "options": options.__dict__,
        "lines": {"count": len(lines), "sha256": lines_digest(lines)},
        "emotions": list(KNOWN_EMOTIONS),
        "bias": [round(float(b), 4) for b in bias],
        # a word's scores, those below 0 as 0 (the best word's is clamped at 0), kept where one counts
        "words": {
            w: [_short(max(float(s), 0.0), 2) for s in row]
            for w, row in zip(names, scores, strict=True)
            if row.max() >= 0.005
        },
        "grams": {
            g: [_short(float(s), 3) for s in gram_weights[i]]
            for g, i in gram_ids.items()
            if np.abs(gram_weights[i]).max() >= 0.0005
        },
    }


def _short(value: float, digits: int) -> float | int:
    """``value`` rounded, a whole number written as one (the file is smaller)."""
    rounded = round(value, digits)
    return int(rounded) if rounded == int(rounded) else rounded


def torch_no_grad() -> Any:
    import torch

    return torch.no_grad()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npcvoice.training.emotions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=EMOTION_MODEL_PATH)
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--folds", type=Path, help="write each part's lines as predicted with it held out")
    args = parser.parse_args(argv)
    if args.folds:
        args.folds.write_text(json.dumps(folds(Options(seed=args.seed)), indent=1) + "\n")
        return 0
    built = build(Options(seed=args.seed))
    args.out.write_text(json.dumps(built, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{args.out}: {len(built['words'])} words, {len(built['grams'])} grams; lines {built['lines']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
