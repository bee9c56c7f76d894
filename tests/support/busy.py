"""A dialogue service kept full on purpose: ``gate`` holds the replies the engine begins on its worker
until the test releases them (conftest's ``gate`` fixture), so a turn sent meanwhile meets a service at
its limit (:func:`busy_dialogue`) whatever the machine's speed."""

from __future__ import annotations

import threading
from typing import Any

from npcvoice.dialogue.registration import REGISTRATION as DIALOGUE
from tests.conftest import REPO_ROOT

COURIER = "courier_quick_test"  # a test persona with short replies


class Gate:
    """Holds every reply the dialogue engine begins on its worker until ``released`` is set; ``held``
    counts them."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.held = 0
        self._lock = threading.Lock()

    def hold(self, generation: Any) -> Any:
        step = generation.prefill_step
        waited = False

        def held() -> bool:
            nonlocal waited
            if not waited:
                waited = True
                with self._lock:
                    self.held += 1
                self.entered.set()
                self.released.wait(60)
            return bool(step())

        generation.prefill_step = held
        return generation


async def busy_dialogue(hosted: Any, persona_dir: Any) -> Any:
    """The real dialogue service with room for one reply at a time."""
    return await hosted(
        "dialogue",
        DIALOGUE,
        {"models_dir": str(REPO_ROOT / ".models"), "persona_dir": str(persona_dir),
         "device": "cpu", "prewarm": False, "max_active": 1},
    )  # fmt: skip


async def busy_gateway(
    hosted: Any, persona_dir: Any, redis: Any, speech: Any, voice: Any, face: Any, retry_after_s: float
) -> Any:
    """The real gateway over :func:`busy_dialogue`, telling refused turns to retry after ``retry_after_s``."""
    from npcvoice.conversation.registration import REGISTRATION
    from tests.support.conversation import gateway_options

    dialogue = await busy_dialogue(hosted, persona_dir)
    options = gateway_options(persona_dir, redis, speech, dialogue, voice, face)
    return await hosted("conversation", REGISTRATION, {**options, "busy_retry_after_s": retry_after_s})


class HeldRest:
    """Holds every piece after the first of a reply the voice engine speaks (``sentence_index >= 1``) until
    the next reply starts (its first piece: the player's barge-in line is being answered) or the test
    calls ``release``. A reply of two pieces or more is then still going on when the player interrupts,
    however fast this machine speaks; ``arm`` starts holding again (a new try)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self._first_pieces = 0
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            self._first_pieces = 0
            self.released.clear()

    def release(self) -> None:
        self.released.set()

    def piece(self, sentence_index: int) -> None:
        if sentence_index == 0:
            with self._lock:
                self._first_pieces += 1
                if self._first_pieces >= 2:
                    self.released.set()
        else:
            self.released.wait(60)
