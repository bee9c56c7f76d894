"""A bounded pool of worker threads for blocking model calls (transcription, synthesis, model steps).

Model calls release the GIL, so threads give real parallelism up to ``workers``. Beyond that, up to
``max_waiting`` calls wait their turn; any more are refused with RESOURCE_EXHAUSTED at once rather than
queueing without bound. A call that is cancelled while waiting never runs; one already running finishes
in its thread (a model call cannot be interrupted), and its result is dropped.

Waiting calls go in order of priority (lower first), then of arrival: the dialogue runs a reply's steps
up to its first piece before the steps of replies already being spoken, which only need to stay ahead of
playback, and background work after both. Calls of equal priority keep their arrival order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from npcvoice.runtime import timeline
from npcvoice.runtime.errors import ResourceExhausted

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_PRIORITY = 1


class WorkerPool:
    def __init__(self, name: str, workers: int, max_waiting: int) -> None:
        self.name = name
        self.workers = workers
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._free = workers
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap: (priority, arrival, turn)
        self._arrivals = itertools.count()
        self._admitted = 0

    @property
    def busy(self) -> bool:
        """True when a new call would have to wait for a worker."""
        return self._admitted >= self.workers

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run_at(DEFAULT_PRIORITY, function, *args, **kwargs)

    async def run_at(self, priority: int, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` with a ``priority``: a waiting call of a lower number gets the next free worker first."""
        label = getattr(function, "__name__", "call")
        return await self.run_as(label, priority, function, *args, **kwargs)

    async def run_as(
        self, label: str, priority: int, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``run_at``, the call named ``label`` in the profiling timeline (``runtime.timeline``)."""
        if self._admitted >= self.workers + self.max_waiting:
            raise ResourceExhausted(
                f"{self.name} workers busy: {self.workers} running, {self.max_waiting} waiting; retry later"
            )
        self._admitted += 1
        queued = time.monotonic()
        try:
            await self._acquire(priority)
            try:
                loop = asyncio.get_running_loop()
                call = lambda: function(*args, **kwargs)  # noqa: E731
                if not timeline.enabled():
                    return await loop.run_in_executor(self._executor, call)
                return await loop.run_in_executor(self._executor, self._timed, label, queued, call)
            finally:
                self._release()
        finally:
            self._admitted -= 1

    def _timed(self, label: str, queued: float, call: Callable[[], T]) -> T:
        started, cpu = time.monotonic(), time.thread_time()
        try:
            return call()
        finally:
            timeline.record(self.name, label, queued, started, time.monotonic(), time.thread_time() - cpu)

    async def _acquire(self, priority: int) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the worker was handed over just as the call was cancelled: pass it on
            raise  # (a cancelled turn stays in the heap and is skipped when its time comes)

    def _release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

    async def aclose(self) -> None:
        """Drop calls still waiting; running ones finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
