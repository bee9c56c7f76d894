"""README command one, as a user runs it: `npcvoice up` starts a real Redis and every service as its own
process, each answers the standard gRPC health check with SERVING, and Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.catalog import SERVICES
from npcvoice.redis_server import free_port
from tests.conftest import REPO_ROOT


def test_up_starts_redis_and_every_service_serving_and_ctrl_c_stops_them(tmp_path):
    ports = {name: free_port() for name in SERVICES}
    config = tmp_path / "suite.yaml"
    config.write_text(
        "".join(f"{name}:\n  port: {port}\n  metrics_port: {free_port()}\n" for name, port in ports.items())
    )
    redis_port = free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "npcvoice", "up", "--config", str(config), "--data-dir", str(data_dir),
         "--redis-port", str(redis_port)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ, text=True,
    )  # fmt: skip
    try:
        output = ""
        deadline = time.monotonic() + 240
        assert process.stdout is not None
        while "All services are SERVING" not in output:
            line = process.stdout.readline()
            assert line or process.poll() is None, f"launcher exited early:\n{output}"
            output += line
            assert time.monotonic() < deadline, f"not SERVING in time:\n{output}"

        for name, port in ports.items():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                request = health_pb2.HealthCheckRequest(service=SERVICES[name].grpc_service)
                assert stub.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING, name

        with grpc.insecure_channel(f"127.0.0.1:{ports['conversation']}") as channel:
            npcs = conversation_pb2_grpc.ConversationServiceStub(channel).ListNpcs(
                conversation_pb2.ListNpcsRequest(), timeout=5
            )
        assert {n.npc_id for n in npcs.npcs} == {"blacksmith_hilda", "guard_captain_vael", "innkeeper_tobin"}

        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output + rest
        assert "stopped." in rest
        assert "Traceback" not in output + rest
        assert list(data_dir.glob("redis/appendonly*")), "Redis ran without its append-only file"
        for port in ports.values():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    still_up = True
                except grpc.RpcError:
                    still_up = False
            assert not still_up, f"a service on port {port} outlived Ctrl-C"
    finally:
        if process.poll() is None:
            process.kill()
