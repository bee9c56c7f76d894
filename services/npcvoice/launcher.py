"""``npcvoice up``: a real Redis, then every service as its own process; waits until all report SERVING
and stops them all cleanly on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from npcvoice.catalog import REDIS_PORT, SERVICES, START_ORDER
from npcvoice.redis_server import RedisServer
from npcvoice.runtime.config import load_service_config
from npcvoice.runtime.health_client import wait_until_serving

log = logging.getLogger("npcvoice.launcher")


@dataclass
class RunningService:
    name: str
    address: str
    metrics_port: int
    process: subprocess.Popen[bytes]


class Launcher:
    def __init__(
        self,
        services: list[str],
        *,
        config_file: Path | None = None,
        data_dir: Path = Path(".data"),
        redis_port: int = REDIS_PORT,
        persona_dir: Path = Path("npc_personas"),
        extra_args: list[str] | None = None,
    ) -> None:
        unknown = [s for s in services if s not in SERVICES]
        if unknown:
            raise ValueError(f"unknown service {unknown[0]!r}; known: {', '.join(START_ORDER)}")
        self.services = [s for s in START_ORDER if s in services]
        self.config_file = config_file
        self.redis = RedisServer(data_dir / "redis", redis_port)
        self.persona_dir = persona_dir.resolve()
        self.extra_args = list(extra_args or [])
        self.running: list[RunningService] = []
        self.stop_requested = False

    def _command(self, name: str) -> tuple[list[str], str, int]:
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
        if name == "conversation":
            options["redis_url"] = self.redis.url
            for downstream in ("speech", "dialogue", "voice", "face"):
                downstream_port = load_service_config(
                    downstream, default_port=SERVICES[downstream].port, args=args
                ).server.port
                options[f"{downstream}_address"] = f"127.0.0.1:{downstream_port}"
        for key, value in options.items():
            if key not in config.engine:
                command += ["--option", f"{key}={value}"]
        return command, f"{config.server.host}:{port}", metrics_port

    def start(self, timeout_s: float = 180.0) -> None:
        self.redis.start()
        log.info("redis listening on %s (data in %s, AOF on)", self.redis.url, self.redis.data_dir)
        for name in self.services:
            command, address, metrics_port = self._command(name)
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            self.running.append(RunningService(name, address, metrics_port, process))
        self.wait_until_serving(timeout_s)

    def wait_until_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for service in self.running:  # they start in parallel; waiting in turn costs nothing extra
            wait_until_serving(
                service.address,
                service.process,
                SERVICES[service.name].grpc_service,
                name=service.name,
                timeout_s=max(0.0, deadline - time.monotonic()),
                should_stop=lambda: self.stop_requested,
            )
            log.info("%s SERVING on %s", service.name, service.address)

    def first_exited(self) -> RunningService | None:
        return next((s for s in self.running if s.process.poll() is not None), None)

    def stop(self, timeout_s: float = 15.0) -> None:
        for service in reversed(self.running):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for service in reversed(self.running):
            try:
                service.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", service.name)
                service.process.kill()
                service.process.wait()
        self.running.clear()
        self.redis.stop()


def run_up(launcher: Launcher) -> int:
    """Start everything, print where it listens, and run until Ctrl-C or SIGTERM."""

    def request_stop(signum: int, frame: object) -> None:
        launcher.stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        launcher.start()
        print(f"\n  {'service':<14}{'gRPC':<22}{'metrics':<10}health")
        print(f"  {'redis':<14}{'127.0.0.1:' + str(launcher.redis.port):<22}{'-':<10}PONG")
        for s in launcher.running:
            print(f"  {s.name:<14}{s.address:<22}{s.metrics_port:<10}SERVING")
        print("\nAll services are SERVING. Ctrl-C stops them.\n", flush=True)
        while not launcher.stop_requested:
            exited = launcher.first_exited()
            if exited is not None:
                log.error(
                    "%s exited with code %s; stopping the suite", exited.name, exited.process.returncode
                )
                return 1
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    finally:
        print("stopping...", flush=True)
        launcher.stop()
        print("stopped.", flush=True)
