"""How a reply's emotions and actions, and game events, move what the NPC feels about the player (affinity
and trust).

Both stay within -1 and 1. Emotions the table does not name (neutral, surprise...) move nothing; every
action the NPC takes for the player adds a little trust.
"""

from __future__ import annotations

from collections.abc import Iterable

# (affinity, trust) moved by each emotion the NPC shows in a reply.
EMOTION_EFFECT = {
    "joy": (0.05, 0.02),
    "anger": (-0.08, -0.04),
    "disgust": (-0.06, -0.03),
    "fear": (-0.02, -0.05),
    "sadness": (0.01, 0.0),
}
ACTION_EFFECT = (0.0, 0.02)


def moved(
    affinity: float, trust: float, emotions: Iterable[str], actions: Iterable[str]
) -> tuple[float, float]:
    """Affinity and trust after a reply that showed ``emotions`` and took ``actions``."""
    for emotion in emotions:
        delta = EMOTION_EFFECT.get(emotion, (0.0, 0.0))
        affinity, trust = affinity + delta[0], trust + delta[1]
    for _ in actions:
        affinity, trust = affinity + ACTION_EFFECT[0], trust + ACTION_EFFECT[1]
    return nudged(affinity, trust, 0.0, 0.0)


def nudged(affinity: float, trust: float, affinity_delta: float, trust_delta: float) -> tuple[float, float]:
    """Affinity and trust moved by the deltas (a game event's trigger), kept within -1 and 1."""
    return (
        max(-1.0, min(1.0, affinity + affinity_delta)),
        max(-1.0, min(1.0, trust + trust_delta)),
    )
