"""Word error rate, for tests and benchmarks of recognition quality.

Both sides are normalised the same way before they are compared, so that only what was heard counts, not
how it was written: case, punctuation, hyphens ("cold-hearted" / "cold hearted"), a few abbreviations
("Mr." / "mister") and numbers. Numbers are the difficult part: a player says "twenty three", Whisper
writes "23", a reference may say either, and "five five" may come out as "55" or "5, 5". Every number,
in words or in digits, becomes its digits, one word per digit ("twenty three" -> "2 3"), which makes all
of those agree; a wrong number then costs one error per wrong digit.
"""

from __future__ import annotations

import re

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = (
    {w: (i, "unit") for i, w in enumerate(_ONES)}
    | {w: (10 + i, "teen") for i, w in enumerate(_TEENS)}
    | {w: (20 + 10 * i, "tens") for i, w in enumerate(_TENS)}
)
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay"}


def _numbers_as_digits(tokens: list[str]) -> list[str]:
    """Runs of number words become their value ("twenty three" -> "23", "two hundred and five" -> "205");
    numbers said one after another stay apart ("five five" -> "5 5", "nineteen eighty" -> "19 80")."""
    out: list[str] = []
    total, current, last = 0, 0, ""  # last: the kind of the previous number word, "" when none is open

    def close() -> None:
        nonlocal total, current, last
        if last:
            out.append(str(total + current))
        total, current, last = 0, 0, ""

    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token in NUMBER_WORDS:
            value, kind = NUMBER_WORDS[token]
            joins = last in ("", "scale") or (last == "tens" and kind == "unit" and value > 0)
            if not joins:
                close()
            current += value
            last = kind
        elif token in SCALES and last:
            if SCALES[token] == 100:
                current = max(current, 1) * 100
            else:
                total, current = total + max(current, 1) * SCALES[token], 0
            last = "scale"
        elif token == "and" and last == "scale" and following in NUMBER_WORDS:
            continue
        else:
            close()
            out.append(token)
    close()
    return out


def words(text: str) -> list[str]:
    """Normalised words as word error rate compares them (digits one per word)."""
    text = text.lower().replace("%", " percent ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000
    text = re.sub(r"[-‐–—/]", " ", text)
    tokens = [ABBREVIATIONS.get(t, t) for t in re.sub(r"[^a-z0-9' ]", " ", text).split()]
    tokens = [t.strip("'") for t in tokens if t.strip("'")]
    result: list[str] = []
    for token in _numbers_as_digits(tokens):
        result.extend(list(token) if token.isdigit() else [token])
    return result


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


def corpus_word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Edits over all (reference, hypothesis) pairs divided by all reference words."""
    edits = sum(word_edits(r, h) for r, h in pairs)
    return edits / max(1, sum(len(words(r)) for r, _ in pairs))
