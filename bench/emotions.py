"""How often the reply's emotion is the one a line calls for: each model alone, calibrated by its usual
leaning (the ``emotion_calibration`` aid), leaned by what a small model learned from labelled lines says
the line calls for (the ``emotion_lean`` aid, dialogue/feelings.py: without the calibration the emotion it
calls for most decides), and both (the tuned model's default), in the same run, straight through the
dialogue engine.

    .venv/bin/python -m bench.emotions [--models smollm2-135m,npc-smollm2-135m] [--lines FILE.yaml]

The lines (84 in bench/data/emotion_lines.yaml, 12 per emotion, written apart from the word list the lean
once was; 140 in emotion_lines_2.yaml, 20 per emotion, written from the brief of the lean's own lines,
training/emotions/BRIEF.md, by another hand; 200 in plain_lines.yaml, all neutral, written from the same
brief to count false alarms: a third name loaded things coolly) are never trained on. Each is the first
line of a conversation with Hilda made to declare all seven emotions, so that every label can be shown; a
reply's emotion counts as apt when it is the line's emotion or one of its others. Only the reply's opening
(its tags) is generated."""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO_ROOT, machine, table
from npcvoice.dialogue.aids import ALL_AIDS
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import BUNDLED_MODEL_ID, TUNED_MODEL_ID, DialogueOptions
from npcvoice.dialogue.reply import Emotion
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.personas.schema import KNOWN_EMOTIONS

PERSONA = "blacksmith_hilda"
EMOTION_AIDS = {"emotion_lean", "emotion_calibration"}
VARIANTS = {  # the aids of each run: every other aid on
    "alone": ALL_AIDS - EMOTION_AIDS,
    "calibrated": ALL_AIDS - {"emotion_lean"},
    "leaned": ALL_AIDS - {"emotion_calibration"},
    "leaned and calibrated": ALL_AIDS,
}


def persona_dir(into: Path, model: str) -> Path:
    """Hilda on ``model``, declaring every emotion the face knows (her usual mood, neutral, first)."""
    persona = yaml.safe_load((REPO_ROOT / "npc_personas" / f"{PERSONA}.yaml").read_text())
    persona["emotions"] = list(KNOWN_EMOTIONS)
    persona.setdefault("dialogue", {})["model"] = model
    (into / f"{PERSONA}.yaml").write_text(yaml.safe_dump(persona, sort_keys=False))
    return into


def emotion(engine: DialogueEngine, line: str, index: int) -> str:
    request = TurnRequest(
        persona_id=PERSONA,
        conversation_id=f"emotions-{index}",
        player_text=line,
        sampling=SamplingOverrides(seed=index, max_tokens=8),
    )
    generation = engine.begin(request)
    while not generation.prefill_step():
        pass
    shown = ""
    while not generation.done and not shown:
        shown = next((e.emotion for e in generation.decode_step() if isinstance(e, Emotion)), "")
    generation.close()
    return shown


def apt_for(line: dict[str, Any], shown: str) -> bool:
    return shown == line["emotion"] or shown in (line.get("also") or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=f"{BUNDLED_MODEL_ID},{TUNED_MODEL_ID}")
    parser.add_argument("--lines", type=Path, default=REPO_ROOT / "bench" / "data" / "emotion_lines.yaml")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / ".models")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the model (0: one per core)")
    args = parser.parse_args()
    lines = yaml.safe_load(args.lines.read_text())["lines"]
    shown: dict[str, list[str]] = {}
    for model in args.models.split(","):
        for variant, aids in VARIANTS.items():
            with tempfile.TemporaryDirectory() as directory:
                hilda = persona_dir(Path(directory), model)
                options = DialogueOptions(models_dir=args.models_dir, persona_dir=hilda,
                                          threads=args.threads, aids=sorted(aids))  # fmt: skip
                engine = DialogueEngine(options)
                warm = engine.begin_warm(PERSONA)  # as the service does at start: the calibration measured
                while warm is not None and not warm.step():
                    pass
                shown[f"{model} {variant}"] = [
                    emotion(engine, line["say"], i) for i, line in enumerate(lines)
                ]
    print(f"\n{machine()}; {len(lines)} lines from {args.lines.name}, Hilda declaring all seven emotions\n")
    labels = [line["emotion"] for line in lines]
    rows: list[list[object]] = []
    for name, emotions in shown.items():
        apt = [apt_for(line, shown_emotion) for line, shown_emotion in zip(lines, emotions, strict=True)]
        by_label = Counter(label for label, ok in zip(labels, apt, strict=True) if ok)
        rows.append([name, f"{sum(apt)} of {len(lines)}",
                     *(f"{by_label[e]}/{labels.count(e)}" for e in KNOWN_EMOTIONS),
                     ", ".join(f"{e} {n}" for e, n in Counter(emotions).most_common(3))])  # fmt: skip
    print(table(["", "apt", *KNOWN_EMOTIONS, "most shown"], rows))


if __name__ == "__main__":
    main()
