"""Helpers shared by the benchmarks: run a real service process, time things, print tables."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def service_process(name: str, *extra: str, timeout_s: float = 120.0, port: int = 0) -> Iterator[str]:
    """Run ``npcvoice serve NAME`` as its own process, as in production; yields its address."""
    with running_service(name, *extra, timeout_s=timeout_s, port=port) as (address, _):
        yield address


@contextlib.contextmanager
def running_service(
    name: str, *extra: str, timeout_s: float = 120.0, port: int = 0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``service_process`` that also yields the process (its pid, for the soak's memory readings);
    ``port`` 0 takes a free one."""
    from npcvoice.runtime.health_client import wait_until_serving
    from npcvoice.runtime.ports import free_port

    port = port or free_port()
    command = [sys.executable, "-m", "npcvoice", "serve", name, "--port", str(port), "--log-level", "warning",
               *extra]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=os.environ)
    address = f"127.0.0.1:{port}"
    try:
        wait_until_serving(address, process, name=name, timeout_s=timeout_s)
        yield address, process
    finally:
        process.terminate()
        process.wait(30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def p50(values: list[float]) -> float:
    return statistics.median(values)


def speech_end_s(speech: Any, rate: int) -> float:
    """Where speech ends in a recording: after its last sample above -40 dBFS (its length if none is)."""
    import numpy as np

    voiced = np.flatnonzero(np.abs(speech) > 0.01)
    return float(voiced[-1] + 1) / rate if voiced.size else len(speech) / rate


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def generate_blocking(engine: Any, request: Any) -> Any:
    """One reply of the dialogue engine (a DialogueEngine, a TurnRequest) generated to its end in this
    thread, as the service would step it; its GenerationSummary."""
    generation = engine.begin(request)
    while not generation.prefill_step():
        pass
    while not generation.done:
        generation.decode_step()
    generation.close()
    return generation.summary()


# What processes cost, from /proc (Linux): a bench's own services, whatever started them.


def children(root: int) -> list[int]:
    """Every live process below ``root`` (not ``root`` itself: that is the player, not the system)."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        below = [pid for pid, parent in parent_of.items() if parent in frontier]
        found += below
        frontier = below
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes so far (the fields after the command name: state is the first)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_mb(pids: list[int]) -> float:
    """The processes' peak resident memory (VmHWM), summed: each one's own peak, not the peak of the sum."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            total += int(next(line for line in status if line.startswith("VmHWM")).split()[1])
    return total / 1024


@contextlib.contextmanager
def http_process(command: list[str], probe_url: str, name: str, timeout_s: float = 120.0) -> Iterator[None]:
    """``command`` as a process, once ``probe_url`` answers; terminated afterwards."""
    import time
    import urllib.request

    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(probe_url, timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{name} did not start: see its log above") from None
                time.sleep(0.3)
        yield
    finally:
        process.terminate()
        process.wait(30)
