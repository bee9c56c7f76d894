"""From piper's phoneme stream to a viseme timeline.

piper's stream is not a clean phoneme list: stress marks (ˈ ˌ) and the length mark (ː) carry durations of
their own, affricates arrive split (t ʃ, d ʒ), diphthongs arrive as two vowels (a ɪ), spaces between
words last 20-60 ms, punctuation is a pause and ^/$ bracket the sentence. This module folds all that into
segments of the 15 OVR visemes with exact sample boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

OVR_VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

_PHONEME_VISEME: dict[str, str] = {}
for _viseme, _phonemes in {
    "PP": "p b m",
    "FF": "f v",
    "TH": "θ ð",
    "DD": "t d ɾ ʔ",
    "kk": "k g ɡ ŋ x ɣ",
    "CH": "ʃ ʒ tʃ dʒ ʧ ʤ ç",
    "SS": "s z",
    "nn": "n l ɫ ɬ n̩ l̩",
    "RR": "ɹ r ɻ ɚ ɝ ʁ",
    "aa": "ɑ a æ ʌ ɐ ɒ ɑ̃",
    "E": "ɛ e ə ɜ ɘ",
    "ih": "ɪ i ᵻ ɨ j y",
    "oh": "ɔ o ɵ",
    "ou": "ʊ u w ʉ ɯ",
}.items():
    for _phoneme in _phonemes.split():
        _PHONEME_VISEME[_phoneme] = _viseme

SILENT = set("^$_.,!?;:—–-\"'()…")
WORD_GAP = " "
MODIFIERS = {"ˈ", "ˌ"}  # stress: the onset of the stressed vowel that follows
LENGTH_MARKS = {"ː", "ˑ"}  # length: lengthens the sound before
AFFRICATES = {("t", "ʃ"): "tʃ", ("d", "ʒ"): "dʒ"}
# Voiceless/neutral sounds that take the mouth shape of the vowel that follows (h in "hello").
ASSIMILATING = {"h", "ɦ"}


@dataclass(frozen=True)
class Phoneme:
    symbol: str
    start: int  # samples
    length: int


@dataclass(frozen=True)
class Segment:
    viseme: str
    start: int  # samples
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def viseme_of(symbol: str) -> str | None:
    """The OVR viseme for one phoneme symbol, or None for symbols that are not sounds."""
    if symbol in SILENT:
        return "sil"
    if symbol in _PHONEME_VISEME:
        return _PHONEME_VISEME[symbol]
    base = symbol.rstrip("̩̃ʰʲʷ")  # syllabic, nasal, aspirated, palatalised, labialised
    return _PHONEME_VISEME.get(base)


def _fold_marks(phonemes: list[Phoneme]) -> list[Phoneme]:
    """Give stress marks' time to the sound after them, length marks' to the sound before, and join split
    affricates."""
    folded: list[Phoneme] = []
    carry_start: int | None = None
    for p in phonemes:
        if p.symbol in MODIFIERS:
            carry_start = p.start if carry_start is None else carry_start
            continue
        if p.symbol in LENGTH_MARKS and folded:
            last = folded[-1]
            folded[-1] = Phoneme(last.symbol, last.start, p.start + p.length - last.start)
            continue
        start = carry_start if carry_start is not None else p.start
        carry_start = None
        current = Phoneme(p.symbol, start, p.start + p.length - start)
        if folded and (folded[-1].symbol, current.symbol) in AFFRICATES:
            previous = folded.pop()
            current = Phoneme(AFFRICATES[(previous.symbol, current.symbol)], previous.start,
                              current.start + current.length - previous.start)  # fmt: skip
        folded.append(current)
    if carry_start is not None and folded:  # a trailing stress mark: give it to the last sound
        last = folded[-1]
        folded[-1] = Phoneme(last.symbol, last.start, max(last.start + last.length, carry_start) - last.start)
    return folded


def timeline(phonemes: list[Phoneme]) -> list[Segment]:
    """Viseme segments that tile the phonemes' span exactly, adjacent equal visemes merged.

    Word gaps go to the sound that follows (anticipation: the mouth moves early into the next word's
    first shape, instead of closing between words); unknown symbols and /h/ take the shape of the sound
    that follows.
    """
    if not phonemes:
        return []
    folded = _fold_marks(phonemes)
    labelled: list[tuple[str | None, Phoneme]] = []
    for p in folded:
        labelled.append(
            (None if p.symbol == WORD_GAP or p.symbol in ASSIMILATING else viseme_of(p.symbol), p)
        )
    # Unknown sounds and /h/ take the next sound's viseme (or the previous one at the end).
    resolved: list[tuple[str, Phoneme]] = []
    for index, (viseme, p) in enumerate(labelled):
        if viseme is None and p.symbol != WORD_GAP:
            following = next((v for v, _ in labelled[index + 1 :] if v is not None), None)
            viseme = following or (resolved[-1][0] if resolved else "sil")
        resolved.append((viseme or WORD_GAP, p))
    segments: list[Segment] = []
    for index, (viseme, p) in enumerate(resolved):
        start, end = p.start, p.start + p.length
        if viseme == WORD_GAP:
            # The mouth does not close between words; it moves early into the next word's first shape.
            after_viseme = next((v for v, _ in resolved[index + 1 :] if v != WORD_GAP), None)
            viseme = (
                "sil"
                if not segments or segments[-1].viseme == "sil" or after_viseme is None
                else after_viseme
            )
        if segments and segments[-1].viseme == viseme and segments[-1].end == start:
            segments[-1] = Segment(viseme, segments[-1].start, end)
        else:
            segments.append(Segment(viseme, start, end))
    return segments
