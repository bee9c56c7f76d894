"""The emotion a player's line calls for, from its words (pure logic: no model): the same line leans each
persona to the emotion it declares, a negated cue counts for nothing, and a line with no cue leaves the
choice to the model; and how the model's habit is calibrated out of its own choice."""

from __future__ import annotations

import math

import pytest

from npcvoice.dialogue.feelings import CALIBRATION, calibration, called_for, cue_counts

BLACKSMITH = ["neutral", "joy", "anger", "sadness"]
INNKEEPER = ["neutral", "joy", "surprise", "fear"]


def test_each_persona_leans_to_the_emotion_it_declares():
    line = "Bandits are attacking the village and they will kill us all!"
    assert called_for(line, BLACKSMITH) == "anger"
    assert called_for(line, INNKEEPER) == "fear"
    assert called_for("You stinking, filthy rat.", ["neutral", "disgust", "anger"]) == "disgust"


def test_a_line_without_a_cue_leaves_the_choice_to_the_model():
    for line in ["How much for a room?", "Can you repair my sword?", "Which road leads to the capital?"]:
        assert called_for(line, [*BLACKSMITH, *INNKEEPER[2:]]) is None, line
    assert called_for("My brother was killed.", ["neutral", "joy"]) is None  # sadness not declared


def test_a_negated_cue_counts_for_nothing():
    assert cue_counts("Don't be afraid, nothing dangerous here.") == {}
    assert called_for("I am not angry, and you are no fool.", BLACKSMITH) is None
    assert called_for("Not now. You fool!", BLACKSMITH) == "anger"  # the negation reaches two words


def test_an_apology_calls_for_no_anger():
    for line in ["Sorry, that was rude. Aren't you the ringmaster?", "Forgive me, I was a fool to say it."]:
        assert called_for(line, BLACKSMITH) is None, line
    assert called_for("I'm sorry to tell you, the old smith died this morning.", BLACKSMITH) == "sadness"
    assert called_for("That was rude, you fool.", BLACKSMITH) == "anger"


def test_a_word_listed_whole_is_taken_as_listed_before_a_stem():
    assert cue_counts("He was killed.") == {"sadness": 1}  # not "kill*" (anger, fear)
    assert called_for("I will kill you.", BLACKSMITH) == "anger"
    assert called_for("Thank you, and thanks again: I am grateful.", BLACKSMITH) == "joy"
    assert cue_counts("THANKFULLY") == {"joy": 1}  # any case, any ending of a stem


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
