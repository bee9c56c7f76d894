"""Turning the model's raw output into what the NPC says and does.

The model streams text that may contain stage directions (``*waves*``, ``(laughs)``), markdown, emoji,
URLs, assistant talk ("As an AI...") and tags for emotion and actions (``[emotion: joy]``,
``[action: repair_item item=sword price=5]``). ``ReplyFilter`` takes the raw deltas and gives back, in
order: clean text a sentence at a time (so a sentence can be dropped whole before anyone hears it), the
sentence itself for speech synthesis, and emotion/action events checked against what the persona
declares. Anything undeclared is dropped and counted. A sentence that recites the persona's private
text (five words in a row from its description or the instructions) or reveals one of its secrets (see
``secrets``) is never released: a prompt injection can make a small model echo its prompt, but not make
the NPC say it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from npcvoice.dialogue.prompt import private_text
from npcvoice.dialogue.repetition import loops, near_copy, recites, word_ngrams
from npcvoice.dialogue.repetition import sentences as split_sentences
from npcvoice.dialogue.secrets import SecretGuard
from npcvoice.personas.schema import Persona
from npcvoice.text import SentenceBuffer

_TAG_RE = re.compile(r"\[\s*(emotion|action)\s*[:=]\s*([^\]]*)\]", re.IGNORECASE)
_BRACKETS_RE = re.compile(r"\[[^\]]*\]|\([^)]*\)|(?<!\*)\*(?!\*)[^*]+\*(?!\*)")
_URL_RE = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_MARKDOWN_RE = re.compile(r"(\*\*|__|`+|^#+\s*|^\s*[-*+]\s+|^\s*\d+\.\s+)", re.MULTILINE)
_ASSISTANT_RE = re.compile(
    r"\b(as an ai|an ai (language )?model|language model|i am an ai|i'm an ai|as a (helpful )?assistant|"
    r"i (cannot|can't) (assist|help) with that|openai|chatgpt)\b",
    re.IGNORECASE,
)
_PARAMETER_RE = re.compile(r"(\w+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s,]+)")
# Two words a free value ran together ("CressingStaithe"), each of three letters or more ("McAllister" stays):
# a value of several words is joined with underscores, as the corpus writes it (training.render.action_tag).
_JOINED = re.compile(r"(?<=[a-z]{3})(?=[A-Z][a-z]{2})")


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str


@dataclass(frozen=True)
class Emotion:
    emotion: str
    intensity: float = 1.0


@dataclass(frozen=True)
class Action:
    name: str
    parameters: dict[str, str] = field(default_factory=dict)


ReplyEvent = TextDelta | Sentence | Emotion | Action


@dataclass(frozen=True)
class Checkpoint:
    """A filter's state between two sentences, to go back to when the next sentence is written again."""

    raw: str
    sentences: SentenceBuffer
    spoken: tuple[str, ...]
    index: int


class ReplyFilter:
    def __init__(
        self,
        persona: Persona,
        first_clause: bool = False,
        earlier: Iterable[str] = (),
        phrases: Iterable[str] = (),
        mend: Callable[[str], str] | None = None,
    ) -> None:
        """``mend``: what is done to each sentence before it is checked and released (``address``: the
        player called by their own name, not another's)."""
        self._persona = persona
        self._mend = mend
        self._earlier = [s for line in earlier for s in split_sentences(line)]  # what the NPC said before
        self._phrases = list(phrases)  # the prompt's scaffolding, never to be said
        self._raw = ""  # model text not yet released (may hold an unfinished tag or direction)
        self._sentences = SentenceBuffer(first_clause=first_clause, eager=True)  # fed a token at a time
        self._spoken: list[str] = []
        self._sentence_index = 0
        self._private = word_ngrams(private_text(persona))
        self._secrets = SecretGuard(persona)
        self.dropped_events = 0
        self.dropped_sentences = 0
        self.repeats = 0  # sentences dropped for repeating or reciting: worth writing again
        self._opening: str | None = None  # a continuation's first sentence may restate this: cut it

    def also_said(self, lines: Iterable[str]) -> None:
        """More of what the NPC said before (older than the request's turns): not to be said again."""
        self._earlier += [s for line in lines for s in split_sentences(line)]

    def continuation(self, phrases: Iterable[str] = ()) -> ReplyFilter:
        """A filter for another writer going on from what this one released (a larger model after the small
        one's opening clause): the same guards and ``phrases`` more never to say, what was released counted
        as said (a repeat of it is dropped) and the sentence numbers going on. Text this one holds
        unreleased is not carried."""
        other = ReplyFilter(self._persona, False, (), [*self._phrases, *phrases], self._mend)
        other._earlier = list(self._earlier)
        other._spoken = list(self._spoken)
        other._sentence_index = self._sentence_index
        other._opening = self._spoken[-1] if self._spoken else None
        return other

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self._raw, copy.copy(self._sentences), tuple(self._spoken), self._sentence_index)

    def restore(self, checkpoint: Checkpoint) -> None:
        self._raw, self._sentences = checkpoint.raw, copy.copy(checkpoint.sentences)
        self._spoken, self._sentence_index = list(checkpoint.spoken), checkpoint.index

    def fallback(self, line: str) -> list[ReplyEvent]:
        """Say ``line`` (one the writer gave the NPC) as the whole reply: the last resort, never silence."""
        return self._emit(" ".join(self._strip(line).split()))

    @property
    def text(self) -> str:
        """Everything released so far, as the player reads and hears it."""
        return " ".join(self._spoken)

    def feed(self, delta: str) -> list[ReplyEvent]:
        self._raw += delta
        # Hold back an unclosed [tag, (direction or *emote until it closes.
        cut = unclosed_start(self._raw)
        ready, self._raw = self._raw[:cut], self._raw[cut:]
        events = self._tags(ready)
        return events + self._release(self._sentences.add(self._strip(ready)))

    def finish(self, complete_only: bool = False) -> list[ReplyEvent]:
        """End of the model's output: release what is left (an unclosed direction is dropped).

        ``complete_only`` (the reply was cut at its length limit) drops a last sentence that never
        ended, unless it would be all the NPC says: better three whole sentences than "... and it's".
        """
        leftover, self._raw = self._raw, ""
        events = self._tags(leftover)
        tail = self._strip(leftover[: unclosed_start(leftover)])
        sentences = self._sentences.add(tail)
        rest = self._sentences.flush()
        if complete_only and (self._spoken or sentences):
            rest = [s for s in rest if s.rstrip("\"')").endswith((".", "!", "?", "\u2026"))]
        return events + self._release(sentences + rest)

    @property
    def sentences(self) -> int:
        """Sentences released so far."""
        return self._sentence_index

    def _tags(self, text: str) -> list[ReplyEvent]:
        events: list[ReplyEvent] = []
        for kind, body in _TAG_RE.findall(text):
            event = self._emotion(body) if kind.lower() == "emotion" else self._action(body)
            if event is None:
                self.dropped_events += 1
            else:
                events.append(event)
        return events

    def _emotion(self, body: str) -> Emotion | None:
        name = body.strip().lower().split()[0] if body.strip() else ""
        return Emotion(name) if name in self._persona.emotions else None

    def _action(self, body: str) -> Action | None:
        words = body.strip().split(None, 1)
        if not words:
            return None
        declared = self._persona.action(words[0].strip().lower())
        if declared is None:
            return None
        given = {k: v.strip("\"'") for k, v in _PARAMETER_RE.findall(words[1] if len(words) > 1 else "")}
        parameters: dict[str, str] = {}
        for parameter in declared.parameters:
            value = given.get(parameter.name)
            if value is None:
                if parameter.required:
                    return None
                continue
            if parameter.choices and value not in parameter.choices:
                return None
            if parameter.type == "integer" and not re.fullmatch(r"-?\d+", value):
                return None
            if parameter.type == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
                return None
            if parameter.type == "boolean" and value.lower() not in ("true", "false"):
                return None
            if parameter.type == "string" and not parameter.choices:
                value = _JOINED.sub("_", value)  # "CressingStaithe" -> "Cressing_Staithe", as trained
            parameters[parameter.name] = value
        return Action(declared.name, parameters)

    @staticmethod
    def _strip(text: str) -> str:
        text = _TAG_RE.sub(" ", text)
        text = _BRACKETS_RE.sub(" ", text)
        return _MARKDOWN_RE.sub(" ", text)

    def _release(self, sentences: list[str]) -> list[ReplyEvent]:
        events: list[ReplyEvent] = []
        for raw_sentence in sentences:
            sentence = re.sub(r"\s+([,.!?;:])", r"\1", " ".join(_URL_RE.sub(" ", raw_sentence).split()))
            if self._opening is not None:
                sentence, self._opening = after_opening(sentence, self._opening), None
            if self._mend is not None:
                sentence = self._mend(sentence)
            if not any(c.isalnum() for c in sentence):
                continue
            repeats = (
                near_copy(sentence, [*self._earlier, *self._spoken])
                or loops(sentence)
                or recites(sentence, self._phrases)
                or word_ngrams(sentence) & self._private
            )
            if repeats or _ASSISTANT_RE.search(sentence) or self._secrets.reveals(sentence):
                self.dropped_sentences += 1
                self.repeats += bool(repeats)
                continue
            events += self._emit(sentence)
        return events

    def _emit(self, sentence: str) -> list[ReplyEvent]:
        events: list[ReplyEvent] = [TextDelta(sentence if not self._spoken else " " + sentence)]
        events.append(Sentence(self._sentence_index, sentence))
        self._spoken.append(sentence)
        self._sentence_index += 1
        return events


def after_opening(sentence: str, opening: str) -> str:
    """``sentence`` without ``opening`` at its start (the same words, whatever the case and punctuation):
    a larger model going on from the small one's opening clause often says it again first."""
    words, said = sentence.split(), opening.split()

    def plain(word: str) -> str:
        return "".join(c for c in word.lower() if c.isalnum())

    if len(words) >= len(said) and [plain(w) for w in words[: len(said)]] == [plain(w) for w in said]:
        return " ".join(words[len(said) :])
    return sentence


def unclosed_start(text: str) -> int:
    """Where an unclosed ``[``, ``(`` or single ``*`` begins in ``text``; ``len(text)`` if none is open."""
    opened: int | None = None
    closer = ""
    index = 0
    while index < len(text):
        char = text[index]
        double_star = text.startswith("**", index)
        if opened is None:
            if char in "[(":
                opened, closer = index, "]" if char == "[" else ")"
            elif char == "*" and not double_star:
                opened, closer = index, "*"
        elif char == closer and not (closer == "*" and double_star):
            opened = None
        index += 2 if double_star else 1
    return len(text) if opened is None else opened
