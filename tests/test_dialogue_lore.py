"""Lore a player's question calls up without naming any of the writer's keywords (``dialogue.lore``)."""

from __future__ import annotations

from npcvoice.dialogue.lore import called_up
from npcvoice.dialogue.prompt import MemoryView, build_messages
from npcvoice.personas.schema import Persona

# A writer in a hurry: one keyword an entry, as a player would not say it.
FERRYMAN = Persona.model_validate(
    {
        "schema_version": 1,
        "id": "ferryman_test",
        "display_name": "Haldor Brenn",
        "description": "Haldor rows the ferry across the Glasswater, a cold lake between two feuding towns.",
        "greeting": "Mind the gunwale.",
        "lore": [
            {
                "keywords": ["timetable"],
                "text": "A crossing takes about two hours; the ferry leaves Vennholm at dawn and at noon.",
            },
            {
                "keywords": ["fare"],
                "text": "A crossing costs three copper a head, and a silver mark for a horse and cart.",
            },
            {
                "keywords": ["feud"],
                "text": "Vennholm and Stavra have quarrelled for sixty years over the char fishing in the "
                "Deepwell, since Stavra men cut Vennholm's nets.",
            },
            {
                "keywords": ["Tern Rock"],
                "text": "Haldor Brenn lives alone on Tern Rock, in the stone shelter his father built after "
                "a ferry went down with eleven aboard.",
            },
            {
                "keywords": ["falcons"],
                "text": "Lord Tallis goes hawking on the marsh each autumn with his two peregrines.",
            },
        ],
    }
)


def entry(keyword: str) -> str:
    return next(e.text for e in FERRYMAN.lore if keyword in e.keywords)


def found(line: str, world: list[str] | None = None) -> list[str]:
    return [e.text for e in called_up(FERRYMAN, line, world or [])]


def test_a_question_in_the_players_own_words_calls_up_the_entry_that_answers_it():
    assert found("Why do the two towns hate each other? Something about fishing?") == [entry("feud")]
    assert found("How much for me and my horse and cart?") == [entry("fare")]
    assert found("Does his lordship still hawk out on the marsh?") == [entry("falcons")]  # "hawking"


def test_a_keyword_in_the_line_decides_and_nothing_is_added_beside_it():
    assert found("Does the timetable change when Lord Tallis is out hawking?") == [entry("timetable")]


def test_a_line_that_asks_nothing_or_shares_only_everyday_words_calls_up_nothing():
    assert found("I'm a cooper from Stavra, and my horse is tired.") == []  # tells, does not ask
    assert found("How are you keeping these days?") == []
    assert found("This is my horse. Could you take her and the cart over?") == []  # a request, not a question
    assert found("Haldor Brenn, is it?") == []  # the NPC's own name is in an entry: it calls nothing up


def test_a_question_about_the_player_or_the_npc_itself_or_the_moment_calls_up_nothing_by_its_words():
    assert found("What did I say about the fishing in my village?") == []  # the player's own words answer it
    assert found("What do they call you, out in your stone shelter?") == []  # who the NPC is: not its lore
    assert found("Does his lordship hawk on the marsh?") == [entry("falcons")]
    # the game says what is happening: that answers it, not the lore
    assert found("Does his lordship hawk on the marsh today?", world=["Lord Tallis rides out"]) == []


def test_the_prompt_holds_the_entry_a_question_calls_up_without_a_keyword():
    messages = build_messages(FERRYMAN, MemoryView(), "What is it with Stavra folk?", lambda m: 0, 1000)
    assert f"You know: {entry('feud')}" in messages[-1]["content"]
    messages = build_messages(FERRYMAN, MemoryView(), "Lovely morning on the water.", lambda m: 0, 1000)
    assert "You know:" not in messages[-1]["content"]
