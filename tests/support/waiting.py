"""Waiting on a condition instead of for a while: tests poll what they wait for, so a slow machine only
makes them slower, never wrong."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

_fresh = itertools.count()


async def eventually(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if await result if isinstance(result, Awaitable) else result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def fresh_persona(directory: Path, base: str) -> str:
    """A copy of persona ``base`` under a new id that no other test has talked to (so nothing of it is
    cached or prefilled yet); returns the new id."""
    new_id = f"{base}_fresh_{next(_fresh)}_{int(time.time() * 1000)}"
    source = (directory / f"{base}.yaml").read_text()
    (directory / f"{new_id}.yaml").write_text(source.replace(f"id: {base}", f"id: {new_id}"))
    return new_id
