"""SIGTERM drains in-flight calls: a real service process, a real signal, a call that is still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npcvoice.runtime.health_client import wait_until_serving
from npcvoice.runtime.ports import free_port
from tests.conftest import REPO_ROOT
from tests.support import probe


def poll_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_sigterm_lets_in_flight_calls_finish_refuses_new_ones_and_exits_cleanly():
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.probe", "--port", str(port), "--grace", "10"],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        # the repo root, for tests.support; whatever PYTHONPATH already holds stays after it
        env=os.environ
        | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))},
    )
    try:
        wait_until_serving(address, process, name="probe service", timeout_s=20)
        results: dict[str, object] = {}

        def slow_call() -> None:
            with grpc.insecure_channel(address) as channel:
                try:
                    results["slow"] = channel.unary_unary(probe.method("Slow"))(b"1.5", timeout=10)
                except grpc.RpcError as exc:
                    results["slow"] = exc

        caller = threading.Thread(target=slow_call)
        caller.start()
        with grpc.insecure_channel(address) as channel:
            running = channel.unary_unary(probe.method("Running"))
            poll_until(lambda: running(b"", timeout=1) == b"1")  # the slow call is in the server
        process.send_signal(signal.SIGTERM)

        def health() -> int | None:
            with grpc.insecure_channel(address) as channel:
                try:
                    request = health_pb2.HealthCheckRequest()
                    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=1).status)
                except grpc.RpcError:
                    return None  # already refusing: also not serving

        poll_until(lambda: health() != health_pb2.HealthCheckResponse.SERVING)
        draining_before_the_call_ended = "slow" not in results
        with grpc.insecure_channel(address) as channel:
            try:
                channel.unary_unary(probe.method("Echo"))(b"late", timeout=1)
                late_call = "accepted"
            except grpc.RpcError as exc:
                late_call = exc.code().name

        caller.join(15)
        assert results["slow"] == b"finished", results["slow"]
        assert draining_before_the_call_ended  # health said NOT_SERVING while the call still ran
        # refused: UNAVAILABLE once the port closes, CANCELLED if it came as the server began to stop
        assert late_call in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")
        assert process.wait(15) == 0
        assert b"Traceback" not in process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
