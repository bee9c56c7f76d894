"""Overload is refused early, not timed out (issue #15): a turn the dialogue service has no room for gets
TurnRefused at once (RESOURCE_EXHAUSTED's "busy, try again"), nothing of it is remembered, and the
conversation goes on. The real dialogue service runs with ``max_active: 1``; its one reply is held on
its worker by a gate until the test lets it go, so the second turn meets a full service whatever the
machine's speed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.conversation.registration import REGISTRATION
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.registration import REGISTRATION as DIALOGUE
from tests.conftest import REPO_ROOT
from tests.support.conversation import Conversation, config, export, gateway_options
from tests.support.waiting import eventually

TEXT = conversation_pb2.REPLY_MODE_TEXT
COURIER = "courier_quick_test"


class Gate:
    """Holds the first reply the dialogue engine begins on its worker until ``release``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def hold(self, generation: Any) -> Any:
        if self.entered.is_set():
            return generation
        step = generation.prefill_step

        def held() -> bool:
            self.entered.set()
            self.released.wait(60)
            return bool(step())

        generation.prefill_step = held
        return generation


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    begin = DialogueEngine.begin
    monkeypatch.setattr(DialogueEngine, "begin", lambda self, request: gate.hold(begin(self, request)))
    yield gate
    gate.released.set()  # never leave a worker thread waiting


async def test_a_turn_over_the_dialogue_limit_is_refused_at_once_unremembered_and_the_stream_goes_on(
    gate, hosted, redis_server, test_persona_dir, speech_service, voice_service, face_service
):
    dialogue = await hosted(
        "dialogue",
        DIALOGUE,
        {"models_dir": str(REPO_ROOT / ".models"), "persona_dir": str(test_persona_dir),
         "device": "cpu", "prewarm": False, "max_active": 1},
    )  # fmt: skip
    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue, voice_service, face_service
    )
    options["busy_retry_after_s"] = 2.5
    gateway = await hosted("conversation", REGISTRATION, options)
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
