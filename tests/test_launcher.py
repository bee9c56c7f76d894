"""The dev loop's failures, as a new user meets them: a Redis or a gRPC port already taken, a missing model,
a bad config file, a service that keeps crashing. Each is one line naming what failed, why and what to do,
without a traceback, and `npcvoice up` exits non-zero. A Redis other than npcvoice's own is used only on
purpose (--redis-url), and then said plainly."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from npcvoice.launcher import Launcher, ServiceProcess
from npcvoice.redis_server import RedisPortTaken, RedisServer
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.ports import ListenProblem, free_port, listen_problem
from npcvoice.runtime.server import ServiceHost, StartupError
from npcvoice.supervisor import GaveUp, RestartPolicy, StartFailed, Supervisor
from tests.conftest import REPO_ROOT
from tests.support import probe


def npcvoice(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "npcvoice", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


def error_lines(output: str) -> list[str]:
    """The lines at error level, JSON (the services') or text (the launcher's)."""
    found = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and entry.get("level") == "error":
            found.append(str(entry["message"]))
        elif entry is None and (" ERROR " in line or line.startswith("npcvoice ")):
            found.append(line)
    return found


@pytest.fixture
def other_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that is not npcvoice's: someone's own, already on the port."""
    server = RedisServer(tmp_path / "someone-elses-redis", free_port())
    server.start()
    yield server
    server.stop()


def test_up_refuses_a_redis_port_taken_by_another_redis_and_says_what_to_do(tmp_path, other_redis):
    with redis.Redis(port=other_redis.port) as theirs:
        theirs.set("their-key", "their value")
    result = npcvoice("up", "--data-dir", str(tmp_path / "data"), "--redis-port", str(other_redis.port))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    [line] = error_lines(output)
    assert (
        f"port {other_redis.port} on 127.0.0.1 is already in use, by another Redis (pid {other_redis.pid})"
        in line
    )
    assert "--redis-port" in line and f"--redis-url redis://127.0.0.1:{other_redis.port}/0" in line
    assert "Traceback" not in output and "redis listening" not in output
    assert other_redis.exit_code() is None  # theirs is left alone, and nothing of ours went into it
    with redis.Redis(port=other_redis.port) as theirs:
        assert theirs.keys("*") == [b"their-key"]


def test_a_redis_that_answers_in_place_of_ours_is_not_taken_for_ours(tmp_path, other_redis, monkeypatch):
    # The port check and the start race with anyone else; the pid of the answering server settles it.
    checks: list[int] = []

    def seen_free_once(host: str, port: int) -> ListenProblem | None:
        checks.append(port)
        return listen_problem(host, port) if len(checks) > 1 else None

    monkeypatch.setattr("npcvoice.redis_server.listen_problem", seen_free_once)
    ours = RedisServer(tmp_path / "ours", other_redis.port)
    with pytest.raises(RedisPortTaken, match=f"another Redis \\(pid {other_redis.pid}\\)"):
        ours.start()
    assert ours.exit_code() is not None  # ours did not stay behind


def test_an_existing_redis_is_used_only_on_purpose_and_said_plainly(other_redis, caplog):
    with redis.Redis(port=other_redis.port) as theirs:  # a Redis that keeps nothing on disk
        theirs.config_set("appendonly", "no")
        theirs.config_set("save", "")
    launcher = Launcher([], redis_url=other_redis.url)
    with caplog.at_level(logging.INFO, logger="npcvoice.launcher"):
        launcher.start()
        launcher.stop()
    said = [r.getMessage() for r in caplog.records]
    assert any(
        f"using the existing Redis at {other_redis.url} (not started by npcvoice: pid {other_redis.pid}" in m
        and "AOF off, RDB snapshots off" in m
        for m in said
    ), said
    assert any("keeps nothing on disk" in m for m in said if m.startswith(f"the Redis at {other_redis.url}"))
    assert other_redis.exit_code() is None  # not ours to stop


def test_up_with_a_grpc_port_taken_says_which_service_which_port_and_what_to_do(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "suite.yaml"
        config.write_text(f"face:\n  port: {port}\n  metrics_port: {free_port()}\n")
        redis_port = free_port()
        result = npcvoice("up", "--services", "face", "--config", str(config),
                          "--data-dir", str(tmp_path / "data"), "--redis-port", str(redis_port))  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    launcher_line = next(line for line in error_lines(output) if "npcvoice.launcher" in line)
    assert (
        f"face exited with code 2 while starting: face cannot start: port {port} on 127.0.0.1 is already in use"
        in launcher_line
    )
    assert "NPCVOICE_FACE_PORT" in launcher_line
    assert "Traceback" not in output
    assert listen_problem("127.0.0.1", redis_port) is None  # its Redis was stopped


async def test_a_second_server_on_a_port_in_use_fails_instead_of_sharing_it(monkeypatch):
    first = ServiceHost("probe", probe.REGISTRATION, ServerSettings(port=free_port()))
    await first.start()
    try:
        second = ServiceHost("probe", probe.REGISTRATION, ServerSettings(port=first.port))
        with pytest.raises(StartupError, match=f"port {first.port} on 127.0.0.1 is already in use"):
            await second.start()
        # The same when the port is taken after the check: gRPC's own bind refuses (no SO_REUSEPORT).
        monkeypatch.setattr(ServiceHost, "_check_ports_free", lambda self: None)
        racing = ServiceHost("probe", probe.REGISTRATION, ServerSettings(port=first.port))
        with pytest.raises(StartupError, match=f"port {first.port} on 127.0.0.1 is already in use"):
            await racing.start()
        metrics = ServiceHost("probe", probe.REGISTRATION, ServerSettings(port=0, metrics_port=first.port))
        with pytest.raises(StartupError, match="give probe another metrics_port"):
            await metrics.start()
    finally:
        await first.stop(grace=0)


def test_a_missing_model_or_a_bad_config_file_is_one_line_with_the_fix_and_the_traceback_only_in_debug(
    tmp_path,
):
    missing = ["serve", "dialogue", "--port", "0", "--option", f"models_dir={tmp_path / 'no-models'}"]
    result = npcvoice(*missing)
    assert result.returncode != 0
    [line] = error_lines(result.stderr)
    assert (
        line.startswith("dialogue cannot start: the dialogue model is not prepared")
        and "prepare-model" in line
    )
    assert "Traceback" not in result.stderr
    debug = npcvoice(*missing, "--log-level", "debug")
    assert debug.returncode == result.returncode and "Traceback" in debug.stderr

    config = tmp_path / "bad.yaml"
    config.write_text("face:\n  port: [1\n")
    result = npcvoice("serve", "face", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(config) in result.stderr and "line 2" in result.stderr
    result = npcvoice("up", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2 and result.stderr.startswith(f"npcvoice up: {config}")
    assert not (tmp_path / "data").exists()  # nothing started


class Crasher(ServiceProcess):
    """A child that serves from its start and crashes after a moment, every time."""

    def __init__(self, lifetime_s: float) -> None:
        self.spawns = 0
        script = ("import sys, time; print('up, crashing soon', file=sys.stderr, flush=True); "
                  f"time.sleep({lifetime_s}); sys.exit(3)")  # fmt: skip
        super().__init__("crasher", [sys.executable, "-c", script], "nowhere", 0)

    def spawn(self) -> None:
        self.spawns += 1
        super().spawn()

    def ready(self) -> bool:
        return self.exit_code() is None


def test_a_child_that_keeps_crashing_is_restarted_with_growing_delays_then_stops_all_with_its_last_lines(
    caplog,
):
    policy = RestartPolicy(first_delay_s=0.1, max_delay_s=0.3, max_restarts=3)
    assert [RestartPolicy().delay_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    supervisor = Supervisor(policy)
    crasher = Crasher(lifetime_s=0.3)
    supervisor.start([crasher], timeout_s=30, should_stop=lambda: False)
    deadline = time.monotonic() + 60
    with caplog.at_level(logging.INFO, logger="npcvoice.launcher"), pytest.raises(GaveUp) as gave_up:
        while time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)
    supervisor.stop()
    message = str(gave_up.value)
    assert message.startswith("crasher exited with code 3 and keeps crashing (4 times in a row); stopping")
    assert message.endswith(
        "Its last log lines:\n  up, crashing soon\n  up, crashing soon\n  up, crashing soon\n  up, crashing soon"
    )
    assert crasher.spawns == 4
    delays = [r.args[2] for r in caplog.records if "restarting it in" in r.msg]
    assert delays == [0.1, 0.2, 0.3]
    assert sum("crasher SERVING again" in r.getMessage() for r in caplog.records) == 3


def test_a_child_that_fails_while_starting_is_reported_with_the_reason_it_logged():
    error = json.dumps({"level": "error", "service": "face", "message": "face cannot start: the reason"})
    script = f"import sys; print('starting', file=sys.stderr); print({error!r}, file=sys.stderr); sys.exit(2)"
    child = ServiceProcess("face", [sys.executable, "-c", script], "127.0.0.1:1", 0)
    supervisor = Supervisor()
    with pytest.raises(StartFailed) as failed:
        supervisor.start([child], timeout_s=30, should_stop=lambda: False)
    supervisor.stop()
    assert str(failed.value) == "face exited with code 2 while starting: face cannot start: the reason"


def test_free_ports_are_distinct_and_outside_the_range_outgoing_connections_take_ports_from():
    """A port from the kernel's bind(0) can be taken, before the service meant to have it starts, by the
    source port of some other process's outgoing connection (CI saw a service's metrics port go that way)."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low, high = map(int, ephemeral.read_text().split()) if ephemeral.exists() else (32768, 60999)
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not [port for port in ports if low <= port <= high]
    assert all(listen_problem("127.0.0.1", port) is None for port in ports)
