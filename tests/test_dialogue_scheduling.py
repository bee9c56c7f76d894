"""When the dialogue's model work runs (issue #13): a summary never steps while a reply is being written,
and once a reply's first piece is out its decoding waits while the voice speaks that piece. The engine
here is a fake that records the order of the steps (the scheduling is tested, not the model: the real
model's replies are in test_dialogue.py and test_conversation_first_audio.py)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.reply import Sentence
from npcvoice.dialogue.scheduler import CPU_YIELD_MS_PER_CHAR, DialogueScheduler, admission_limit
from npcvoice.runtime.errors import ResourceExhausted


class FakeReply:
    """A reply of ``tokens`` decode steps whose first step releases ``piece`` (if any) as its first piece."""

    def __init__(self, log: list[tuple[str, float]], tokens: int, piece: str) -> None:
        self._log, self._left, self._piece = log, tokens, piece
        self.persona = SimpleNamespace(id="hilda")
        self.done = False
        self._released = False

    def prefill_step(self) -> bool:
        return True

    def decode_step(self) -> list[Sentence]:
        self._log.append(("reply", time.perf_counter()))
        time.sleep(0.01)
        self._left -= 1
        self.done = self._left == 0
        first, self._released = not self._released, True
        return [Sentence(0, self._piece)] if first and self._piece else []

    def summary(self) -> str:
        return "summary"

    def close(self) -> None:
        pass


class FakeSummary:
    def __init__(self, log: list[tuple[str, float]], steps: int) -> None:
        self._log, self._left = log, steps

    def step(self) -> bool:
        self._log.append(("summary", time.perf_counter()))
        time.sleep(0.01)
        self._left -= 1
        return self._left == 0

    def result(self) -> tuple[str, list[str]]:
        return "", []


def scheduler(
    log: list[tuple[str, float]], reply_tokens: int, piece: str, device: str = "cpu", **options: Any
):
    engine = SimpleNamespace(
        options=DialogueOptions(**options),
        device=device,
        personas=SimpleNamespace(all=lambda: []),
        begin=lambda request: FakeReply(log, reply_tokens, piece),
        begin_summary=lambda *args: FakeSummary(log, 5),
        begin_warm=lambda persona: None,
    )
    return DialogueScheduler(engine)  # type: ignore[arg-type]


async def test_a_summary_never_steps_while_a_reply_is_being_written():
    log: list[tuple[str, float]] = []
    work = scheduler(log, reply_tokens=20, piece="")

    async def reply() -> None:
        async for _ in work.generate(SimpleNamespace()):
            pass

    replying = asyncio.create_task(reply())
    await asyncio.sleep(0.02)  # the reply is under way when the summary is asked for
    await asyncio.gather(replying, work.summarize(SimpleNamespace(persona_id="hilda", previous_summary="",
                                                                  turns=[])))  # fmt: skip
    kinds = [kind for kind, _ in log]
    assert kinds == ["reply"] * 20 + ["summary"] * 5, kinds
    await work.aclose()


async def test_after_its_first_piece_a_reply_waits_while_the_voice_speaks_it_on_a_cpu():
    piece = "Welcome to my forge, traveller,"
    for device, wait in (("cpu", CPU_YIELD_MS_PER_CHAR * len(piece) / 1000), ("cuda", 0.0)):
        log: list[tuple[str, float]] = []
        work = scheduler(log, reply_tokens=3, piece=piece, device=device)
        async for _ in work.generate(SimpleNamespace()):
            pass
        first, second = log[0][1], log[1][1]
        assert second - first >= wait, (device, second - first)
        if not wait:
            assert second - first < 0.15
        await work.aclose()


async def test_past_the_limit_a_reply_is_refused_at_once_and_there_is_room_again_when_one_ends():
    work = scheduler([], reply_tokens=50, piece="Hello there,", threads=1)  # on a CPU: 2 per thread
    held = [work.generate(SimpleNamespace()) for _ in range(2)]
    for reply in held:
        await reply.__anext__()  # admitted and under way (its first piece is out)
    with pytest.raises(ResourceExhausted, match="2 replies and summaries are being generated"):
        await work.generate(SimpleNamespace()).__anext__()
    await held[0].aclose()
    later = work.generate(SimpleNamespace())
    await later.__anext__()
    for reply in (held[1], later):
        await reply.aclose()
    await work.aclose()


def test_the_default_limit_fits_the_device():
    assert admission_limit(0, "cpu", threads=2) == 4  # every reply in progress shares the cores
    assert admission_limit(0, "cuda", threads=2) == 16
    assert admission_limit(3, "cpu", threads=2) == 3  # as configured
