"""The emotion a player's line calls for, as the learned emotion model (``feelings.EmotionModel``) tells it:
the lean it gives the reply's choice among the emotions a persona declares, a plain line left to the NPC's
usual mood, the shipped model built from the lines in training/emotions/, and how the model's habit is
calibrated out of its own choice. Pure text (the shipped file); the build test trains a small model on a
few lines with the bundled GGUF's token embeddings (torch, gguf: the convert extra every development
install has)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from npcvoice.dialogue.feelings import (
    CALIBRATION,
    EMOTION_MODEL_PATH,
    LEANING,
    EmotionModel,
    calibration,
    called_for,
    clauses,
    emotion_model,
    leaning,
)
from npcvoice.training import emotions as build_emotions

BLACKSMITH = ["neutral", "joy", "anger", "sadness"]
INNKEEPER = ["neutral", "joy", "surprise", "fear"]
PUPPETEER = ["joy", "neutral", "sadness", "anger"]  # cheerful first: her usual mood


# Written for these tests, in none of the model's lines: each calls for its emotion in an NPC hearing it.
CALLING_FOR = {
    "anger": ["You're a crook and a cheat, and everyone in this town knows it.", "You shortchanged my mother, you snake.",
              "Your bread's fit for pigs, and so's your manners.", "I kicked your fence down. What of it?"],
    "joy": ["I brought you a jar of my mother's plum jam, as thanks.", "Your daughter's safe! We found her by the mill.",
            "The council voted: your shop gets the royal charter.", "Best stew I've had in ten years of travelling."],
    "sadness": ["I'm sorry to tell you, the old smith died this morning.", "The flood took your brother's farm. All of it.",
                "Your old dog wandered off in the snow and never came back.", "Nobody came to the widow's burial but me."],
    "fear": ["Run! The dam has burst upstream!", "Soldiers are searching every house for you.",
             "Fire! The granary is burning and the wind is blowing this way!", "Something's been taking sheep, and now a child."],
    "disgust": ["There are maggots crawling all through this bread.", "He sold his own children to the slavers.",
                "The cellar's full of rotting fish heads.", "Somebody emptied a chamber pot into your well."],
    "surprise": ["The old king isn't dead. He rode into town this morning.", "Your twin sister? I never knew you had one!",
                 "The river's running backwards since dawn.", "That beggar by the gate turned out to be the duke."],
    "neutral": ["How much for a room?", "Which road leads to the capital?", "Two loaves, please.",
                "Do you know where the miller lives?"],
}  # fmt: skip


def test_lines_written_for_this_test_lean_to_the_emotion_they_call_for():
    declared = ["neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust"]
    apt = 0
    for emotion, lines in CALLING_FOR.items():
        leaned = [called_for(line, declared) for line in lines]
        assert leaned.count(emotion) >= 2, (emotion, leaned)  # none of the seven lost
        apt += leaned.count(emotion)
    assert apt >= 21, apt  # three in four at least: the model is small (24 of 28 when written)


def test_only_an_emotion_the_persona_declares_is_leaned_to():
    line = "I'm sorry to tell you, the old smith died this morning."
    assert set(leaning(line, INNKEEPER)) == set(INNKEEPER)
    assert called_for(line, INNKEEPER) != "sadness"  # not declared: not shown
    assert called_for(line, []) is None


def test_a_plain_line_leaves_the_npc_in_its_usual_mood():
    for line in ["How much for a room?", "Which road leads to the capital?", "Two loaves, please."]:
        assert called_for(line, BLACKSMITH) == "neutral", line
        assert called_for(line, PUPPETEER) == "joy", line  # a cheerful NPC stays cheerful
        bonuses = leaning(line, PUPPETEER)
        assert bonuses["neutral"] <= bonuses["joy"], line


def test_a_line_of_no_words_leans_to_the_usual_mood():
    for line in ["", "...", "?!", "12"]:
        assert called_for(line, PUPPETEER) == "joy", line


# Written for this test, in none of the model's lines: a feeling carried inside a line shaped like business.
INSIDE = {
    "anger": ["Can you sharpen this axe by noon, you drunken lump of a smith?",
              "How much for the ale, or do you water it down for everyone, you cheat?"],
    "sadness": ["Is the chapel still open tonight? My mother passed away at dawn.",
                "Do you sell small coffins? Our baby did not wake this morning."],
    "joy": ["Which way to the mill? Here, I baked you a loaf of honey bread for your kindness.",
            "Two ales, please! My wife gave birth to a healthy boy last night!"],
    "fear": ["Where do we hide? There are raiders coming over the hill with torches."],
    "disgust": ["What is in this stew? There is a dead mouse floating in it."],
}  # fmt: skip


def test_a_feeling_inside_a_plain_question_or_request_is_read():
    declared = ["neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust"]
    leaned = {emotion: [called_for(line, declared) for line in lines] for emotion, lines in INSIDE.items()}
    assert sum(found.count(emotion) for emotion, found in leaned.items()) >= 6, leaned  # 7 of 8 when written
    # a business line that only names a loaded thing stays plain
    assert called_for("How much for the black wool, the kind the mourners wear?", BLACKSMITH) == "neutral"


def test_a_line_is_read_whole_and_by_its_clauses():
    assert clauses("How much for the rope?") == []  # one clause: the line alone
    # clauses shorter than three words are read only with the line
    assert clauses("Well, old man, where is the mill?") == ["where is the mill?"]
    model = emotion_model()
    line = "Sell me the rope, then. You thieving old leech."
    whole = model.probabilities(line)
    readings = [whole, *map(model.probabilities, clauses(line))]
    read = model.reading(line)
    assert sum(read.values()) == pytest.approx(1.0)
    # each emotion as likely as in its likeliest reading, neutral between the line's and its least likely
    # clause's (renormalised: the ratios are what was merged)
    joy = max(r["joy"] for r in readings)
    assert read["anger"] / read["joy"] == pytest.approx(max(r["anger"] for r in readings) / joy)
    neutral = math.sqrt(whole["neutral"] * min(r["neutral"] for r in readings))
    assert read["neutral"] / read["joy"] == pytest.approx(neutral / joy)


def test_the_lean_is_the_models_log_probabilities():
    line = "You're a crook and a cheat, and everyone in this town knows it."
    p = emotion_model().reading(line)
    assert sum(p.values()) == pytest.approx(1.0)
    bonuses = leaning(line, BLACKSMITH)
    assert bonuses["anger"] - bonuses["joy"] == pytest.approx(
        LEANING * (math.log(p["anger"]) - math.log(p["joy"]))
    )


def test_the_shipped_model_was_built_from_the_lines_in_training():
    built = json.loads(EMOTION_MODEL_PATH.read_text())
    lines = build_emotions.labelled_lines()
    assert built["lines"]["sha256"] == build_emotions.lines_digest(lines), (
        "training/emotions/ changed: rebuild with python -m npcvoice.training.emotions"
    )


def test_the_build_is_the_same_for_the_same_lines_and_seed(tmp_path: Path):
    lines: list[dict[str, Any]] = [{"say": "Thank you, friend, that was kind.", "emotion": "joy"},
             {"say": "You cheating swine.", "emotion": "anger"},
             {"say": "Where is the mill?", "emotion": "neutral"},
             {"say": "My dog died last night.", "emotion": "sadness", "also": ["neutral"]}]  # fmt: skip
    (tmp_path / "lines.yaml").write_text(yaml.safe_dump({"lines": lines}))
    options = build_emotions.Options(epochs=5)
    first = build_emotions.build(options, tmp_path)
    assert build_emotions.build(options, tmp_path) == first
    model = EmotionModel(first["emotions"], first["bias"], first["words"], first["grams"])
    # what it learned: each line's emotion first
    for line in lines:
        p = model.probabilities(str(line["say"]))
        assert max(p, key=p.__getitem__) == line["emotion"], line


def test_the_calibration_takes_the_models_habit_out_but_leaves_the_npc_its_usual_mood():
    # After content-free lines the model gave joy 90 %, neutral 5 %, anger under 1 %.
    choices = {11: "joy", 12: "neutral", 13: "anger"}
    log_probs = [{11: math.log(0.9), 12: math.log(0.05), 13: math.log(0.005)}]
    cheerful = calibration(log_probs, choices, usual="joy")
    assert cheerful[13] > cheerful[11]  # what it hardly ever says gets the most back
    assert cheerful[12] == cheerful[11]  # neutral is no emotion a line calls for: not over her joy
    # An NPC whose usual mood is neutral: neutral is calibrated like the rest.
    plain = calibration(log_probs, choices, usual="neutral")
    assert plain[11] < plain[12] < plain[13]
    assert plain[12] - plain[11] == pytest.approx(CALIBRATION * (math.log(0.9) - math.log(0.05)))
