"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY = Histogram(
    "npcvoice_conversation_latency_seconds",
    "Turn latency from the end of the player's speech (or their typed line) to each stage.",
    ["stage"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
PENDING_WRITES = Gauge("npcvoice_conversation_pending_memory_writes", "Turns waiting for Redis to return.")
DRAFTS = Counter(
    "npcvoice_conversation_reply_drafts_total",
    "Replies begun on the player's settled words: used (the final said the same) or dropped.",
    ["outcome"],
)
