"""A bounded pool of worker threads for blocking model calls (transcription, synthesis).

Model calls release the GIL, so threads give real parallelism up to ``workers``. Beyond that, up to
``max_waiting`` calls wait their turn; any more are refused with RESOURCE_EXHAUSTED at once rather than
queueing without bound. A call that is cancelled while waiting never runs; one already running finishes
in its thread (a model call cannot be interrupted), and its result is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from npcvoice.runtime.errors import ResourceExhausted

P = ParamSpec("P")
T = TypeVar("T")


class WorkerPool:
    def __init__(self, name: str, workers: int, max_waiting: int) -> None:
        self.name = name
        self.workers = workers
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._slots = asyncio.Semaphore(workers)
        self._admitted = 0

    @property
    def busy(self) -> bool:
        """True when a new call would have to wait for a worker."""
        return self._admitted >= self.workers

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._admitted >= self.workers + self.max_waiting:
            raise ResourceExhausted(
                f"{self.name} workers busy: {self.workers} running, {self.max_waiting} waiting; retry later"
            )
        self._admitted += 1
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))
        finally:
            self._admitted -= 1

    async def aclose(self) -> None:
        """Drop calls still waiting; running ones finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
