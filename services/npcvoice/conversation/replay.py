"""Turns the game was told are done while Redis was away: queued in order and written back as soon as Redis
answers, bounded, and kept on local disk (when ``spool_file`` is set) so a gateway restarted meanwhile
still writes them.

The spool is append-only JSON lines: each queued turn, then a ``{"done": 1}`` line per turn written to
Redis, in order; a restart replays the turns not yet marked done. It is removed once the queue is empty.
A gateway killed between a Redis write and its mark writes that one turn twice; no acknowledged turn is
lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client import Counter

from npcvoice.conversation.memory import MemoryStore, Retention, TurnRecord
from npcvoice.conversation.metrics import PENDING_WRITES
from npcvoice.runtime.errors import ResourceExhausted, Unavailable
from npcvoice.turns import Turn

log = logging.getLogger("npcvoice.conversation")

REFUSED_TURNS = Counter(
    "npcvoice_conversation_refused_turns_total",
    "Turns refused because too many finished turns were waiting for Redis.",
)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[TurnRecord]:
        """The turns not yet marked done (a torn last line, from a crash mid-write, is skipped)."""
        if not self.path.exists():
            return []
        records: list[TurnRecord] = []
        done = 0
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                log.warning("skipping a torn line in %s", self.path)
                continue
            if "done" in entry:
                done += 1
            else:
                turns = [Turn(**turn) for turn in entry.pop("turns")]
                replaces = entry.pop("replaces", None)
                records.append(TurnRecord(turns=turns, replaces=replaces and Turn(**replaces), **entry))
        return records[done:]

    def rewrite(self, records: list[TurnRecord]) -> None:
        """Start the file afresh with ``records`` (at a restart: a torn last line must not swallow the
        next one appended)."""
        if not records:
            self.clear()
            return
        fresh = self.path.with_suffix(".tmp")
        with fresh.open("w") as file:
            file.writelines(json.dumps(asdict(record)) + "\n" for record in records)
            file.flush()
            os.fsync(file.fileno())
        fresh.replace(self.path)

    def add(self, record: TurnRecord) -> None:
        self._append(json.dumps(asdict(record)))

    def written(self) -> None:
        self._append('{"done": 1}')

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())


@dataclass
class _Queued:
    record: TurnRecord
    spooled: bool = False


class ReplayQueue:
    def __init__(
        self,
        store: MemoryStore,
        retention: Callable[[str], Retention],
        *,
        limit: int,
        spool_file: Path | None,
        retry_interval_s: float,
        write_timeout_s: float,
        on_degraded: Callable[[bool], Awaitable[None]],
    ) -> None:
        self._store = store
        self._retention = retention  # what an NPC keeps, by its id
        self._limit = limit
        self._spool = Spool(spool_file) if spool_file else None
        self._retry_interval_s = retry_interval_s
        self._write_timeout_s = write_timeout_s
        self._on_degraded = on_degraded
        self._queue: deque[_Queued] = deque()
        self._lock = asyncio.Lock()
        self._replay: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def check_room(self) -> None:
        """RESOURCE_EXHAUSTED for a new turn while the queue is full (back-pressure: no turn is dropped)."""
        if len(self._queue) >= self._limit:
            REFUSED_TURNS.inc()
            raise ResourceExhausted(
                f"the memory store has been away for a while and {len(self._queue)} finished turns are "
                "waiting for it; try again once it is back"
            )

    async def restore(self) -> None:
        """Queue what the spool holds from before a restart, and start writing it."""
        if self._spool is None:
            return
        records = self._spool.load()
        self._spool.rewrite(records)
        if records:
            log.info(
                "replaying %d turns kept in %s while the memory store was away",
                len(records),
                self._spool.path,
            )
            self._queue.extend(_Queued(record, spooled=True) for record in records)
            PENDING_WRITES.set(len(self._queue))
            await self._waiting()

    async def add(self, record: TurnRecord) -> bool:
        """Write ``record`` after those queued before it, or queue it; True if it is in Redis now."""
        self._queue.append(_Queued(record))
        PENDING_WRITES.set(len(self._queue))
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self.flush()
        except TimeoutError:
            pass
        if not self._queue:
            return True
        if self._spool is not None:
            for queued in self._queue:
                if not queued.spooled:
                    self._spool.add(queued.record)
                    queued.spooled = True
        await self._waiting()
        return False

    async def flush(self) -> None:
        """Write queued turns in order; stop at the first failure (they stay queued). One flush at a
        time: two sessions flushing at once would write the same queued turn twice."""
        async with self._lock:
            while self._queue:
                queued = self._queue[0]
                try:
                    await self._store.record_turn(queued.record, self._retention(queued.record.npc_id))
                except Unavailable:
                    return
                self._queue.popleft()
                PENDING_WRITES.set(len(self._queue))
                if queued.spooled and self._spool is not None:
                    self._spool.written()
            if self._spool is not None:
                self._spool.clear()

    async def _waiting(self) -> None:
        await self._on_degraded(True)
        if self._replay is None or self._replay.done():
            self._replay = asyncio.create_task(self._replay_until_written())

    async def _replay_until_written(self) -> None:
        while self._queue:
            await asyncio.sleep(self._retry_interval_s)
            try:
                async with asyncio.timeout(self._write_timeout_s):
                    await self.flush()
            except TimeoutError:
                continue
        log.info("memory store is back; every queued turn is written")
        await self._on_degraded(False)

    def cancel(self) -> None:
        if self._replay is not None:
            self._replay.cancel()
