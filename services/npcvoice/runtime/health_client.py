"""Ask a service for its standard gRPC health status (used by the launcher, docker healthchecks, tests)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check_health(
    address: str,
    service: str = "",
    timeout_s: float = 2.0,
    tls_ca_file: Path | None = None,
    tls_server_name: str = "",
) -> str:
    """The status name ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE" if nothing answered in time. With
    ``tls_ca_file``, over TLS (Kubernetes' own gRPC probes cannot speak TLS; an exec probe runs this)."""
    if tls_ca_file is None:
        channel = grpc.insecure_channel(address)
    else:
        options = [("grpc.ssl_target_name_override", tls_server_name)] if tls_server_name else []
        credentials = grpc.ssl_channel_credentials(root_certificates=tls_ca_file.read_bytes())
        channel = grpc.secure_channel(address, credentials, options=options)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            return "UNKNOWN_SERVICE" if code == grpc.StatusCode.NOT_FOUND else "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def wait_until_serving(
    address: str,
    process: subprocess.Popen[bytes],
    service: str = "",
    *,
    name: str = "service",
    timeout_s: float = 120.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Wait for a service process to report SERVING; RuntimeError if it exits, times out or is stopped."""
    deadline = time.monotonic() + timeout_s
    while check_health(address, service, timeout_s=1.0) != "SERVING":
        if should_stop():
            raise RuntimeError(f"stopped before {name} was SERVING")
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not SERVING after {timeout_s:.0f} s")
        time.sleep(0.1)
