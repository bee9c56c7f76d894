"""What the NPC says and does, from raw model output; and what goes into the prompt.

Pure logic: no model here. The model-driven tests of the dialogue service come with its engine."""

from __future__ import annotations

import pytest

from npcvoice.dialogue.prompt import MemoryView, build_messages, fixed_messages, persona_core
from npcvoice.dialogue.reply import Action, Emotion, ReplyFilter, Sentence, TextDelta, unclosed_start
from npcvoice.personas import load_persona
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.turns import Turn
from tests.conftest import PERSONA_DIR

HILDA = load_persona(PERSONA_DIR / "blacksmith_hilda.yaml")
RAW = (
    "[emotion: joy] *wipes her hands* Well met, **traveller**! (laughs) I can fix that blade "
    "[action: repair_item item=sword price=5] for you. As an AI language model I cannot. "
    "Visit www.example.com today 🔥. [action: fly_away] [emotion: smug] Bye *waves"
)


def run(raw: str, step: int) -> tuple[list[object], ReplyFilter]:
    reply = ReplyFilter(HILDA)
    events: list[object] = []
    for start in range(0, len(raw), step):
        events += reply.feed(raw[start : start + step])
    return events + reply.finish(), reply


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_spoken_text_has_no_directions_markdown_urls_emoji_or_assistant_talk(step):
    events, reply = run(RAW, step)
    assert reply.text == "Well met, traveller! I can fix that blade for you. Visit today. Bye"
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert deltas == reply.text  # the streamed deltas join to the final text
    assert [e.text for e in events if isinstance(e, Sentence)] == [
        "Well met, traveller!", "I can fix that blade for you.", "Visit today.", "Bye",
    ]  # fmt: skip
    assert reply.dropped_sentences == 1


def test_only_declared_emotions_and_valid_actions_get_through():
    events, reply = run(RAW, 3)
    assert [e for e in events if isinstance(e, Emotion | Action)] == [
        Emotion("joy"), Action("repair_item", {"item": "sword", "price": "5"}),
    ]  # fmt: skip
    assert reply.dropped_events == 2  # fly_away and smug
    bad_parameters = "[action: repair_item item=sword price=cheap] [action: repair_item price=3] Fine."
    events, reply = run(bad_parameters, 5)
    assert not [e for e in events if isinstance(e, Action)] and reply.dropped_events == 2


def test_a_sentence_reciting_the_persona_is_never_released():
    leak = "Sure. " + HILDA.description.split(".")[0] + ". What else?"
    _, reply = run(leak, 7)
    assert reply.text == "Sure. What else?"


def test_unclosed_openers_are_found_but_bold_is_not_one():
    assert unclosed_start("Hello *wav") == 6
    assert unclosed_start("Hello **bold** there") == len("Hello **bold** there")
    assert unclosed_start("a (laughs) b [emo") == 13


def count_words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)  # a stand-in for the model's tokenizer


def test_the_prompt_has_the_persona_memory_and_only_matching_lore():
    memory = MemoryView(
        recent_turns=[Turn("player", "Hello."), Turn("npc", "Mind the sparks.")],
        summary="The player asked about swords.",
        player_facts=["The player is called Aric."],
        affinity=0.6,
    )
    messages = build_messages(HILDA, memory, "What do the Vaelmoor traders pay?", count_words, budget=1000)
    fixed = fixed_messages(HILDA)
    assert messages[: len(fixed)] == fixed and fixed[0] == {"role": "system", "content": persona_core(HILDA)}
    assert [m["role"] for m in messages[len(fixed) :]] == ["user", "assistant", "user"]
    last = messages[-1]["content"]
    assert "Vaelmoor merchants buy Emberfall iron" in last  # lore triggered by "Vaelmoor"
    assert "dragon" not in last.lower()  # lore not mentioned stays out
    assert "The player is called Aric." in last and "The player asked about swords." in last
    assert "You like the player" in last
    assert last.endswith("What do the Vaelmoor traders pay?")


def test_over_budget_the_oldest_turns_go_first_then_lore_and_summary():
    turns = [Turn("player" if i % 2 == 0 else "npc", f"turn number {i} " * 5) for i in range(20)]
    memory = MemoryView(recent_turns=turns, summary="Long ago the player helped.")
    core = count_words(fixed_messages(HILDA))
    messages = build_messages(HILDA, memory, "Tell me about the mine.", count_words, budget=core + 120)
    assert count_words(messages) <= core + 120
    kept = [m["content"] for m in messages[len(fixed_messages(HILDA)) : -1]]
    assert kept and kept[-1].startswith("turn number 19")  # newest turns survive
    assert "Long ago the player helped." in messages[-1]["content"]
    with pytest.raises(InvalidArgument, match="player_text"):
        build_messages(HILDA, memory, "Hi.", count_words, budget=core // 2)


def test_the_system_message_is_the_same_every_turn_so_the_cache_prefix_holds():
    first = build_messages(HILDA, MemoryView(), "Hello.", count_words, 1000)
    later = build_messages(HILDA, MemoryView(recent_turns=[Turn("player", "Hello."), Turn("npc", "Hi.")],
                                             summary="x", player_facts=["y"]), "Bye.", count_words, 1000)  # fmt: skip
    assert first[0] == later[0]


def test_world_context_and_game_events_are_in_the_prompt_without_moving_its_cached_start():
    plain = build_messages(HILDA, MemoryView(), "What is the weather like?", count_words, 1000)
    event = Turn("event", "The player gave you a dragon scale.")
    memory = MemoryView(recent_turns=[event], world={"weather": "heavy rain", "time_of_day": "evening"})
    messages = build_messages(HILDA, memory, "What is the weather like?", count_words, 1000)
    fixed = len(fixed_messages(HILDA))
    assert messages[:fixed] == plain[:fixed]  # the prompt's fixed start, the cached prefix, is the same
    assert messages[fixed] == {"role": "user", "content": "[The player gave you a dragon scale.]"}
    assert messages[-1]["content"].endswith(
        "Right now the weather is heavy rain, the time of day is evening.\nThe player says: What is the weather like?"
    )
    first = build_messages(HILDA, MemoryView(), "", count_words, 1000, cue="The player walks in. Greet them.")
    assert first[-1]["content"].endswith("[The player walks in. Greet them.]")  # the NPC speaks first


def test_the_first_piece_goes_out_on_its_punctuation_not_a_token_later():
    """The model's tokens one at a time: the voice gets the first clause when its comma comes, and a
    first sentence when its full stop does, not when the next token's whitespace confirms it; a number,
    an abbreviation or an address still waits."""
    from npcvoice.text import SentenceBuffer

    def pieces(tokens: list[str]) -> list[list[str]]:
        buffer = SentenceBuffer(first_clause=True, eager=True)
        return [buffer.add(token) for token in tokens]

    assert pieces(["Not", " in", " this", " wind", ","]) == [[], [], [], [], ["Not in this wind,"]]
    assert pieces(["Four", ",", " Queen", " of", " Cl", "oves", "."])[-1] == ["Four, Queen of Cloves."]
    assert pieces(["A", " thatcher", ",", " Merriel", "!"])[-1] == ["A thatcher, Merriel!"]
    assert pieces(["It", " costs", " ", "1", ",", "0", "0", "0", "."])[-1] == []  # 1,000 or 1,000.5?
    assert pieces(["Ask", " Dr", "."])[-1] == []
    assert pieces(["Visit", " www", "."])[-1] == []
