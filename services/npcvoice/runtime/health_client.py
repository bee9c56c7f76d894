"""Ask a service for its standard gRPC health status (used by the launcher, docker healthchecks, tests)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check_health(address: str, service: str = "", timeout_s: float = 2.0) -> str:
    """The status name ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE" if nothing answered in time."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            return "UNKNOWN_SERVICE" if code == grpc.StatusCode.NOT_FOUND else "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
