"""Overload is refused early, not timed out (issue #15): a turn the dialogue service has no room for gets
TurnRefused at once (RESOURCE_EXHAUSTED's "busy, try again"), nothing of it is remembered, and the
conversation goes on. The real dialogue service runs with ``max_active: 1``; its one reply is held on
its worker by a gate (tests/support/busy.py) until the test lets it go, so the second turn meets a full
service whatever the machine's speed."""

from __future__ import annotations

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from tests.support.busy import COURIER, busy_gateway
from tests.support.conversation import Conversation, config, export
from tests.support.waiting import eventually

TEXT = conversation_pb2.REPLY_MODE_TEXT


async def test_a_turn_over_the_dialogue_limit_is_refused_at_once_unremembered_and_the_stream_goes_on(
    gate, hosted, redis_server, test_persona_dir, speech_service, voice_service, face_service
):
    gateway = await busy_gateway(
        hosted, test_persona_dir, redis_server, speech_service, voice_service, face_service, 2.5
    )
    first = Conversation(gateway, config("player-busy-first", COURIER, reply_mode=TEXT))
    second = Conversation(gateway, config("player-busy-second", COURIER, reply_mode=TEXT))
    first.send(text="Any letters for me?")
    await eventually(gate.entered.is_set)  # the first reply holds the only place

    second.send(text="Is the road north safe?")
    refused = await second.turn()
    assert refused.refused is not None and not refused.ended
    assert refused.refused.player_text == "Is the road north safe?"
    assert refused.refused.retry_after_seconds == 2.5
    assert "1 replies are being generated" in refused.refused.reason

    gate.released.set()
    answered = await first.turn()
    assert answered.end.player_text == "Any letters for me?" and answered.text
    second.send(text="Is the road north safe?")  # the same stream: it was not closed by the refusal
    again = await second.turn()
    assert again.end.player_text == "Is the road north safe?" and again.text
    assert again.end.turn_index == refused.refused.turn_index + 1
    await first.close()
    await second.close()

    stored = await export(gateway, "player-busy-second", COURIER)
    assert [t.text for t in stored.turns if t.role == "player"] == ["Is the road north safe?"]  # once
