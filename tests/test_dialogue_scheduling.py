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
from tests.support.waiting import eventually


class FakeReply:
    """A reply of ``tokens`` decode steps whose first step releases ``piece`` (if any) as its first piece."""

    def __init__(
        self,
        log: list[tuple[str, float]],
        tokens: int,
        piece: str,
        name: str = "reply",
        piece_at: int = 1,
        request: Any = None,
    ) -> None:
        self.request = request or SimpleNamespace(conversation_id="")
        self._log, self._left, self._piece, self._name = log, tokens, piece, name
        self._piece_at, self._steps = piece_at, 0  # the step that releases the piece
        self.persona = SimpleNamespace(id="hilda")
        self.done = False

    def prefill_step(self) -> bool:
        return True

    def decode_step(self) -> list[Sentence]:
        self._log.append((self._name, time.perf_counter()))
        time.sleep(0.01)
        self._left -= 1
        self.done = self._left == 0
        self._steps += 1
        return [Sentence(0, self._piece)] if self._steps == self._piece_at and self._piece else []

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
        remote_for=lambda request: None,  # no larger model: the replies are the local ones
        begin=lambda request: FakeReply(log, reply_tokens, piece, request=request),
        begin_summary=lambda *args: FakeSummary(log, 5),
        begin_warm=lambda persona: None,
    )
    return DialogueScheduler(engine)  # type: ignore[arg-type]


async def test_a_summary_never_steps_while_a_reply_is_being_written():
    log: list[tuple[str, float]] = []
    work = scheduler(log, reply_tokens=20, piece="")

    async def reply() -> None:
        async for _ in work.generate(SimpleNamespace(conversation_id="")):
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
        async for _ in work.generate(SimpleNamespace(conversation_id="")):
            pass
        first, second = log[0][1], log[1][1]
        assert second - first >= wait, (device, second - first)
        if not wait:
            assert second - first < 0.15
        await work.aclose()


async def new_reply_among_speaking_ones(first_piece_priority: bool, speaking: int) -> int:
    """Steps of ``speaking`` long replies (each already past its first piece) that run between a new
    reply's first step and its first piece, which it releases at its fifth step."""
    log: list[tuple[str, float]] = []
    # no wait after a first piece here: only the order of the steps is looked at
    work = scheduler(log, 0, "", first_piece_priority=first_piece_priority, first_piece_yield_ms_per_char=0,
                     max_active=speaking + 1)  # all of them admitted, whatever this machine's cores  # fmt: skip
    replies = iter([FakeReply(log, 400, "Aye,", "speaking", piece_at=1) for _ in range(speaking)]
                   + [FakeReply(log, 10, "Well met,", "new", piece_at=5)])  # fmt: skip
    work._engine.begin = lambda request: next(replies)
    new_piece = asyncio.Event()

    async def reply(new: bool) -> None:
        async for event in work.generate(SimpleNamespace(conversation_id="")):
            if new and isinstance(event, Sentence):
                new_piece.set()

    long = [asyncio.create_task(reply(False)) for _ in range(speaking)]
    await eventually(lambda: sum(kind == "speaking" for kind, _ in log) >= 3 * speaking)
    new = asyncio.create_task(reply(True))
    piece = asyncio.create_task(new_piece.wait())
    await asyncio.wait([new, piece], return_when=asyncio.FIRST_COMPLETED)
    if not piece.done():  # the new reply ended without a first piece: say why rather than wait forever
        piece.cancel()
        new.result()
        raise AssertionError("the new reply ended without a first piece")
    for task in [*long, new]:
        task.cancel()
    await asyncio.gather(*long, new, return_exceptions=True)
    await work.aclose()
    kinds = [kind for kind, _ in log]
    start, end = kinds.index("new"), len(kinds) - 1 - kinds[::-1].index("new")
    return kinds[start:end].count("speaking")


async def test_a_new_replys_first_piece_is_not_delayed_by_replies_already_being_spoken():
    """With first pieces first, the long replies get in between the new reply's steps at most once
    (the step running when it asked); in arrival order, each of them steps between each two of its
    steps, which is what the option changes."""
    speaking = 4
    first_pieces_first = await new_reply_among_speaking_ones(True, speaking)
    arrival_order = await new_reply_among_speaking_ones(False, speaking)
    assert first_pieces_first <= 1, first_pieces_first
    assert arrival_order >= speaking * 4, arrival_order


async def test_past_the_limit_a_reply_is_refused_at_once_and_there_is_room_again_when_one_ends():
    work = scheduler([], reply_tokens=50, piece="Hello there,", threads=1)  # on a CPU: 2 per thread
    held = [work.generate(SimpleNamespace(conversation_id="")) for _ in range(2)]
    for reply in held:
        await reply.__anext__()  # admitted and under way (its first piece is out)
    # a summary in progress meanwhile (it waits for the replies to end) takes no reply's place
    summary = asyncio.create_task(
        work.summarize(SimpleNamespace(persona_id="p", previous_summary="", turns=[]))
    )
    await eventually(lambda: work._active == 3)
    with pytest.raises(ResourceExhausted, match="2 replies are being generated"):
        await work.generate(SimpleNamespace(conversation_id="")).__anext__()
    await held[0].aclose()
    later = work.generate(SimpleNamespace(conversation_id=""))
    await later.__anext__()
    for reply in (held[1], later):
        await reply.aclose()
    await summary
    await work.aclose()


def test_the_default_limit_fits_the_device():
    assert admission_limit(0, "cpu", threads=2) == 4  # every reply in progress shares the cores
    assert admission_limit(0, "cuda", threads=2) == 16
    assert admission_limit(3, "cpu", threads=2) == 3  # as configured
