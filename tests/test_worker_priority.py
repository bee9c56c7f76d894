"""The worker pool's order (issue #13): waiting calls run by priority, then by arrival, and a call
cancelled while waiting neither runs nor keeps a worker. The calls are plain Python functions held on
an event, so the order is decided by the pool alone (no model here: the dialogue's use of it is in
test_dialogue_scheduling.py)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import pytest

from npcvoice.runtime.workers import WorkerPool


async def held_pool() -> tuple[WorkerPool, threading.Event, asyncio.Task[bool]]:
    """A pool of one worker, busy until the returned event is set."""
    pool = WorkerPool("test", 1, max_waiting=64)
    gate = threading.Event()
    holder = asyncio.create_task(pool.run(gate.wait))
    await settle()
    assert pool.busy
    return pool, gate, holder


async def settle() -> None:
    """Let every task created so far reach its wait in the pool."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_waiting_call_of_a_lower_priority_number_runs_before_earlier_ones():
    pool, gate, holders = await held_pool()
    order: list[str] = []
    speaking = [asyncio.create_task(pool.run_at(1, order.append, f"speaking-{i}")) for i in range(6)]
    await settle()
    background = asyncio.create_task(pool.run_at(2, order.append, "background"))
    await settle()
    first = asyncio.create_task(pool.run_at(0, order.append, "first-piece"))
    await settle()
    gate.set()
    await asyncio.gather(holders, *speaking, background, first)
    assert order == ["first-piece", *(f"speaking-{i}" for i in range(6)), "background"]
    await pool.aclose()


async def test_a_call_cancelled_while_waiting_never_runs_and_frees_its_place():
    pool, gate, holders = await held_pool()
    ran: list[str] = []
    cancelled = asyncio.create_task(pool.run_at(0, ran.append, "cancelled"))
    kept = asyncio.create_task(pool.run_at(1, ran.append, "kept"))
    await settle()
    cancelled.cancel()
    gate.set()
    await holders
    await kept
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert ran == ["kept"]
    # the worker is free again: the next call runs at once
    assert not pool.busy
    await asyncio.wait_for(pool.run(ran.append, "after"), 10)
    assert ran == ["kept", "after"]
    await pool.aclose()


async def test_with_a_timeline_file_each_call_is_written_with_its_wait_its_run_and_its_cpu(
    tmp_path, monkeypatch
):
    """bench/voice_turn.py lays these lines from every service on one clock: a call that waited for a busy
    worker says so, and one that spun says it used the CPU."""
    from npcvoice.runtime import timeline

    path = tmp_path / "timeline.jsonl"
    monkeypatch.setattr(timeline, "PATH", str(path))
    monkeypatch.setattr(timeline, "_file", None)
    pool, gate, holder = await held_pool()

    def spin() -> None:
        ends = time.thread_time() + 0.05
        while time.thread_time() < ends:
            pass

    waiting = asyncio.create_task(pool.run_as("spin", 1, spin))
    await asyncio.sleep(0.1)
    gate.set()
    await asyncio.gather(holder, waiting)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(c["pool"], c["label"]) for c in lines] == [("test", "wait"), ("test", "spin")]
    held, spun = lines
    assert spun["started"] - spun["queued"] >= 0.09  # it waited for the held worker
    assert spun["started"] >= held["ended"]
    assert spun["cpu"] >= 0.045 and held["cpu"] < 0.02  # a wait on an event costs no CPU
    assert all(c["pid"] == os.getpid() for c in lines)
    await pool.aclose()
