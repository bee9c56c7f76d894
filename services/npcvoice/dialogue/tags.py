"""The reply's leading tags, written under constraint: ``[emotion: X]`` always, ``[action: name k=v]`` when
the player's line asks for an action, with only the persona's declared names, parameters and value types.

onnxruntime-genai has guidance (a grammar or regex set on GeneratorParams), but it binds a grammar to a
generator for its whole life and checks every token appended to it: the engine keeps a conversation's
generator between turns (its KV cache), appends the next turn's prompt to it and rewinds it, none of which
a guided generator accepts. So the constraint is applied here, to the logits, for the reply's first
tokens only: a token trie over the allowed tag texts (each written as the tokenizer writes it alone) tells
which tokens may come next; a parameter's free value (a word, a number) is taken from the likeliest tokens
that look like one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from npcvoice.dialogue.recall import asked_part
from npcvoice.dialogue.secrets import stem
from npcvoice.dialogue.vocabulary import TokenTexts
from npcvoice.personas.schema import Action, ActionParameter, Persona

# The action branch is taken only when the player's line names what an action is for (``requested``):
# a 135M model hardly ever leans to an action tag when asked, and once one is in its history it leans to
# one on every turn (measured: 34 actions nobody asked for in 70 replies with "when it gives the tag's
# first token 10 %", against 0 of 16 requests answered before that).
# A model that chooses takes an action when it gives the action tag's first token at least this
# probability. The shipped adapter (one epoch of the whole corpus) gives it 18-95 % on the held-out corpus
# personas' lines that ask for an action (22 offered), under 10 % on most that only name its object or
# ask something else (27 of 31; the rest 17-57 %, lines like "I got a silver hairpin, found it" to a
# fence). At 15 %, on the unseen personas (bench/unseen), 12 of 12 asked-for actions are taken and 2
# nobody asked for, against 12 at 1 %, the threshold fitted to an earlier, less decisive adapter
# (docs/conversation-quality.md, sessions 12 and 17).
ACTION_CHANCE = 0.15
# Words that say nothing about which action is meant.
_COMMON = frozenset(
    re.findall(
        r"\w+",
        "the and for you your yours are was were can could would will shall may might must have has had "
        "this that these those what when where who why how with from into onto about any some please thank "
        "thanks let get got give take put make made need want like just them they their there here our ours "
        "his her him she its not but all one two",
    )
)
# Added to the logit of the way to the action the line's words name (``meant``) where several are offered,
# and to a parameter's choice the line names ("two ringside seats": section=ringside; the tuned model
# wrote "benches" on every run of the unseen scripts): the model still decides whether to act, and
# outweighs it only when it is sure of another.
MEANT = 8.0
# A free value's tokens at most: a snake_case value of a few words ("blue_tea_bowl" is 7 tokens).
MAX_VALUE_TOKENS = 8
_WORD_START = re.compile(r"[A-Za-z][A-Za-z_]*")
_WORD_MORE = re.compile(r"[A-Za-z_]+")
_DIGITS = re.compile(r"[0-9]{1,4}")


@dataclass
class Node:
    """A point in a token trie; ``then`` is set where an alternative ends: the segments that follow it."""

    children: dict[int, Node] = field(default_factory=dict)
    then: tuple[Segment, ...] | None = None
    texts: set[str] = field(default_factory=set)  # the alternatives that go through this point


@dataclass(frozen=True)
class Value:
    """A parameter's free value: a word (string) or digits (integer, number)."""

    digits: bool
    fallback: int  # a token of the right kind, for when none of the likeliest is one


Segment = Node | Value


def trie(texts: TokenTexts, alternatives: list[tuple[str, tuple[Segment, ...]]]) -> Node:
    root = Node()
    for text, then in alternatives:
        node = root
        for token in texts.encode(text):
            node = node.children.setdefault(token, Node())
            node.texts.add(text)
        node.then = then
    return root


def _value(texts: TokenTexts, parameter: ActionParameter) -> Segment:
    choices = parameter.choices or (["true", "false"] if parameter.type == "boolean" else None)
    if choices:
        return trie(texts, [(choice, ()) for choice in choices])
    digits = parameter.type in ("integer", "number")
    return Value(digits, texts.encode("1" if digits else parameter.name)[0])


# A question to know something, and the words of a line that asks for something as well ("How much?
# I'll take two, please.").
_ASKS_TO_KNOW = re.compile(
    r"^\W*(what|what's|whats|why|when|where|who|who's|which|how(?!\s+about)|should i|is it|is there|"
    r"are there|do you|does|did|have you|has)\b",
    re.IGNORECASE,
)
_ASKS_FOR = re.compile(
    r"\b(please|i'?d like|i want|i need|can you|could you|would you|will you|let me|give me|sell me|"
    r"take me|i'll take|i'll have)\b",
    re.IGNORECASE,
)


def _keywords(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in _COMMON}


def requested(persona: Persona, player_text: str) -> list[Action]:
    """The actions the player's line asks for: those whose description or choices share a word
    (stemmed, common words and the NPC's own name aside) with it. The writer's description says when the
    NPC takes the action, which is more than a small model can be trusted to judge from the prompt. None
    for a line that only asks to know something ("What does it cost to bring a boat up?", "Should I set
    off across the moor now?"): of such lines in the corpus that name an action's words, the NPC acted on
    4 of 359, against 436 of 875 of the others."""
    if _ASKS_TO_KNOW.search(asked_part(player_text)) and not _ASKS_FOR.search(player_text):
        return []
    asked = _keywords(player_text) - _keywords(f"{persona.display_name} player")
    found = []
    for action in persona.actions:
        choices = [c for p in action.parameters for c in p.choices or ()]
        # Not its name: a name is a code ("open_shop"), its words too common in talk ("is it open?").
        words = " ".join([action.description, *choices])
        if asked & _keywords(words):
            found.append(action)
    return found


def meant(actions: list[Action], player_text: str) -> Action | None:
    """Of several offered actions, the one the line's words name: the one whose name, description and
    choices share most of the line's words, each word counting for more the fewer of them hold it ("Would
    you mark the way on this map of mine?": ``mark_route``, not ``sell_map``: "map" is in both). None
    when none or several share the most. Here the name counts: it tells apart actions that the line
    already asks for. On the corpus's lines that ask for one of several offered actions, it names the
    writer's in 19 of 40, another in 3 (docs/conversation-quality.md, session 32)."""
    if len(actions) < 2:
        return None
    asked = _keywords(player_text)
    words = [
        _keywords(
            " ".join(
                [a.name.replace("_", " "), a.description, *(c for p in a.parameters for c in p.choices or ())]
            )
        )
        for a in actions
    ]
    held: dict[str, int] = {}
    for found in words:
        for word in found:
            held[word] = held.get(word, 0) + 1
    scores = [sum(math.log((len(actions) + 1) / held[w]) for w in asked & found) for found in words]
    best = max(scores)
    if best <= 0 or scores.count(best) > 1:
        return None
    return actions[scores.index(best)]


def action_trie(texts: TokenTexts, actions: list[Action]) -> Node:
    """`` [action: name p=v ...]`` for each of ``actions``, with its required parameters in order."""
    alternatives: list[tuple[str, tuple[Segment, ...]]] = []
    for action in actions:
        required = [p for p in action.parameters if p.required]
        if not required:
            alternatives.append((f" [action: {action.name}]", ()))
            continue
        then: list[Segment] = [_value(texts, required[0])]
        for parameter in required[1:]:
            then += [trie(texts, [(f" {parameter.name}=", ())]), _value(texts, parameter)]
        then.append(trie(texts, [("]", ())]))
        alternatives.append((f" [action: {action.name} {required[0].name}=", tuple(then)))
    return trie(texts, alternatives)


def branch_probability(logits: np.ndarray, tokens: list[int]) -> float:
    """The probability the model gives ``tokens`` together, next."""
    shifted = np.exp(logits - logits.max())
    return float(shifted[tokens].sum() / shifted.sum())


def emotion_tag(emotion: str) -> str:
    return f"[emotion: {emotion}]"


def emotion_trie(texts: TokenTexts, persona: Persona) -> Node:
    return trie(texts, [(emotion_tag(emotion), ()) for emotion in persona.emotions])


class TagWriter:
    """Which tokens the reply may start with, step by step, until its tags are written."""

    def __init__(
        self,
        texts: TokenTexts,
        persona: Persona,
        player_text: str = "",
        lean: Mapping[str, float] | None = None,
        actions_by_keyword: bool = True,
        action_taken: bool = True,
        calibration: dict[int, float] | None = None,
    ) -> None:
        """``lean``: bonuses for the emotions the line calls for (``feelings``), given where the emotion is
        chosen.
        ``calibration``: bonuses for the emotion's first tokens that take the model's usual leaning out of
        its choice (``emotion_calibration``), applied when the emotion is chosen.
        ``actions_by_keyword``: an action is offered only when the line asks for it (``requested``); off,
        every declared action is offered. ``action_taken``: an action offered by keyword is taken; off (or
        with every action offered), the model chooses: it takes one when it gives the action tag's first
        tokens at least ``ACTION_CHANCE`` of its probability right after the emotion tag."""
        self._texts = texts
        self._lean = {emotion_tag(e): bonus for e, bonus in (lean or {}).items()}
        self._calibration = calibration or {}
        emotions = tuple(persona.emotions)
        self._node: Node | None = texts.memo(("emotions", emotions), lambda: emotion_trie(texts, persona))
        self._choice = self._node  # where the emotion is chosen: past the fixed opening all emotions share
        while self._choice is not None and len(self._choice.children) == 1 and self._choice.then is None:
            self._choice = next(iter(self._choice.children.values()))
        asked = requested(persona, player_text) if actions_by_keyword else list(persona.actions)
        self._actions = action_trie(texts, asked) if asked else None
        named = meant(asked, player_text)
        self._meant = (f" [action: {named.name}]", f" [action: {named.name} ") if named else None
        # the choices the line names ("two ringside seats": section=ringside, not benches)
        said = _keywords(player_text)
        self._named = frozenset(
            c
            for a in asked
            for p in a.parameters
            for c in p.choices or ()
            if said & _keywords(c.replace("_", " "))
        )
        self._offered = False  # whether the action branch was offered (right after the emotion)
        self._optional = not (actions_by_keyword and action_taken)  # whether, offered, it may be passed by
        self.action_chance: float | None = None  # the model's probability of an action, where it chose
        self._choosing = False  # at the point where the model takes the action branch or passes it by
        self._value: Value | None = None
        self._value_tokens = 0
        self._rest: tuple[Segment, ...] = ()
        self.done = False

    def allowed(self, logits: np.ndarray) -> list[int] | None:
        """The tokens allowed next; None once the tags are written (free text follows)."""
        self._settle()
        if self._choosing:
            self._choosing = False
            assert self._node is not None
            self.action_chance = branch_probability(logits, list(self._node.children))
            if self.action_chance < ACTION_CHANCE:
                self.done = True  # the model goes on to its text: no action
        if self.done:
            return None
        if self._node is not None:
            return list(self._node.children)
        assert self._value is not None
        closing = self._closing()
        if self._value_tokens >= MAX_VALUE_TOKENS:
            return list(closing.children)
        pattern = _DIGITS if self._value.digits else _WORD_MORE if self._value_tokens else _WORD_START
        ids = self._texts.matching(logits, pattern)
        if self._value_tokens:
            return ids + list(closing.children)
        return ids or [self._value.fallback]

    def favoured(self) -> dict[int, float]:
        """Bonuses for the next token's logits while the emotion is chosen (the calibration's, and the way
        to the emotion leaned to) or the action (the way to the one the line names, and to a parameter's
        choice the line names)."""
        if self._node is None or len(self._node.children) < 2:
            return {}
        if self._offered:  # the way to the action the line names, and to a choice it names
            meant = self._meant
            return {
                t: MEANT
                for t, node in self._node.children.items()
                if node.texts & self._named
                or (meant is not None and any(x.startswith(meant) for x in node.texts))
            }
        bonuses = dict(self._calibration) if self._node is self._choice else {}
        if self._lean:
            for t, node in self._node.children.items():
                leaned = [self._lean[x] for x in node.texts if x in self._lean]
                if leaned:
                    bonuses[t] = bonuses.get(t, 0.0) + max(leaned)
        return bonuses

    def emotion_choices(self) -> dict[int, str]:
        """Once the fixed opening is written, where the emotion is chosen: each next token and the emotion
        it begins (several that begin alike: the first of them by name). Empty anywhere else."""
        if self._node is None or self._node is not self._choice:
            return {}
        opening = len(emotion_tag("")) - 1  # "[emotion: "
        return {t: min(node.texts)[opening:-1] for t, node in self._node.children.items()}

    def forced(self) -> int | None:
        """The next token when the tags leave only one (taken: no choice, so no need for the model's
        logits), else None."""
        self._settle()
        if self.done or self._choosing or self._node is None or len(self._node.children) != 1:
            return None
        token = next(iter(self._node.children))
        self.advance(token)
        return token

    def _settle(self) -> None:
        """Once the emotion is written: on to the action, or the tags are done."""
        if self.done or self._node is not None or self._value is not None:
            return
        self._offered = True
        if self._actions is None:
            self.done = True
        else:
            self._node = self._actions
            self._choosing = self._optional

    def advance(self, token: int) -> None:
        if self._value is not None:
            closing = self._closing()
            if not (self._value_tokens and token in closing.children):
                self._value_tokens += 1
                return
            self._value, self._node, self._rest = None, closing, self._rest[1:]
        assert self._node is not None
        node = self._node.children[token]
        if node.then is None:
            self._node = node
        else:
            self._enter((*node.then, *self._rest))

    def _closing(self) -> Node:
        """The literal after the value being written (a parameter's label or the closing bracket)."""
        closing = self._rest[0]
        assert isinstance(closing, Node)
        return closing

    def _enter(self, segments: tuple[Segment, ...]) -> None:
        self._node, self._value, self._value_tokens = None, None, 0
        if not segments:  # a tag is complete; after the action's (or with no actions), free text follows
            self._rest = ()
            self.done = self._offered or self._actions is None
            return
        first, self._rest = segments[0], segments[1:]
        if isinstance(first, Node):
            self._node = first
        else:
            self._value = first
