"""The gateway's model-free logic: the memory window it passes to the dialogue model, heard text."""

from __future__ import annotations

from npcvoice.conversation.turn import SpokenSentence, heard_text, recent_window
from npcvoice.turns import Turn


def test_the_gateways_memory_window_moves_in_steps_so_the_prompt_prefix_stays():
    turns = [Turn("player" if i % 2 == 0 else "npc", f"line {i}") for i in range(30)]
    starts = [recent_window(turns[:n], 12)[0].text for n in range(12, 31)]
    assert all(12 <= len(recent_window(turns[:n], 12)) < 18 for n in range(12, 31))
    assert len(set(starts)) == 4  # line 0, 6, 12, 18: the start moves 3 times in 19 turns, not 18


def test_heard_text_is_the_whole_sentences_played_and_the_played_share_of_the_next():
    sentences = [
        SpokenSentence(0, 1000, "Mind the sparks."),
        SpokenSentence(1000, 1000, "What do you need forged today?"),
    ]
    assert heard_text(sentences, 0) == ""
    assert heard_text(sentences, 1000) == "Mind the sparks."
    assert heard_text(sentences, 1500) == "Mind the sparks. What do you"
    assert heard_text(sentences, 5000) == "Mind the sparks. What do you need forged today?"
