"""Scenes (#26): several NPCs in one Converse stream. Real gateway, real services and Redis; three test
personas with short replies (Fenn the Courier, Wren the Herbalist, Ilse the Scribe)."""

from __future__ import annotations

import itertools
import time

import grpc
import pytest

from npcvoice.api.npc.conversation.v1 import conversation_pb2 as pb
from npcvoice.conversation.scene import Scene, SceneChange, names_in
from npcvoice.evaluation.runner import OVERLAP_S
from npcvoice.runtime.errors import FailedPrecondition
from tests.support.conversation import Conversation, export

FENN, WREN, ILSE = "courier_quick_test", "herbalist_events_test", "scribe_short_memory_test"
SCENE = [FENN, WREN, ILSE]
NAMES = {FENN: "Fenn the Courier", WREN: "Wren the Herbalist", ILSE: "Ilse the Scribe"}
TEXT = pb.REPLY_MODE_TEXT


def scene_config(player: str, npcs: list[str] = SCENE, **kwargs) -> pb.ConverseRequest:
    return pb.ConverseRequest(config=pb.ConverseConfig(player_id=player, scene_npc_ids=npcs, **kwargs))


# --- who a line goes to (logic only) ----------------------------------------------------------------------


def test_a_line_goes_to_the_npc_the_game_names_else_the_one_it_calls_by_name_else_the_last_who_spoke():
    scene = Scene(SCENE, FENN, NAMES)
    assert scene.addressee("Any letters today?") == FENN  # the first of the scene, before anyone spoke
    assert scene.addressee("Wren, do you sell mandrake?") == WREN
    assert scene.addressee("What do you think, ilse?") == ILSE  # a name anywhere, in any case
    assert scene.addressee("Ilse, is Wren honest?") == ILSE  # the first named is the one addressed
    assert scene.addressee("Is Wrenfield far?") == FENN  # a name inside another word calls no one
    scene.last = WREN
    assert scene.addressee("And the price?") == WREN
    scene.change(SceneChange(addressed=ILSE), {})
    assert scene.addressee("Wren, do you sell mandrake?") == ILSE  # the game's choice wins
    scene.change(SceneChange(addressed=""), {})
    assert scene.addressee("Fenn, wait!") == FENN
    assert names_in("Fenn the Courier") == ["Fenn the Courier", "Fenn", "Courier"]


def test_npcs_join_and_leave_and_the_scene_refuses_what_cannot_be():
    scene = Scene([FENN], FENN, {FENN: NAMES[FENN]})
    scene.change(SceneChange(join=(WREN,), out_of_earshot=(WREN,)), {WREN: NAMES[WREN]})
    assert list(scene.members) == [FENN, WREN] and scene.hearers(FENN) == []
    scene.change(SceneChange(out_of_earshot=()), {})
    assert scene.hearers(FENN) == [WREN]
    scene.last = WREN
    scene.change(SceneChange(leave=(WREN,)), {})
    assert scene.addressee("Hello?") == FENN  # the last speaker left: the first remaining answers
    with pytest.raises(FailedPrecondition, match="keeps at least one NPC"):
        scene.change(SceneChange(leave=(FENN,)), {})
    with pytest.raises(FailedPrecondition, match="not in the scene"):
        scene.change(SceneChange(addressed=ILSE), {})


# --- through the gateway ----------------------------------------------------------------------------------


async def test_a_line_is_answered_by_the_npc_it_names_and_the_others_in_earshot_remember_it(gateway):
    player = f"scene-earshot-{time.time_ns()}"
    talk = Conversation(gateway, scene_config(player, reply_mode=TEXT))
    started = (await talk.next()).started
    assert [m.npc_id for m in started.scene] == SCENE and started.npc_id == FENN
    talk.send(scene=pb.SceneUpdate(earshot=pb.Earshot(out_of_earshot_npc_ids=[ILSE])))
    changed = (await talk.next()).scene
    assert list(changed.out_of_earshot_npc_ids) == [ILSE]

    line = "Wren, I lost my silver ring by the river."
    talk.send(text=line)
    turn = await talk.turn()
    assert turn.end.npc_id == WREN and turn.end.reply_text
    talk.send(text="Did you hear that?")
    assert (await talk.turn()).end.npc_id == WREN  # no name: the last who spoke answers
    await talk.close()

    wren = [(t.role, t.text) for t in (await export(gateway, player, WREN)).turns]
    assert wren[:2] == [("player", line), ("npc", turn.end.reply_text)]
    fenn = [(t.role, t.text) for t in (await export(gateway, player, FENN)).turns]
    assert fenn[:2] == [
        ("event", f'The player said to Wren the Herbalist: "{line}"'),
        ("event", f'Wren the Herbalist answered: "{turn.end.reply_text}"'),
    ]
    assert not (await export(gateway, player, ILSE)).turns  # out of earshot: heard nothing


async def test_a_line_right_after_a_turn_ends_does_not_cut_it_while_the_others_store_what_they_heard(gateway):
    """The next line comes as soon as TurnEnd does: the turn before it was said in full and stays so (it
    is not reported again as interrupted, nor stored twice)."""
    player = f"scene-quick-{time.time_ns()}"
    talk = Conversation(gateway, scene_config(player, reply_mode=TEXT))
    await talk.next()
    kinds = []
    for line in ("Wren, good morning.", "Wren, do you sell mandrake?", "Wren, and sage?"):
        talk.send(text=line)
        out = await talk.turn()
        kinds += out.events
        assert out.end.player_text == line and not out.end.interrupted
    await talk.close()
    assert "interruption" not in kinds and kinds.count("turn_end") == 3
    stored = [t.text for t in (await export(gateway, player, WREN)).turns if t.role == "player"]
    assert stored == ["Wren, good morning.", "Wren, do you sell mandrake?", "Wren, and sage?"]


async def test_a_reply_talked_over_after_it_was_all_sent_is_remembered_as_heard_by_every_npc(gateway):
    """A late cut in a scene (the reply was all sent, and the client's playback says it still plays when
    the next line comes): the NPC who spoke and the others in earshot keep only what the player heard."""
    player = f"scene-cut-short-{time.time_ns()}"
    talk = Conversation(gateway, scene_config(player, [FENN, WREN]))
    await talk.next()
    line = "Wren, what grows by the river this time of year?"
    talk.send(text=line)
    said = await talk.turn()
    assert said.end.npc_id == WREN and said.audio and not said.end.interrupted
    first = said.audio[0]
    played = first.num_samples * 2 // 3
    talk.send(playback=pb.PlaybackPosition(turn_index=said.end.turn_index, played_samples=played))
    talk.send(text="Sorry, Wren, go on.")
    after = await talk.turn()
    await talk.close()

    assert after.cut_short is not None and after.cut_short.turn_index == said.end.turn_index
    heard = after.cut_short.heard_text
    words = first.text.split()
    assert heard == " ".join(words[: int(len(words) * played / first.num_samples)])
    wren = [(t.role, t.text, t.interrupted) for t in (await export(gateway, player, WREN)).turns]
    expected = [("player", line, False), *([("npc", heard, True)] if heard else [])]
    assert wren[: len(expected) + 1] == [*expected, ("player", "Sorry, Wren, go on.", False)]
    fenn = [(t.role, t.text) for t in (await export(gateway, player, FENN)).turns]
    told = ("event", f'The player said to Wren the Herbalist: "{line}"')
    answered = [("event", f'Wren the Herbalist answered: "{heard}"')] if heard else []
    assert fenn[: 1 + len(answered)] == [told, *answered]
    assert f'answered: "{said.end.reply_text}"' not in " ".join(text for _, text in fenn)  # not the whole


async def test_npcs_talk_to_each_other_one_voice_at_a_time_and_each_remembers_its_side(gateway):
    player = f"scene-exchange-{time.time_ns()}"
    talk = Conversation(gateway, scene_config(player, [FENN, WREN]))
    await talk.next()
    talk.send(speak=pb.NpcSpeak(instruction="Ask about the road to Vaelmoor.", npc_id=FENN, to_npc_id=WREN,
                                lines=4))  # fmt: skip
    heard = []  # (first audio's arrival, seconds of audio) per line
    lines = []
    for _ in range(4):
        out = await talk.turn()
        lines.append(out.end)
        heard.append((out.first_audio_at, sum(a.num_samples / a.format.sample_rate_hz for a in out.audio)))
    await talk.close()
    assert [(e.npc_id, e.to_npc_id) for e in lines] == [
        (FENN, WREN),
        (WREN, FENN),
        (FENN, WREN),
        (WREN, FENN),
    ]
    assert all(e.reply_text and not e.player_text for e in lines)
    for (start, seconds), (next_start, _) in itertools.pairwise(heard):  # runner.OVERLAP_S: why the slack
        assert next_start >= start + seconds - OVERLAP_S, heard  # the next voice waits for the last's end
    wren = [(t.role, t.text) for t in (await export(gateway, player, WREN)).turns]
    assert wren[0] == ("event", f'Fenn the Courier said to you: "{lines[0].reply_text}"')
    assert wren[1] == ("npc", lines[1].reply_text)


async def test_a_player_line_during_an_exchange_stops_only_the_speaker_and_is_answered(gateway):
    player = f"scene-barge-in-{time.time_ns()}"
    talk = Conversation(gateway, scene_config(player, [FENN, WREN]))
    await talk.next()
    talk.send(speak=pb.NpcSpeak(instruction="Tell a long story about the mountain pass.", npc_id=WREN,
                                to_npc_id=FENN, lines=8))  # fmt: skip
    first = await talk.turn()
    assert first.end.npc_id == WREN
    talk.send(text="Fenn, a question for you!")
    rest = []
    while True:
        out = await talk.turn()
        rest.append(out)
        if out.end.player_text:
            break
    await talk.close()
    answer = rest[-1]
    assert answer.end.npc_id == FENN and answer.end.reply_text
    # at most the line being said when the player spoke was cut, and no line of the exchange came after it
    assert all(not out.end.player_text for out in rest[:-1]) and len(rest) <= 2
    stored = await export(gateway, player, FENN)
    assert ("player", "Fenn, a question for you!") in [(t.role, t.text) for t in stored.turns]


async def test_a_one_npc_conversation_becomes_a_scene_when_another_walks_in(gateway):
    player = f"scene-join-{time.time_ns()}"
    talk = Conversation(gateway, pb.ConverseRequest(config=pb.ConverseConfig(npc_id=FENN, player_id=player,
                                                                             reply_mode=TEXT)))  # fmt: skip
    started = (await talk.next()).started
    assert started.npc_id == FENN and not started.scene  # as before scenes: one NPC, no scene list
    talk.send(scene=pb.SceneUpdate(join_npc_ids=[WREN]))
    assert [m.display_name for m in (await talk.next()).scene.members] == [NAMES[FENN], NAMES[WREN]]
    talk.send(text="Wren, good morning.")
    assert (await talk.turn()).end.npc_id == WREN
    talk.send(scene=pb.SceneUpdate(leave_npc_ids=[WREN]))
    assert [m.npc_id for m in (await talk.next()).scene.members] == [FENN]
    talk.send(text="Wren, are you there?")  # she left: Fenn answers
    assert (await talk.turn()).end.npc_id == FENN
    await talk.close()


async def test_an_npc_that_leaves_during_an_exchange_ends_it_and_the_scene_goes_on(gateway):
    player = f"scene-leave-{time.time_ns()}"
    talk = Conversation(gateway, scene_config(player, [FENN, WREN, ILSE]))
    await talk.next()
    talk.send(speak=pb.NpcSpeak(instruction="Ask about the weather on the pass.", npc_id=FENN, to_npc_id=WREN,
                                lines=8))  # fmt: skip
    assert (await talk.turn()).end.npc_id == FENN
    talk.send(scene=pb.SceneUpdate(leave_npc_ids=[WREN]))
    events = []
    while (response := await talk.next()).WhichOneof("event") != "scene":
        events.append(response)  # at most the line that was out when she left, cut
    assert [m.npc_id for m in response.scene.members] == [FENN, ILSE]
    ends = [r.turn_end for r in events if r.WhichOneof("event") == "turn_end"]
    assert len(ends) <= 1 and all(e.interrupted for e in ends)
    talk.send(text="Ilse, what news?")
    after = await talk.turn()
    assert after.end.npc_id == ILSE and after.end.player_text == "Ilse, what news?"  # no exchange line after
    await talk.close()


@pytest.mark.parametrize(
    ("requests", "code", "words"),
    [
        ([scene_config("scene-bad", [FENN, FENN])], grpc.StatusCode.INVALID_ARGUMENT, "names an NPC twice"),
        ([scene_config("scene-bad", [FENN, "nobody_here"])], grpc.StatusCode.NOT_FOUND, "nobody_here"),
        ([scene_config("scene-bad", [FENN, WREN]), pb.ConverseRequest(speak=pb.NpcSpeak(
            instruction="Hi.", npc_id=FENN, to_npc_id=ILSE))], grpc.StatusCode.FAILED_PRECONDITION, "not in the scene"),
        ([scene_config("scene-bad", [FENN, WREN]), pb.ConverseRequest(speak=pb.NpcSpeak(
            instruction="Hi.", npc_id=FENN, to_npc_id=WREN, lines=9))], grpc.StatusCode.INVALID_ARGUMENT, "speak.lines"),
        ([scene_config("scene-bad", [FENN]), pb.ConverseRequest(scene=pb.SceneUpdate(leave_npc_ids=[FENN]))],
         grpc.StatusCode.FAILED_PRECONDITION, "at least one NPC"),
    ],
)  # fmt: skip
async def test_a_scene_request_that_cannot_be_gets_its_status_naming_the_field(
    gateway, requests, code, words
):
    talk = Conversation(gateway, *requests)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        while True:
            await talk.next()
    assert failed.value.code() == code and words in (failed.value.details() or "")
