"""The worker pool's order (issue #13): waiting calls run by priority, then by arrival, and a call
cancelled while waiting neither runs nor keeps a worker. The calls are plain Python functions held on
an event, so the order is decided by the pool alone (no model here: the dialogue's use of it is in
test_dialogue_scheduling.py)."""

from __future__ import annotations

import asyncio
import threading

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
