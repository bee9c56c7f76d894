"""``npcvoice up``: a real Redis, then every service as its own process; waits until all report SERVING,
keeps them running (a crashed one is restarted, see supervisor.py) and stops them all cleanly on Ctrl-C
(SIGINT) or SIGTERM.

Redis is npcvoice's own child unless ``--redis-url`` names one to use on purpose; a Redis that merely
answers on the port is never used in its place.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import IO

from redis.exceptions import RedisError

from npcvoice.catalog import DIALOGUE_OPENAI_PORT, REDIS_PORT, SERVICES, START_ORDER
from npcvoice.conversation.redis_urls import parse_redis_url
from npcvoice.redis_server import (
    Persistence,
    RedisServer,
    data_servers,
    read_persistence,
    server_info,
    without_password,
)
from npcvoice.runtime.config import load_service_config
from npcvoice.runtime.health_client import check_health
from npcvoice.service_env import service_environment
from npcvoice.supervisor import RestartPolicy, Supervisor

log = logging.getLogger("npcvoice.launcher")


class ServiceProcess:
    """One service as a child process. Its log passes through the launcher's stderr, and its last lines
    are kept, to say why it failed."""

    def __init__(
        self,
        name: str,
        command: list[str],
        address: str,
        metrics_port: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env  # None: the launcher's own
        self.address = address
        self.metrics_port = metrics_port
        self.process: subprocess.Popen[bytes] | None = None
        self._log: deque[str] = deque(maxlen=50)
        self._passing_on: threading.Thread | None = None

    def spawn(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env
        )
        assert self.process.stderr is not None
        self._passing_on = threading.Thread(target=self._pass_on, args=(self.process.stderr,), daemon=True)
        self._passing_on.start()

    def _pass_on(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            self._log.append(line.rstrip("\n"))
            sys.stderr.write(line)
            sys.stderr.flush()

    def ready(self) -> bool:
        return check_health(self.address, SERVICES[self.name].grpc_service, timeout_s=1.0) == "SERVING"

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def last_lines(self, count: int = 20) -> list[str]:
        if self._passing_on is not None and self.exit_code() is not None:
            self._passing_on.join(timeout=1.0)  # its last words may still be in the pipe
        return list(self._log)[-count:]

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        self.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.name)
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class HttpProcess(ServiceProcess):
    """A process of the suite that serves HTTP: it is ready once ``health_path`` answers 200."""

    health_path = "/"
    scheme, path = "http", "/"  # what ``url`` shows

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}{self.health_path}", timeout=1.0) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}{self.path}"


class PlaygroundProcess(HttpProcess):
    """The writers' page (``npcvoice playground``), started with the suite: it serves once its page does."""

    health_path = "/api/settings"


class EdgeProcess(HttpProcess):
    """The WebSocket edge (``npcvoice edge``), started with the suite."""

    health_path = "/healthz"
    scheme, path = "ws", "/v1/converse"


class Launcher:
    def __init__(
        self,
        services: list[str],
        *,
        config_file: Path | None = None,
        data_dir: Path = Path(".data"),
        redis_port: int = REDIS_PORT,
        redis_url: str | None = None,
        persona_dir: Path = Path("npc_personas"),
        extra_args: list[str] | None = None,
        restart_policy: RestartPolicy | None = None,
        playground_port: int = 0,
        edge_port: int = 0,
    ) -> None:
        unknown = [s for s in services if s not in SERVICES]
        if unknown:
            raise ValueError(f"unknown service {unknown[0]!r}; known: {', '.join(START_ORDER)}")
        self.config_file = config_file
        # None when --redis-url names a Redis to use on purpose: that one is not ours to start or restart.
        self.redis: RedisServer | None = None
        if redis_url:
            self.redis_url = redis_url
        else:
            self.redis = RedisServer(data_dir / "redis", redis_port)
            self.redis_url = self.redis.url
        self.persona_dir = persona_dir.resolve()
        # Turns the gateway holds while Redis is away, on disk, so a gateway restarted meanwhile keeps them.
        self.spool_file = (data_dir / "conversation" / "replay-spool.jsonl").resolve()
        self.openai_url = ""  # the dialogue service's OpenAI-compatible endpoint, when it has one
        self.extra_args = list(extra_args or [])
        # Built now, so that a bad configuration stops the launch before anything has started.
        self.services = [self._service(name) for name in START_ORDER if name in services]
        self.playground = self._playground(playground_port) if playground_port else None
        self.edge = self._edge(edge_port, playground_port) if edge_port else None
        self.supervisor = Supervisor(restart_policy or RestartPolicy())
        self.stop_requested = False

    def _service(self, name: str) -> ServiceProcess:
        entry = SERVICES[name]
        args = argparse.Namespace(config=self.config_file)
        config = load_service_config(name, default_port=entry.port, args=args)
        port = config.server.port
        metrics_port = config.server.metrics_port or entry.metrics_port
        command = [sys.executable, "-m", "npcvoice", "serve", name, "--port", str(port),
                   "--metrics-port", str(metrics_port), *self.extra_args]  # fmt: skip
        if self.config_file:
            command += ["--config", str(self.config_file)]
        options: dict[str, str] = {}
        if name in ("dialogue", "conversation"):
            options["persona_dir"] = str(self.persona_dir)
        if name == "dialogue":  # its OpenAI-compatible endpoint, for tools that speak that protocol
            options["openai_port"] = str(DIALOGUE_OPENAI_PORT)
            openai_port = int(config.engine.get("openai_port", DIALOGUE_OPENAI_PORT))
            self.openai_url = f"http://127.0.0.1:{openai_port}/v1" if openai_port else ""
        if name == "conversation":
            options["redis_url"] = self.redis_url
            options["spool_file"] = str(self.spool_file)
            for downstream in ("speech", "dialogue", "voice", "face"):
                downstream_port = load_service_config(
                    downstream, default_port=SERVICES[downstream].port, args=args
                ).server.port
                options[f"{downstream}_address"] = f"127.0.0.1:{downstream_port}"
        for key, value in options.items():
            if key not in config.engine:
                command += ["--option", f"{key}={value}"]
        env = service_environment(name)  # e.g. speech's own CUDA 12 libraries on a GPU
        return ServiceProcess(name, command, f"{config.server.host}:{port}", metrics_port, env)

    def _edge(self, port: int, playground_port: int) -> EdgeProcess | None:
        """The WebSocket edge for the suite's gateway; the playground's page may use it."""
        gateway = next((s for s in self.services if s.name == "conversation"), None)
        if gateway is None:
            return None
        command = [
            sys.executable,
            "-m",
            "npcvoice",
            "edge",
            "--port",
            str(port),
            "--gateway",
            gateway.address,
        ]
        if playground_port:
            for host in ("127.0.0.1", "localhost"):
                command += ["--origin", f"http://{host}:{playground_port}"]
        if self.config_file:
            command += ["--config", str(self.config_file)]
        return EdgeProcess("edge", command, f"127.0.0.1:{port}", 0)

    def _playground(self, port: int) -> PlaygroundProcess | None:
        """The page for the suite's gateway, when the gateway is one of the services started."""
        gateway = next((s for s in self.services if s.name == "conversation"), None)
        if gateway is None:
            return None
        command = [sys.executable, "-m", "npcvoice", "playground", "--port", str(port),
                   "--gateway", gateway.address, "--personas", str(self.persona_dir)]  # fmt: skip
        if self.config_file:
            command += ["--config", str(self.config_file)]  # for the gateway's API key
        return PlaygroundProcess("playground", command, f"127.0.0.1:{port}", 0)

    def start(self, timeout_s: float = 180.0) -> None:
        if self.redis is None:
            self._check_existing_redis()
        else:
            self.redis.start()
            self.supervisor.adopt([self.redis])
            log.info("redis listening on %s (pid %s, data in %s, %s)", self.redis.url, self.redis.pid,
                     self.redis.data_dir, self.redis.persistence())  # fmt: skip
        self.supervisor.start(self.services, timeout_s, should_stop=lambda: self.stop_requested)
        # after the gateway: the page lists its NPCs; the edge carries its conversations
        extras = [p for p in (self.playground, self.edge) if p is not None]
        if extras:
            self.supervisor.start(extras, timeout_s, should_stop=lambda: self.stop_requested)

    def _check_existing_redis(self) -> None:
        """Say plainly which Redis holds the memory, and what it keeps on disk: each master of a Redis
        Cluster, or the master a Sentinel names (the one it names after a failover is not checked)."""
        where = without_password(self.redis_url)
        servers = data_servers(self.redis_url)
        if not servers:
            raise RuntimeError(f"redis: nothing answers at --redis-url {where}")
        kind = parse_redis_url(self.redis_url).kind
        role = {"cluster": "a master of the Redis Cluster", "sentinel": "the master the Sentinel names"}
        for server in servers:
            self._check_server(server, f", {role[kind]} at {where}" if kind in role else "")

    def _check_server(self, url: str, role: str) -> None:
        where = without_password(url)
        info = server_info(url, timeout_s=2.0)
        if info is None:
            raise RuntimeError(f"redis: nothing answers at {where}{role}")
        persistence: Persistence | None = None
        try:
            persistence = read_persistence(url)
            kept = str(persistence)
        except RedisError as exc:
            kept = f"persistence unknown: CONFIG GET refused ({exc})"
        log.info("using the existing Redis at %s (not started by npcvoice: pid %s, version %s; %s)%s",
                 where, info.get("process_id"), info.get("redis_version"), kept, role)  # fmt: skip
        if persistence is not None and not persistence.keeps_anything:
            log.warning("the Redis at %s keeps nothing on disk: NPC memory is lost when it restarts "
                        "(turn on appendonly there, or drop --redis-url to use npcvoice's own Redis)",
                        where)  # fmt: skip

    def stop(self, timeout_s: float = 15.0) -> None:
        self.supervisor.stop(timeout_s)


def run_up(launcher: Launcher) -> int:
    """Start everything, print where it listens, and run until Ctrl-C or SIGTERM."""

    def request_stop(signum: int, frame: object) -> None:
        launcher.stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        launcher.start()
        print_table(launcher)
        while not launcher.stop_requested:
            launcher.supervisor.check()
            time.sleep(0.2)
        return 0
    except (RuntimeError, RedisError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        print("stopping...", flush=True)
        launcher.stop()
        print("stopped.", flush=True)


def print_table(launcher: Launcher) -> None:
    print(f"\n  {'service':<14}{'gRPC':<22}{'metrics':<10}health")
    if launcher.redis is None:
        print(f"  {'redis':<14}{without_password(launcher.redis_url)}  (an existing Redis, not npcvoice's)")
    else:
        print(f"  {'redis':<14}{'127.0.0.1:' + str(launcher.redis.port):<22}{'-':<10}PONG")
    for s in launcher.services:
        print(f"  {s.name:<14}{s.address:<22}{s.metrics_port:<10}SERVING")
    if launcher.openai_url:
        print(f"\n  OpenAI API    {launcher.openai_url}  (a persona id is the model: dialogue/openai_api.py)")
    if launcher.edge is not None:
        print(f"\n  WebSocket     {launcher.edge.url}  (the conversation without gRPC: npcvoice/edge/app.py)")
    if launcher.playground is not None:
        print(f"\n  playground    {launcher.playground.url}  (edit personas and talk to the NPCs)")
    print("\nAll services are SERVING. Ctrl-C stops them.\n", flush=True)
