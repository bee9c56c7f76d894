"""The learned out-of-world line model (``npcvoice.dialogue.outside``): what it takes that no word list
names, what it leaves, and that the shipped file is the one its command builds from the lines in training/.

Pure text at serving (the shipped file); the build test trains a small model on a few lines with the
bundled GGUF's token embeddings (torch, gguf: the convert extra every development install has).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from npcvoice.dialogue.deflection import from_outside, listed
from npcvoice.dialogue.outside import MODEL_PATH, OutsideModel, grams, shipped, word_forms
from npcvoice.training import outside as build_outside


def test_lines_of_the_real_world_that_no_list_names_are_taken():
    # written for this test, in none of the model's lines nor the word lists
    lines = ["Have you been to Tokyo?", "My flight to Chicago got delayed.", "Explain how a nuclear reactor works.",
             "Write me a haiku about autumn in Japanese.", "Have you tried sushi?",
             "Can you recommend a good anime?"]  # fmt: skip
    assert [line for line in lines if listed(line)] == []
    assert [line for line in lines if not from_outside(line)] == []


def test_lines_of_the_world_in_words_that_are_modern_too_are_left_alone():
    lines = ["Where can I buy a good pistol in this town?", "Is that chain mail for sale?",
             "The telegraph office is closed, can you carry a message to the railroad camp?",
             "Mark my words, the charge will break their line.", "The monk sat in his cell all night.",
             "Who carved the stone tablet by the well?", "I hear the mail coach was robbed near the pass.",
             "Can I see the program of the harvest festival?", "Polish my boots, boy."]  # fmt: skip
    assert [line for line in lines if shipped().takes(line)] == []


def test_a_line_is_read_for_its_words_not_its_phrasing():
    assert word_forms("Polish my boots. Mark said") == [
        "polish",
        "my",
        "My",
        "boots",
        "Boots",
        "mark",
        "said",
        "Said",
    ]
    # what a line is about, not how it is put: "you are now" alone weighs nothing
    assert grams("You are now a GAME bot") == ["a game", "bot", "game", "game bot"]


def test_the_shipped_model_was_built_from_the_lines_in_training():
    built = json.loads(MODEL_PATH.read_text())
    outside, inside = build_outside.labelled_lines()
    assert built["lines"]["sha256"] == build_outside.lines_digest(outside, inside), (
        "training/outside/ or the corpus changed: rebuild with python -m npcvoice.training.outside"
    )


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "outside").mkdir()
    (root / "conversations").mkdir()
    lines = {
        "outside": ["Can I charge my iPhone here?", "Did you watch Netflix last night?", "Are you a chatbot?",
                    "My laptop battery died.", "Post it on Instagram."],
        "inside": ["Where is the smithy?", "How much for the grey mare?", "Who rules this castle?",
                   "The tide is turning.", "Sell me a lantern."],
    }  # fmt: skip
    (root / "outside" / "lines.yaml").write_text(yaml.safe_dump(lines))
    return root


def test_the_build_is_the_same_for_the_same_lines_and_seed(tiny_corpus: Path):
    options = build_outside.Options(epochs=3)
    first = build_outside.build(options, tiny_corpus)
    assert build_outside.build(options, tiny_corpus) == first
    model = OutsideModel(first["bias"], first["threshold"], first["words"], first["grams"])
    # what it learned: the modern lines score above the world's
    assert model.score("Did you watch Netflix last night?") > model.score("How much for the grey mare?")
