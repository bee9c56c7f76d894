"""What the NPC knows but must never say, and the check that keeps it unsaid.

Secrets come from three places: the persona's ``secrets`` list (passwords, spoilers, the twist), phrases
its private text marks as secret ("the password is swordfish", "her real name is Morgause"), and
code-like words there (with a digit, or in capitals). A sentence reveals a secret when, in any case,
spacing or punctuation, and with ordinary inflections ("poisons" for "poisoned"), the secret's letters or
its word stems appear in it. Such a sentence is never released.
"""

from __future__ import annotations

import re

from npcvoice.dialogue.prompt import private_text
from npcvoice.personas.schema import Persona

# "the password is swordfish", "the code to the vault was 7731", "her real name: Lady Morgause": after the
# marker, a quoted phrase, a run of capitalised words (a name), or else one word.
_MARKED_RE = re.compile(
    r"(?i:\b(?:password|passphrase|passcode|pass word|code|combination|secret|true name|real name)"
    r"(?:\s+(?:of|for|to)\s+(?:the\s+)?[\w'-]+){0,2}\s*(?:is|was|:))\s+"
    r"(?:[\"“']([^\"”']{1,80})[\"”']|([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){0,3})|([\w'-]+))"
)
_SUFFIXES = ("ings", "ing", "edly", "ed", "es", "s", "ly", "er", "est")
MIN_COMPACT = 4  # a shorter secret is matched as whole words only ("ash" is not in "wash")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _forms(text: str) -> tuple[str, str]:
    """The text as one run of letters and digits, and as one run of word stems."""
    words = _words(text)
    return "".join(words), "".join(stem(w) for w in words)


def code_words(persona: Persona) -> set[str]:
    """Code-like words of the private text (with a digit, or in capitals) that nothing public contains.

    A writer who puts a password or a code in a description means it to stay there; such a word is
    never said alone either, where five words in a row would not catch it.
    """
    public = " ".join(
        [persona.display_name, persona.greeting, *persona.example_lines, *(e.text for e in persona.lore)]
    )
    public_words = set(re.findall(r"[a-z0-9']+", public.lower()))
    found: set[str] = set()
    for word in private_text(persona).split():
        if any(c.isdigit() for c in word) or (sum(c.isupper() for c in word) >= 3 and word.upper() == word):
            found.update(part for part in re.findall(r"[a-z0-9']+", word.lower()) if len(part) >= 3)
    return found - public_words


def marked_secrets(text: str) -> list[str]:
    """Phrases ``text`` calls a password, a code, a secret or a real name."""
    return [next(group for group in match.groups() if group) for match in _MARKED_RE.finditer(text)]


class SecretGuard:
    def __init__(self, persona: Persona) -> None:
        phrases = [*persona.secrets, *marked_secrets(private_text(persona))]
        self._phrases: list[tuple[str, str]] = []  # (letters, stems) of each secret long enough
        self._words: set[tuple[str, ...]] = set()  # stems of each short secret, matched as whole words
        for phrase in phrases:
            letters, stems = _forms(phrase)
            if len(letters) >= MIN_COMPACT:
                self._phrases.append((letters, stems))
            elif letters:
                self._words.add(tuple(stem(w) for w in _words(phrase)))
        self._codes = code_words(persona)

    def reveals(self, sentence: str) -> bool:
        words = _words(sentence)
        if set(words) & self._codes:
            return True
        letters, stems = _forms(sentence)
        if any(secret in letters or secret_stems in stems for secret, secret_stems in self._phrases):
            return True
        stemmed = [stem(w) for w in words]
        return any(
            tuple(stemmed[i : i + len(short)]) == short
            for short in self._words
            for i in range(len(stemmed) - len(short) + 1)
        )
