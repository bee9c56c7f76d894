"""Where a process's model time goes, for profiling: every call on a worker pool (when it was queued,
started and ended, and the CPU time its thread spent) as one JSON line in the file that the environment
variable ``NPCVOICE_TIMELINE`` names; nothing at all when it is unset.

Times are ``time.monotonic()``, one clock for every process on the machine, so the lines of the five
services and of a client can be laid on one timeline (``bench/voice_turn.py`` does). Lines are appended
with one ``write`` each on a file opened for appending, so processes and threads do not interleave them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

PATH = os.environ.get("NPCVOICE_TIMELINE", "")
_lock = threading.Lock()
_file = None


def enabled() -> bool:
    return bool(PATH)


def record(pool: str, label: str, queued: float, started: float, ended: float, cpu_s: float) -> None:
    """One call on ``pool``: ``label`` (the function), its times on the monotonic clock, its thread's
    CPU seconds."""
    global _file
    line = json.dumps({"pid": os.getpid(), "pool": pool, "label": label, "queued": queued,
                       "started": started, "ended": ended, "cpu": cpu_s}) + "\n"  # fmt: skip
    with _lock:
        if _file is None:
            _file = Path(PATH).open("a", buffering=1)  # noqa: SIM115 (open for the process's life)
        _file.write(line)
