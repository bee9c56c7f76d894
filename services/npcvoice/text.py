"""Text hygiene and splitting before synthesis.

What reaches the synthesizer is something a person would say aloud: no control characters, emoji or
markdown symbols; abbreviations and currency written out (espeak reads "Dr." as a sentence end and "$5" as
"dollar five"); an ellipsis as a pause. Splitting is ours, not piper's, so that first audio can start on the
first sentence, or on its first clause, while the rest is still being written.

Shared by the dialogue service, which streams its replies sentence by sentence already cleaned this way,
and the voice service, which cleans and splits what it is asked to say.
"""

from __future__ import annotations

import re
import unicodedata

_ABBREVIATIONS = [
    (r"\bDr\.(?=\s)", "Doctor"),
    (r"\bMr\.(?=\s)", "Mister"),
    (r"\bMrs\.(?=\s)", "Missus"),
    (r"\bMs\.(?=\s)", "Miz"),
    (r"\bProf\.(?=\s)", "Professor"),
    (r"\bSt\.(?=\s+[A-Z])", "Saint"),
    (r"\bSt\.", "Street"),
    (r"\bMt\.(?=\s)", "Mount"),
    (r"\bCapt\.(?=\s)", "Captain"),
    (r"\bSgt\.(?=\s)", "Sergeant"),
    (r"\bLt\.(?=\s)", "Lieutenant"),
    (r"\be\.g\.,?", "for example,"),
    (r"\bi\.e\.,?", "that is,"),
    (r"\betc\.(?=\s+[a-z])", "et cetera"),
    (r"\betc\.", "et cetera."),
    (r"\bvs\.", "versus"),
    (r"\bapprox\.", "approximately"),
]
_CURRENCIES = {"$": "dollars", "£": "pounds", "€": "euros", "¥": "yen"}
_CURRENCY_RE = re.compile(r"([$£€¥])\s?(\d+(?:,\d{3})*(?:\.\d+)?)")
_MARKDOWN_RE = re.compile(r"[*_#`~|<>\[\]{}\\^]")
_WHITESPACE_RE = re.compile(r"\s+")
# Sentence end: terminal punctuation (with closing quotes/brackets), then whitespace.
_SENTENCE_END_RE = re.compile(r"[.!?]+[\"')\]]*\s+")
_CLAUSE_MARKS = ",;:—–"
_CLAUSE_END_RE = re.compile(rf"[{_CLAUSE_MARKS}]\s+")
# The first piece's end at the very end of text streamed a token at a time, right after a word that
# follows a space: the whitespace that would confirm it comes with the next token (" Queen"), a model step
# later. Not after a digit ("1,000", "3.5"), nor "www." or "..." (its own token, which waits for the
# whitespace as before); an abbreviation's full stop is ruled out as always. (A bare "site.com" in the
# first sentence would be cut at "site.": no NPC's line, and the filter drops URLs it sees whole.)
_SENTENCE_END_NOW_RE = re.compile(r"(?:^|\s)(?!www\.)[^\W\d_]+([.!?])$")
_CLAUSE_END_NOW_RE = re.compile(_CLAUSE_END_RE.pattern + r"|(?<=[^\W\d_])[,;:]$")

_ABBREVIATION_BEFORE_RE = re.compile(
    r"(?:\b(?:Dr|Mr|Mrs|Ms|Prof|St|Mt|Capt|Sgt|Lt|vs|approx|etc)|\b[a-z]\.[a-z])$", re.IGNORECASE
)

MIN_CLAUSE_WORDS = 3


def _sentence_end(text: str, eager: bool = False) -> re.Match[str] | None:
    """The first sentence end in ``text`` that is not the full stop of an abbreviation (``eager``: one
    ending the text counts too)."""
    for match in _SENTENCE_END_RE.finditer(text):
        if text[match.start()] == "." and _ABBREVIATION_BEFORE_RE.search(text[: match.start()]):
            continue
        return match
    now = _SENTENCE_END_NOW_RE.search(text) if eager else None
    if now and not (now.group(1) == "." and _ABBREVIATION_BEFORE_RE.search(text[: now.start(1)])):
        return now
    return None


def ends_clause(piece: str) -> bool:
    """Whether ``piece`` (as ``SentenceBuffer`` hands it out) is a clause, not a whole sentence."""
    return piece.rstrip("\"')] ").endswith(tuple(_CLAUSE_MARKS))


def _first_clause_end(text: str, before: int, eager: bool = False) -> int | None:
    """End of the first clause, before ``before``, long enough (in words) to be spoken alone."""
    for match in (_CLAUSE_END_NOW_RE if eager else _CLAUSE_END_RE).finditer(text):
        if match.start() >= before:
            return None
        if len(text[: match.start()].split()) >= MIN_CLAUSE_WORDS:
            return match.end()
    return None


def _is_spoken(char: str) -> bool:
    category = unicodedata.category(char)
    if category.startswith("C"):  # control, format (zero-width joiners, variation selectors), private use
        return False
    # emoji, pictographs and emoji skin-tone modifiers are not spoken
    return not (category == "So" or (category == "Sk" and ord(char) > 0x2000))


def clean_for_speech(text: str) -> str:
    """Text as it should be spoken; may be empty if nothing speakable was left."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if _is_spoken(c) else (" " if c in "\t\n\r\v\f" else "") for c in text)
    text = _MARKDOWN_RE.sub(" ", text)
    text = re.sub(r"\s*(\.\.\.|…)\s*", ", ", text)
    for pattern, spoken in _ABBREVIATIONS:
        text = re.sub(pattern, spoken, text)
    text = _CURRENCY_RE.sub(lambda m: f"{m.group(2)} {_CURRENCIES[m.group(1)]}", text)
    text = text.replace("&", " and ").replace("%", " percent")
    text = _WHITESPACE_RE.sub(" ", text).strip()
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"^[,;:\s]+", "", text)
    return text if any(c.isalnum() for c in text) else ""


def split_sentences(text: str) -> list[str]:
    """Split cleaned text into sentences (terminal punctuation kept)."""
    pieces: list[str] = []
    rest = text
    while (match := _sentence_end(rest)) is not None:
        pieces.append(rest[: match.end()].strip())
        rest = rest[match.end() :]
    pieces.append(rest.strip())
    return [p for p in pieces if p]


def split_first_clause(sentence: str) -> list[str]:
    """The sentence's first clause and the rest, if the clause is long enough to sound natural alone."""
    end = _first_clause_end(sentence, before=len(sentence))
    if end is None:
        return [sentence]
    head, tail = sentence[:end].strip(), sentence[end:].strip()
    return [head, tail] if len(tail.split()) >= 2 else [sentence]


def split_for_synthesis(text: str, first_clause: bool) -> list[str]:
    sentences = split_sentences(text)
    if first_clause and sentences:
        return split_first_clause(sentences[0]) + sentences[1:]
    return sentences


class SentenceBuffer:
    """Collects text fragments as a language model streams them and hands out complete sentences.

    A sentence is complete once its terminal punctuation is followed by whitespace, so "Dr." or "3." at
    the end of a fragment waits for the next fragment before deciding (``eager``: the first piece's end
    does not wait where it follows a word that is no abbreviation).
    """

    def __init__(self, first_clause: bool = False, eager: bool = False) -> None:
        """``eager``: the text comes a model token at a time, and punctuation that ends it right after a
        word ends the first piece (sentence or clause) without waiting for the next token's whitespace."""
        self._pending = ""
        self._first_clause = first_clause
        self._eager = eager
        self._emitted_any = False

    def add(self, fragment: str) -> list[str]:
        self._pending += fragment
        ready: list[str] = []
        while (end := self._next_boundary()) is not None:
            ready += self._take(end)
        return ready

    def _next_boundary(self) -> int | None:
        eager = self._eager and not self._emitted_any
        sentence = _sentence_end(self._pending, eager)
        if self._first_clause and not self._emitted_any:
            clause = _first_clause_end(
                self._pending, sentence.start() if sentence else len(self._pending), eager
            )
            if clause is not None:
                return clause
        return sentence.end() if sentence else None

    def _take(self, end: int) -> list[str]:
        piece, self._pending = self._pending[:end], self._pending[end:]
        cleaned = clean_for_speech(piece)
        if not cleaned:
            return []
        self._emitted_any = True
        return [cleaned]

    def flush(self) -> list[str]:
        return self._take(len(self._pending))
