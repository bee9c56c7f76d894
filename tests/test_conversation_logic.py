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


def test_the_replay_spool_gives_back_the_turns_not_yet_written_in_order_even_after_a_torn_write(tmp_path):
    from npcvoice.conversation.memory import TurnRecord
    from npcvoice.conversation.replay import Spool

    def record(text: str) -> TurnRecord:
        return TurnRecord("npc", "player", [Turn("player", text, time=1.0)], [], 0.1, 0.2)

    spool = Spool(tmp_path / "spool.jsonl")
    for text in ("one", "two", "three"):
        spool.add(record(text))
    spool.written()  # "one" reached Redis
    with spool.path.open("a") as file:
        file.write('{"npc_id": "npc", "player_id": "pla')  # the process died mid-write
    assert [r.turns[0].text for r in spool.load()] == ["two", "three"]
    assert spool.load()[0] == record("two")
    spool.rewrite(spool.load())  # what a restarted gateway does before it appends again
    spool.add(record("four"))
    assert [r.turns[0].text for r in spool.load()] == ["two", "three", "four"]
    spool.clear()
    assert spool.load() == []


def test_the_replay_spool_keeps_which_stored_line_a_cut_short_reply_replaces(tmp_path):
    from npcvoice.conversation.memory import TurnRecord
    from npcvoice.conversation.replay import Spool

    said = Turn("npc", "The whole reply.", time=1.0)
    record = TurnRecord("npc", "player", [Turn("npc", "The whole", True, 1.0)], [], 0.1, 0.2, replaces=said)
    spool = Spool(tmp_path / "spool.jsonl")
    spool.add(record)
    assert spool.load() == [record]
