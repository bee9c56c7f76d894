"""Prometheus metrics of the dialogue service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROMPT_TOKENS = Counter("npcvoice_dialogue_prompt_tokens_total", "Prompt tokens.", ["source"])
COMPLETION_TOKENS = Counter("npcvoice_dialogue_completion_tokens_total", "Tokens generated.")
DROPPED_EVENTS = Counter(
    "npcvoice_dialogue_dropped_events_total", "Emotions and actions the persona does not declare."
)
WARM_PREFIXES = Counter(
    "npcvoice_dialogue_warm_prefixes_total",
    "Persona prompts prefilled ahead, and taken by new conversations.",
    ["event", "persona"],
)
FIRST_TOKEN = Histogram(
    "npcvoice_dialogue_time_to_first_token_seconds",
    "From request to first generated token.",
    ["cached"],
    buckets=(0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 4.0, 8.0),
)
RETRIED_SENTENCES = Counter(
    "npcvoice_dialogue_retried_sentences_total",
    "Sentences that came out as a repeat or a recital and were written again.",
    ["persona"],
)
FALLBACK_REPLIES = Counter(
    "npcvoice_dialogue_fallback_replies_total",
    "Replies that said nothing usable and were replaced by a line of the persona (the last resort).",
    ["persona"],
)
ESCALATIONS = Counter(
    "npcvoice_dialogue_escalations_total",
    "Turns handed to a larger model (dialogue.escalate), by the signal that decided it.",
    ["persona", "reason"],
)
REMOTE_FIRST_TEXT = Histogram(
    "npcvoice_dialogue_remote_first_text_seconds",
    "From the request to a remote model to its first text.",
    ["model"],
    buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 4.0, 8.0),
)
REMOTE_FAILURES = Counter(
    "npcvoice_dialogue_remote_failures_total",
    "Calls to a remote model that failed (timeout, connection, status) or were not made (breaker_open); "
    "the small model answered.",
    ["model", "reason"],
)
REMOTE_TOKENS = Counter(
    "npcvoice_dialogue_remote_tokens_total", "Tokens a remote model reported using.", ["model", "kind"]
)
REMOTE_TOKENS_PER_TURN = Histogram(
    "npcvoice_dialogue_remote_tokens_per_turn",
    "Tokens (prompt and reply) a remote model spent on one turn.",
    ["model"],
    buckets=(100, 250, 500, 1000, 2000, 4000, 8000, 16000),
)
REMOTE_BREAKER_OPEN = Gauge(
    "npcvoice_dialogue_remote_breaker_open", "1 while a remote model's circuit breaker is open.", ["model"]
)
