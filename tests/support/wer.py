"""Word error rate, for tests and benchmarks of recognition quality."""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """Lowercase words without punctuation, as word error rate compares them."""
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_edits(reference: str, hypothesis: str) -> int:
    """Word-level edit distance (substitutions, insertions, deletions)."""
    ref, hyp = words(reference), words(hypothesis)
    distance = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, distance[0] = distance[0], i
        for j, h in enumerate(hyp, 1):
            previous, distance[j] = (
                distance[j],
                min(distance[j] + 1, distance[j - 1] + 1, previous + (r != h)),
            )
    return distance[len(hyp)]


def word_error_rate(reference: str, hypothesis: str) -> float:
    return word_edits(reference, hypothesis) / max(1, len(words(reference)))
