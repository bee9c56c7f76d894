"""Prometheus metrics shared by every service, exposed on the service's metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPC_LATENCY = Histogram(
    "npcvoice_rpc_duration_seconds",
    "Time from receiving an RPC to finishing it, per service, method and status code.",
    ["service", "method", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
RPC_IN_FLIGHT = Gauge("npcvoice_rpc_in_flight", "RPCs being handled now.", ["service"])
RPC_REJECTED = Counter(
    "npcvoice_rpc_rejected_total", "RPCs refused before reaching the handler.", ["service", "reason"]
)
