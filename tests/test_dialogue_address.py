"""Whom the NPC speaks to: a name its context gives someone else, said to the player, becomes the player's.

Pure logic on text (no model): the filter the dialogue service releases every sentence through.
"""

from __future__ import annotations

import pytest

from npcvoice.dialogue.address import Address, mender
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import ReplyFilter, Sentence
from npcvoice.dialogue.types import TurnRequest
from npcvoice.personas.schema import Persona
from npcvoice.turns import Turn, overheard

LOCKKEEPER = Persona.model_validate(
    {
        "schema_version": 1, "id": "lock_test", "display_name": "Brannoc Ashlow",
        "description": "Brannoc keeps the nine locks of the Greywater Stair and has a mastiff called Grub.",
        "greeting": "Rope ready?",
        "lore": [
            {"keywords": ["barge"], "text": "The barge Patient Heron, skippered by Maudie Venn, hauls salt."},
            {"keywords": ["bell"], "text": "The monks ring their great bronze bell, Old Tomas, at noon."},
            {"keywords": ["abbey"], "text": "The abbey's cook, Sister Wenna, bakes the salt bread."},
            {"keywords": ["family"], "text": "My da, Amos Ashlow, kept these locks before me."},
        ],
        "emotions": ["neutral"],
    }
)  # fmt: skip


def address(*player_lines: str, player_name: str = "", events: tuple[str, ...] = ()) -> Address:
    turns = [Turn("player", line) for line in player_lines] + [Turn("event", e) for e in events]
    request = TurnRequest("lock_test", player_lines[-1] if player_lines else "", player_name=player_name,
                          memory=MemoryView(recent_turns=turns))  # fmt: skip
    return Address.of(LOCKKEEPER, request)


INTRODUCED = "Good day! I'm Ilsabet, a glassblower from Dunmarrow."


@pytest.mark.parametrize(
    ("said", "heard"),
    [
        ("Stained glass, Maudie.", "Stained glass, Ilsabet."),
        ("Strange words, Maudie Venn!", "Strange words, Ilsabet!"),
        ("Two nights, Maudie, and I'll tie you up in the basin.", "Two nights, Ilsabet, and I'll tie you up in the basin."),
        ("Permit, Odo.", "Permit, Ilsabet."),  # the player's partner, as they told it
    ],
)  # fmt: skip
def test_a_name_of_someone_else_said_to_the_player_becomes_the_players(said, heard):
    told = address(INTRODUCED, "My partner Odo waits at the camp.", "Should I go?")
    assert told.mend(said) == heard


def test_the_name_the_game_gives_the_player_is_the_one_said():
    assert address("Can I pass?", player_name="Aric").mend("Not today, Maudie.") == "Not today, Aric."


def test_while_the_npc_does_not_know_the_players_name_the_wrong_one_is_left_out():
    assert address("Can I pass?").mend("Strange words, Maudie!") == "Strange words!"
    assert address("Can I pass?").mend("Two nights, Maudie, and the basin.") == "Two nights, and the basin."
    # nor said twice, where the sentence names the player already
    assert address(INTRODUCED).mend("Ilsabet goes first, Maudie.") == "Ilsabet goes first."


@pytest.mark.parametrize(
    "said",
    [
        "The great bronze bell, Old Tomas.",  # what a thing is called, after the word the lore puts it after
        "My da, Amos, kept these locks.",  # who someone is, after a word for a person
        "Thank you, Ilsabet!",  # the player's own name
        "Wait there, Brannoc Ashlow.",  # the NPC's own name is not the guard's to change
        "Down, Grub, down!",  # its dog, which it may speak to
        "Ask the cook, Sister Wenna.",  # who someone is, after the word the lore puts her name after
        "Me, Maudie, Odo and the monks.",  # a list, not whom it speaks to
        "Farewell, Traveller.",  # not a name the context gives anyone
        "Ask the barge, Maudie's.",  # a possessive
    ],
)
def test_names_that_are_not_someone_elses_said_to_the_player_are_left_alone(said):
    assert address(INTRODUCED, "My partner Odo waits at the camp.").mend(said) == said


def test_in_a_scene_the_npc_may_speak_to_those_it_heard():
    scene = overheard("Maudie Venn", "Brannoc Ashlow", "Open the gate, Brannoc.")
    assert address(INTRODUCED, events=(scene,)).mend("Aye, Maudie.") == "Aye, Maudie."
    assert address(INTRODUCED).mend("Aye, Maudie.") == "Aye, Ilsabet."


def test_the_reply_filter_releases_the_mended_sentence_and_a_continuation_keeps_mending():
    turn = TurnRequest("lock_test", "Hello.", memory=MemoryView(recent_turns=[Turn("player", INTRODUCED)]))
    mend = mender(LOCKKEEPER, turn)
    reply = ReplyFilter(LOCKKEEPER, first_clause=True, mend=mend)
    events = reply.feed("[emotion: neutral] Two nights, Maudie, and ") + reply.feed("I'll tie you up. ")
    events += reply.finish()
    assert [e.text for e in events if isinstance(e, Sentence)] == [
        "Two nights, Ilsabet,",
        "and I'll tie you up.",
    ]
    going_on = reply.continuation()
    more = going_on.feed("Sleep well, Maudie. ") + going_on.finish()
    assert [e.text for e in more if isinstance(e, Sentence)] == ["Sleep well, Ilsabet."]


@pytest.mark.parametrize(
    ("told", "said", "heard"),
    [
        ("My grandmother Bryony raised me.", "Ah, my granddaughter Bryony!", "Ah, your grandmother Bryony!"),
        ("I'm looking for my sister Lowri.", "My wife Lowri went north.", "Your sister Lowri went north."),
        ("Lowri, my sister, went north.", "I saw my daughter Lowri at dawn.", "I saw your sister Lowri at dawn."),
    ],
)  # fmt: skip
def test_the_players_people_said_as_the_npcs_own_are_given_back(told, said, heard):
    assert address(told, "Have you seen her?").mend(said) == heard
    request = TurnRequest(
        "lock_test", "Have you seen her?", memory=MemoryView(recent_turns=[Turn("player", told)])
    )
    assert mender(LOCKKEEPER, request)(said) == heard


def test_the_npcs_own_people_stay_its_own():
    # Amos is the NPC's da in its lore; Bryony was never named by the player
    told = address("My father Amos was a miller.", "My grandmother Bryony raised me.")
    assert told.mend("My da Amos kept these locks.") == "My da Amos kept these locks."
    assert address("Hello there.").mend("My cousin Bryony keeps bees.") == "My cousin Bryony keeps bees."


def test_your_before_the_players_own_name_is_youre():
    # asked "Do you remember my name?", the model wrote "Your Teodor Rusk, cooper from Millbrae."
    known = address(INTRODUCED)
    assert (
        known.mend("Your Ilsabet, glassblower from Dunmarrow.")
        == "You're Ilsabet, glassblower from Dunmarrow."
    )
    assert known.mend("Aye, your Ilsabet.") == "Aye, you're Ilsabet."
    assert known.mend("Your Old Tomas rings at noon.") == "Your Old Tomas rings at noon."  # no player's name
    assert mender(LOCKKEEPER, TurnRequest("lock_test", "My name?", memory=MemoryView(
        recent_turns=[Turn("player", INTRODUCED)])))("Your Ilsabet.") == "You're Ilsabet."  # fmt: skip


def test_the_players_name_said_a_letter_wrong_is_said_right():
    met = address(INTRODUCED)
    assert met.mend("Strange words, Ilsabeth.") == "Strange words, Ilsabet."
    assert met.mend("Mind the step, Ilsabete!") == "Mind the step, Ilsabet!"
    # only begins alike: not her name misspelt, but a name nobody has (below)
    assert met.mend("Strange words, Ilona.") == "Strange words, Ilsabet."


def test_a_name_nothing_in_the_conversation_has_said_to_the_player_becomes_the_players():
    # "Strange words, Eryndor." to Hesper: a made-up name, where a word for anyone would do
    assert address(INTRODUCED).mend("Strange words, Eryndor.") == "Strange words, Ilsabet."
    assert address("Can I pass?").mend("Strange words, Eryndor!") == "Strange words!"
    for kept in ("Farewell, Traveller.", "Aye, Sister.", "Mind the step, Grub.", "Up you go, Ilsabet."):
        assert address(INTRODUCED).mend(kept) == kept
