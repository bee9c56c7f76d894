"""Keep child processes running, as compose's ``restart: unless-stopped`` does: a child that dies after it
started is started again after a delay that doubles with each crash in a row, and one that keeps crashing
stops the lot, with its last log lines.

The launcher is what knows that a child is down: while one waits for its restart or loads again, this
module logs it; its port is closed meanwhile, so a health probe of it fails (UNREACHABLE), and clients that
reconnect (the gateway's downstream channels, its Redis client) find it again once it is back.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, TypeVar

log = logging.getLogger("npcvoice.launcher")

T = TypeVar("T")


class Child(Protocol):
    """A process the supervisor can start again and again."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    def spawn(self) -> None:
        """Start the process without waiting; an error here is one a restart cannot mend."""

    def ready(self) -> bool:
        """Whether it serves now (a quick check); an error here is one a restart cannot mend."""

    def exit_code(self) -> int | None: ...

    def last_lines(self, count: int = 20) -> list[str]: ...

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM), without waiting."""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask it to stop, wait, and kill it if it does not."""

    def kill(self) -> None: ...


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_restarts: int = 5  # in a row; the crash after them stops the suite
    stable_after_s: float = 30.0  # a child that served this long starts a new row of crashes
    start_timeout_s: float = 180.0  # a restarted child not ready by then is killed: one more crash

    def delay_s(self, crashes: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** (crashes - 1))


class StartFailed(RuntimeError):
    """A child did not come up; the message is one line naming it and, if it said, why."""


class GaveUp(RuntimeError):
    """A child kept crashing; the message names it and ends with its last log lines."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class State(Enum):
    STARTING = "starting"
    SERVING = "serving"
    WAITING = "waiting to restart"


@dataclass
class Watched:
    child: Child
    state: State
    since: float  # when it entered the state
    crashes: int = 0  # in a row
    restart_at: float = 0.0


@dataclass
class Supervisor:
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    # Children in tiers, in start order: a tier starts once the one before serves, and stops after the
    # ones after it (Redis before the services, the services before Redis).
    tiers: list[list[Watched]] = field(default_factory=list)

    def adopt(self, children: Sequence[Child]) -> None:
        """Watch children that were started, and serve, already."""
        self.tiers.append([Watched(child, State.SERVING, time.monotonic()) for child in children])

    def start(self, children: Sequence[Child], timeout_s: float, should_stop: Callable[[], bool]) -> None:
        """Start a tier and wait until each child serves; StartFailed if one exits or is late."""
        tier = [Watched(child, State.STARTING, time.monotonic()) for child in children]
        self.tiers.append(tier)
        for watched in tier:
            watched.child.spawn()
        deadline = time.monotonic() + timeout_s
        starting = list(tier)
        while starting:
            for watched in list(starting):
                code = watched.child.exit_code()
                if code is not None:
                    raise StartFailed(start_failure(watched.child, code))
                if watched.child.ready():
                    log.info("%s SERVING on %s", watched.child.name, watched.child.address)
                    watched.state, watched.since = State.SERVING, time.monotonic()
                    starting.remove(watched)
            if starting and should_stop():
                raise StartFailed(f"stopped before {starting[0].child.name} was SERVING")
            if starting and time.monotonic() > deadline:
                raise StartFailed(f"{starting[0].child.name} not SERVING after {timeout_s:.0f} s")
            if starting:
                time.sleep(0.1)

    def check(self) -> None:
        """One round: restart what died, note what came back. GaveUp when a child keeps crashing."""
        for tier in self.tiers:
            for watched in tier:
                self._check(watched)

    def _check(self, watched: Watched) -> None:
        child, now = watched.child, time.monotonic()
        if watched.state is State.WAITING:
            if now >= watched.restart_at:
                log.info("restarting %s (crashes in a row: %d)", child.name, watched.crashes)
                self._mend_or_give_up(watched, child.spawn)
                watched.state, watched.since = State.STARTING, now
            return
        code = child.exit_code()
        if code is None and watched.state is State.STARTING:
            if self._mend_or_give_up(watched, child.ready):
                log.info("%s SERVING again on %s", child.name, child.address)
                watched.state, watched.since = State.SERVING, now
            elif now - watched.since > self.policy.start_timeout_s:
                log.warning(
                    "%s not SERVING %.0f s after its restart; killing it", child.name, now - watched.since
                )
                child.kill()
                code = child.exit_code()
        if code is not None:
            self._crashed(watched, code)

    def _crashed(self, watched: Watched, code: int) -> None:
        child, now = watched.child, time.monotonic()
        if watched.state is State.SERVING and now - watched.since >= self.policy.stable_after_s:
            watched.crashes = 0
        watched.crashes += 1
        if watched.crashes > self.policy.max_restarts:
            lines = "\n".join(f"  {line}" for line in child.last_lines())
            raise GaveUp(
                f"{child.name} {describe_exit(code)} and keeps crashing ({watched.crashes} times in a row); "
                f"stopping the suite. Its last log lines:\n{lines}"
            )
        delay = self.policy.delay_s(watched.crashes)
        log.warning("%s %s; it is down, restarting it in %.1f s", child.name, describe_exit(code), delay)
        watched.state, watched.since, watched.restart_at = State.WAITING, now, now + delay

    @staticmethod
    def _mend_or_give_up(watched: Watched, step: Callable[[], T]) -> T:
        """Run a restart step; an error from it is one that another restart would meet again."""
        try:
            return step()
        except RuntimeError as exc:
            raise GaveUp(f"{watched.child.name} cannot be restarted: {exc}") from exc

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every child, the last tier first; the children of a tier stop together."""
        for tier in reversed(self.tiers):
            for watched in tier:
                watched.child.terminate()
            deadline = time.monotonic() + timeout_s
            for watched in tier:
                watched.child.stop(max(0.1, deadline - time.monotonic()))
        self.tiers.clear()


def start_failure(child: Child, code: int) -> str:
    """One line: the child, how it ended, and the reason it logged last, if any."""
    reason = last_error(child.last_lines())
    return f"{child.name} {describe_exit(code)} while starting" + (f": {reason}" if reason else "")


def last_error(lines: list[str]) -> str:
    """The message of the last error a service logged (JSON or text), else its last line."""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            return str(entry.get("message", ""))
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
