"""Prometheus metrics of the dialogue service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
