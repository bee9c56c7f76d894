"""What the player's line would make a person feel: the lean for the reply's emotion tag.

The reply's ``[emotion: X]`` is the model's choice among the persona's emotions, but a 135M model all but
always takes the first of them (measured on the shipped scripts: 36 of 36 replies neutral, insults
included), so the face never moves. A small model learned from player lines labelled by hand with the
emotion an NPC shows in reply (``EmotionModel``, training/emotions/) gives each emotion a probability for
the line, each clause read as well (an insult tacked onto a question counts), and the reply's choice leans
by it among those the persona declares (an emotion the persona does not declare is not shown, whatever the
line). A line that calls for nothing leans to the NPC's usual mood, the first emotion it declares, not to
neutral (the model would copy the last reply's emotion from the history: one insult, and every later reply
angry).

It replaced a word list (cue words for each emotion, negations, apologies): on 140 lines written apart
from both (bench/data/emotion_lines_2.yaml), the tuned model leaned by the list showed an apt emotion on
56, leaned by the learned model on 105 (docs/conversation-quality.md, session 33).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from npcvoice.dialogue.outside import grams, word_forms

# Without the calibration (the bundled model), added to the logit of the emotion the line calls for most.
# The bundled model puts the persona's first emotion 1 to 8 logits above the others (measured at the choice
# on the shipped personas): 12 outweighs that habit, not a model sure of another emotion by more.
LEAN = 12.0
# With the calibration (the tuned model), each declared emotion's logit gets LEANING x the log-probability
# the emotion model gives it (``EmotionModel.reading``). Chosen with the tuned model's choices captured once
# (Hilda declaring all seven) and replayed, on lines never trained on: the emotion bench's 84 and 140
# (bench/data/), the unseen NPCs' 12 emotion lines, and 300 plain player lines of the corpus (whose replies
# its writers marked neutral: another emotion there is a false alarm): 1.5 gave 71, 102, 10 apt and 32 false
# alarms, 2 gave 70, 106, 10 and 31, 3 gave 70, 106, 7 and 38 (docs/conversation-quality.md, session 34).
LEANING = 2.0
# Player lines that call for no emotion: the model's choice after them, on a persona's fixed prompt, is its
# usual leaning among that persona's emotions (the tuned model gives neutral 71 % after them, and shows it
# for 52 of 84 lines written to call for each emotion in turn). The reply's choice is calibrated by it
# ("Calibrate Before Use", Zhao et al. 2021): each emotion's log-probability there, times CALIBRATION, is
# taken off its logit. Measured on those 84 lines (bench/emotions.py, docs/conversation-quality.md), the
# tuned model alone 33 apt, calibrated by half its prior 55, by all of it 45 (every line afraid); with the
# word list's lean where the line had a cue word: 57; with the learned lean (``leaning``): see LEANING.
CONTENT_FREE = ("N/A", "...", "Hm.", "Yes.", "I see.")
CALIBRATION = 0.5


def calibration(log_probs: list[dict[int, float]], choices: dict[int, str], usual: str) -> dict[int, float]:
    """The bonuses for the emotion's first tokens (``choices``: each token's emotion), from each
    content-free line's log-probabilities of them (restricted to them). Neutral is no emotion a line calls
    for: where the NPC's ``usual`` mood is another (a cheerful puppeteer's joy), neutral gets no more than
    it, or the calibration would take the writer's mood away with the model's habit."""
    bonuses = {t: -CALIBRATION * sum(p[t] for p in log_probs) / len(log_probs) for t in choices}
    by_emotion = {emotion: t for t, emotion in choices.items()}
    neutral, mood = by_emotion.get("neutral"), by_emotion.get(usual)
    if neutral is not None and mood is not None and neutral != mood:
        bonuses[neutral] = min(bonuses[neutral], bonuses[mood])
    return bonuses


EMOTION_MODEL_PATH = Path(__file__).with_name("emotions.json")
# Where a line breaks into clauses: after a comma, stop, colon, question or exclamation mark, or at a dash.
_CLAUSE_BREAK = re.compile(r"(?<=[,.;:!?])\s+|\s+(?:-{1,2}|\u2013|\u2014)\s+")
MIN_CLAUSE_WORDS = 3  # a shorter clause ("Well,", "Here, old man,") is read only as part of its line


def clauses(line: str) -> list[str]:
    """``line``'s clauses of MIN_CLAUSE_WORDS or more, where it has more than one."""
    parts = [part for part in _CLAUSE_BREAK.split(line) if part.strip()]
    return [part for part in parts if len(part.split()) >= MIN_CLAUSE_WORDS] if len(parts) > 1 else []


@dataclass(frozen=True)
class EmotionModel:
    """What emotion a line calls for, as a small model learned from lines labelled by hand tells it
    (``npcvoice.training.emotions``): each word scored per emotion through where its token's embedding
    lies, and the line's words and word pairs weighed, as the out-of-world model does (``outside``)."""

    emotions: Sequence[str]
    bias: Sequence[float]
    words: Mapping[str, Sequence[float]]  # a token's word -> its score for each emotion
    grams: Mapping[str, Sequence[float]]  # a word or word pair -> its weight for each emotion

    def probabilities(self, line: str) -> dict[str, float]:
        logits = list(self.bias)
        forms = [self.words[f] for f in word_forms(line) if f in self.words]
        line_grams = grams(line)
        said = [self.grams[g] for g in line_grams if g in self.grams]
        scale = 1 / math.sqrt(len(line_grams) or 1)
        for k in range(len(logits)):
            best = max((row[k] for row in forms), default=0.0)
            logits[k] += max(best, 0.0) + sum(row[k] for row in said) * scale
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        total = sum(exps)
        return {e: x / total for e, x in zip(self.emotions, exps, strict=True)}

    def reading(self, line: str) -> dict[str, float]:
        """What ``line`` calls for, each of its clauses read as well: every emotion as likely as in the line
        or its likeliest clause, neutral the geometric mean of the line's and its least likely clause's
        (renormalised). Read whole, a line shaped like business reads plain whatever it carries ("Do you
        remember my name, you stupid fool?", "Is the chapel open? My wife passed in the night."): on 260
        such lines never trained on (training/emotions/mixed.yaml, the model built without them, the tuned
        model's choices replayed), 126 apt read whole, 147 read by clause; at a cost of 8 more false
        alarms of 200 plain lines, 9 to 17 (bench/data/plain_lines.yaml; docs/conversation-quality.md,
        session 34)."""
        whole = self.probabilities(line)
        readings = [whole, *map(self.probabilities, clauses(line))]
        merged = {e: max(r[e] for r in readings) for e in self.emotions}
        if "neutral" in merged:
            merged["neutral"] = math.sqrt(whole["neutral"] * min(r["neutral"] for r in readings))
        total = sum(merged.values())
        return {e: p / total for e, p in merged.items()}

    @classmethod
    def read(cls, path: Path = EMOTION_MODEL_PATH) -> EmotionModel:
        data = json.loads(path.read_text())
        return cls(data["emotions"], data["bias"], data["words"], data["grams"])


@cache
def emotion_model() -> EmotionModel:
    """The model built into ``emotions.json``, read once."""
    return EmotionModel.read()


def leaning(text: str, declared: Sequence[str]) -> dict[str, float]:
    """Bonuses for the logits of ``declared`` emotions where the reply's is chosen: LEANING x the
    log-probability the emotion model gives each for ``text`` (``EmotionModel.reading``). Neutral is no
    emotion a line calls for: where the NPC's usual mood (declared first) is another, a plain line calls for
    that mood, and neutral gets no more than the mood had (a cheerful puppeteer stays cheerful on a plain
    line)."""
    probabilities = emotion_model().reading(text)
    bonuses = {e: LEANING * math.log(max(probabilities.get(e, 0.0), 1e-6)) for e in declared}
    usual = declared[0] if declared else None
    if "neutral" in bonuses and usual is not None and usual != "neutral":
        plain, mood = bonuses["neutral"], bonuses[usual]
        bonuses[usual], bonuses["neutral"] = max(plain, mood), min(plain, mood)
    return bonuses


def called_for(text: str, declared: Sequence[str]) -> str | None:
    """The declared emotion ``text`` calls for most (a plain line: the NPC's usual mood); None when the
    persona declares none."""
    bonuses = leaning(text, declared)
    return max(bonuses, key=lambda e: (bonuses[e], e == declared[0])) if bonuses else None
