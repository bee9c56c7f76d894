"""The game talks to the NPC: world context it uses, events it remembers (across sessions and in save
games), triggers and scripted cues that make it speak first, through the real gateway and services."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.conversation.relationship import moved, nudged
from tests.support.conversation import Conversation, config, export
from tests.support.grpc_status import status_of

NPC = "herbalist_events_test"
TEXT = conversation_pb2.REPLY_MODE_TEXT


def context(**values: str) -> conversation_pb2.WorldContext:
    return conversation_pb2.WorldContext(values=values)


async def test_world_context_reaches_the_npc_and_an_update_replaces_it(gateway, dialogue_requests):
    start = config("player-weather", NPC, reply_mode=TEXT, context=context(weather="heavy rain", mood="x"))
    conversation = Conversation(gateway, start)
    conversation.send(text="What is the weather like today?")
    first = await conversation.turn()
    conversation.send(context=context(weather="bright sun", time_of_day="noon"))
    conversation.send(text="And now?")
    await conversation.turn()
    await conversation.close()
    # The persona lists weather, time_of_day and location: other keys (mood) are not for it.
    asked = dialogue_requests.replies
    assert dict(asked[-2].memory.world) == {"weather": "heavy rain"}
    assert dict(asked[-1].memory.world) == {"weather": "bright sun", "time_of_day": "noon"}
    assert first.end.reply_text  # (whether the model uses it is measured by npcvoice eval, not asserted)


async def test_an_event_is_remembered_across_sessions_and_in_save_games(gateway, dialogue_requests):
    player = "player-thief"
    await gateway_reset(gateway, player)
    conversation = Conversation(gateway, config(player, NPC, reply_mode=TEXT))
    assert (await conversation.next()).WhichOneof("event") == "started"
    stolen = conversation_pb2.GameEvent(
        name="item_stolen",
        description="The player stole a jar of honey from your stall.",
        parameters={"item": "honey"},
    )
    conversation.send(event=stolen)
    await conversation.close()  # no trigger speaks for a theft: nothing but memory
    snapshot = await export(gateway, player, NPC)
    assert [(t.role, t.text) for t in snapshot.turns] == [("event", stolen.description)]
    assert (snapshot.affinity, snapshot.trust) == pytest.approx((-0.3, -0.4))  # as the trigger says

    again = Conversation(gateway, config(player, NPC, reply_mode=TEXT))  # a later session
    again.send(text="Good morning, Wren!")
    await again.turn()
    await again.close()
    told = [(t.role, t.text) for t in dialogue_requests.replies[-1].memory.recent_turns]
    assert ("event", stolen.description) in told


async def test_a_trigger_or_a_cue_makes_the_npc_speak_first_with_audio_and_visemes(gateway):
    player = "player-gift"
    await gateway_reset(gateway, player)
    conversation = Conversation(gateway, config(player, NPC))
    gift = conversation_pb2.GameEvent(
        name="item_given", description="The player gave you a bundle of rare moonleaf."
    )
    conversation.send(event=gift)
    reacted = await conversation.turn()
    conversation.send(
        speak=conversation_pb2.NpcSpeak(instruction="Call out to passers-by about your fresh herbs.")
    )
    called = await conversation.turn()
    await conversation.close()
    for out in (reacted, called):
        assert out.end.player_text == "" and out.end.cue and out.end.reply_text
        assert out.audio and all(chunk.visemes for chunk in out.audio)
    assert gift.description in reacted.end.cue and "Thank the player" in reacted.end.cue
    snapshot = await export(gateway, player, NPC)
    roles = [t.role for t in snapshot.turns]
    assert roles == ["event", "npc", "npc"]  # the gift, then what the NPC said; no invented player line
    # the trigger's 0.2 and 0.1, then what her emotions and actions in the two replies moved
    affinity, trust = nudged(0.0, 0.0, 0.2, 0.1)
    for out in (reacted, called):
        affinity, trust = moved(affinity, trust, out.emotions, out.actions)
    assert (snapshot.affinity, snapshot.trust) == pytest.approx((affinity, trust))


async def test_bad_context_events_and_cues_get_invalid_argument_naming_the_field(gateway):
    cases = [
        ([config("p1", NPC, context=context(**{"Bad Key": "x"}))], "config.context.values['Bad Key']"),
        ([config("p1", NPC), conversation_pb2.ConverseRequest(context=context(weather="x" * 201))],
         "context.values['weather']: at most 200 characters"),
        ([config("p1", NPC), conversation_pb2.ConverseRequest(event=conversation_pb2.GameEvent(name="Gift!"))],
         "event.name"),
        ([config("p1", NPC), conversation_pb2.ConverseRequest(event=conversation_pb2.GameEvent(
            name="gift", description="x" * 301))], "event.description: at most 300 characters"),
        ([config("p1", NPC), conversation_pb2.ConverseRequest(speak=conversation_pb2.NpcSpeak())],
         "speak.instruction: must not be empty"),
    ]  # fmt: skip
    for requests, message in cases:

        async def stream(requests=requests):
            for request in requests:
                yield request
            await asyncio.sleep(60)  # the stream stays open: the server's error is what ends it

        code, details = await status_of(conversation_stub(gateway).Converse(stream()))
        assert (code, details[: len(message)]) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_a_message_from_a_client_built_before_context_and_events_still_parses():
    # ConverseRequest{config{npc_id:"blacksmith_hilda" player_id:"p1" reply_mode:TEXT}} as the earlier
    # contract encoded it (fields 1, 2 and 5 of ConverseConfig), and a typed line (field 3).
    old_config = bytes.fromhex("0a180a10626c61636b736d6974685f68696c6461120270312801")
    parsed = conversation_pb2.ConverseRequest.FromString(old_config)
    assert (parsed.config.npc_id, parsed.config.player_id) == ("blacksmith_hilda", "p1")
    assert parsed.config.reply_mode == TEXT and not parsed.config.HasField("context")
    assert conversation_pb2.ConverseRequest.FromString(bytes.fromhex("1a026869")).text == "hi"


def conversation_stub(service):
    from npcvoice.api.npc.conversation.v1 import conversation_pb2_grpc

    return conversation_pb2_grpc.ConversationServiceStub(service.channel)


async def gateway_reset(service, player: str) -> None:
    request = conversation_pb2.ResetMemoryRequest(npc_id=NPC, player_id=player)
    await conversation_stub(service).ResetMemory(request)
