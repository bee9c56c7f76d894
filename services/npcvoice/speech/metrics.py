"""Prometheus metrics of the speech service."""

from __future__ import annotations

from prometheus_client import Counter

FULL_WINDOW_RETRIES = Counter(
    "npcvoice_speech_full_window_retries_total",
    "Transcriptions of the short fit window decoded again in Whisper's full 30 s window, by why: the fit "
    "window's text repeated itself (repeat) or Whisper doubted it (unlikely).",
    ["reason"],
)
