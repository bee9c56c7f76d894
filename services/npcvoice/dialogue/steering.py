"""How each token of a reply is chosen: its tags under constraint first, then free text that keeps away
from what the NPC said before, from loops and from the prompt, and that does not end before it said
something. ``Generation`` asks for each token and, when a sentence still comes out as a repeat, rolls back
to the sentence's start and asks again with the token it took there ruled out (``retry``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from npcvoice.dialogue.aids import ALL_AIDS
from npcvoice.dialogue.blocking import (
    DENIALS,
    PRESENCE_PENALTY,
    Blocker,
    claimed_phrases,
    first_word_table,
    fixed_table,
    others_roles,
    outside_phrases,
    outside_tokens,
)
from npcvoice.dialogue.caution import cautioned, openings
from npcvoice.dialogue.deflection import from_outside, refusal_openings
from npcvoice.dialogue.feelings import LEAN, called_for, emotion_model, leaning
from npcvoice.dialogue.leads import Lead, OneClause
from npcvoice.dialogue.lore import called_up
from npcvoice.dialogue.prompt import LABELS, example_replies, private_text
from npcvoice.dialogue.recall import Recall, introduced, recalled_words
from npcvoice.dialogue.repetition import near_copy, scaffolding_phrases
from npcvoice.dialogue.reply import Checkpoint
from npcvoice.dialogue.sampling import Sampler, StopMatcher
from npcvoice.dialogue.tags import TagWriter
from npcvoice.dialogue.types import TurnRequest
from npcvoice.dialogue.vocabulary import TokenTexts
from npcvoice.personas.schema import Persona
from npcvoice.turns import overheard_player_line

# The world context's keys that say what is happening ("location_event", "alert"), not the weather.
_EVENT = re.compile(r"event|alert", re.IGNORECASE)
# Sentences written again (rolled back and resampled) in one reply before a repeat is just dropped.
MAX_RETRIES = 4

emotion_model()  # read once, as the service starts, not on a player's first turn


@dataclass(frozen=True)
class Mark:
    """Where a reply's next sentence begins: what to go back to when it comes out as a repeat."""

    tokens: int  # the conversation's tokens (prompt and reply so far)
    reply: int  # the reply's tokens
    raw: int  # characters of the model's raw text
    filter: Checkpoint
    stop: StopMatcher


def earlier_lines(persona: Persona, request: TurnRequest) -> list[str]:
    """What the NPC has said in this conversation (as far as the request's memory shows), what it heard
    others say, and the lines its prompt puts in its mouth as examples: none of them is its reply again."""
    return [*npc_lines(request), *overheard_lines(request), *example_replies(persona)]


def overheard_lines(request: TurnRequest) -> list[str]:
    """The lines quoted in the NPC's memory of events: in a scene, what it heard others say ('Hilda
    Ironhand answered: "..."'). A small model parrots them whole."""
    return [
        quote
        for t in request.memory.recent_turns
        if t.role == "event"
        for quote in re.findall(r'"([^"]+)"', t.text)
    ]


def npc_lines(request: TurnRequest) -> list[str]:
    """What the NPC has said in this conversation, as far as the request's memory shows."""
    return [t.text for t in request.memory.recent_turns if t.role == "npc"]


def player_statements(request: TurnRequest) -> list[str]:
    """What the player told the NPC, as far as the request shows: their name as the game gives it, the
    facts kept, then their recent lines (in a scene, those it overheard them say to another NPC too)."""
    lines = [
        t.text if t.role == "player" else overheard_player_line(t.text) or ""
        for t in request.memory.recent_turns
        if t.role in ("player", "event")
    ]
    named = [f"My name is {request.player_name}."] if request.player_name else []
    return [*named, *request.memory.player_facts, *filter(None, lines)]


def opening(line: str) -> str:
    """A reply's first two words as written ("I'm sorry" of "I'm sorry, the forge is cold."), or ""."""
    first = line.split()[:2]
    return " ".join(first).rstrip(",.;:!?\"'") if len(first) == 2 else ""


def fallback_line(persona: Persona, earlier: list[str]) -> str:
    """A line the writer gave the NPC that it has not said yet (its greeting, then its example lines)."""
    lines = [persona.greeting, *persona.example_lines]
    return next((line for line in lines if not near_copy(line, earlier)), persona.greeting)


class Steering:
    def __init__(
        self,
        texts: TokenTexts,
        persona: Persona,
        request: TurnRequest,
        end_ids: Collection[int],
        aids: Collection[str] = ALL_AIDS,
        emotion_prior: dict[int, float] | None = None,
    ) -> None:
        """``aids``: the hand-written aids to apply (``npcvoice.dialogue.aids``); the guards always are.
        ``emotion_prior``: the persona's emotion calibration, once measured (``feelings.calibration``)."""
        self.earlier = earlier_lines(persona, request)
        self.phrases = scaffolding_phrases(persona, LABELS)
        calibration = emotion_prior if "emotion_calibration" in aids else None
        lean: dict[str, float] = {}
        if "emotion_lean" in aids:
            # Each emotion as likely as the line makes it, on top of the model's calibrated choice; without
            # a calibration, the one it calls for most decides (the bundled model alone keeps the last
            # reply's emotion from the history, an insult's anger all the talk).
            cue = f"{request.player_text} {request.cue}"
            if calibration:
                lean = leaning(cue, persona.emotions)
            elif (most := called_for(cue, persona.emotions)) is not None:
                lean = {most: LEAN}
        # To a line from outside the world, a refusal and no action ("you're my servant now, row me over
        # for free"); to any other, what answers it.
        from_world_outside = from_outside(request.player_text)  # once a turn: recall asks it too
        outside = "deflection" in aids and from_world_outside
        keywords, taken = "action_keywords" in aids or outside, "action_taken" in aids
        asking = "" if outside else request.player_text
        self.tags = TagWriter(texts, persona, asking, lean, keywords, taken, calibration)
        statements = player_statements(request)
        memory, facts = "recall" in aids, "grounding" in aids
        # what is happening (an event, an alert) before the weather: it answers "what's that racket?"
        world = [v for k, v in sorted(request.memory.world.items(), key=lambda kv: not _EVENT.search(kv[0]))]
        # Asked whether to go out in the fog: "Not in this fog", then the fog's words (its entry first).
        danger = cautioned(request.player_text, world) if "caution" in aids and not outside else []
        world = [*danger, *(entry for entry in world if entry not in danger)]
        self.lead = (
            Lead(texts, refusal_openings(npc_lines(request)), end=True, own_name=persona.display_name)
            if outside
            else None
        )
        if danger:
            self.lead = Lead(texts, openings(danger[0]))
        roles = others_roles(request.player_text, persona.display_name, persona.description,
                             [entry.text for entry in persona.lore])  # fmt: skip
        if roles and self.lead is None:  # "Aren't you the ringmaster?": "No, I'm Nell Farrago."
            self.lead = Lead(texts, DENIALS)
        self.recall = (
            Recall(texts, recalled_words(
                request.player_text, statements,
                lambda question: [e.text for e in called_up(persona, question)], persona.display_name, memory,
                facts, world, from_world_outside,
            ))
            if (memory or facts) and not outside
            else None
        )  # fmt: skip
        # The player's name may be a clause of its own ("Rowan, the fog is thick."); any other ends it.
        names = [*request.player_name.split(), *introduced("my name", statements)]
        self._one_clause = OneClause(texts, names) if "one_clause" in aids else None
        self._texts = texts
        private = private_text(persona)
        blocked = [
            *(self.phrases if "scaffolding" in aids else []),
            *texts.memo("outside", lambda: outside_phrases(texts)),
        ]
        fixed = texts.memo(("blocked", *blocked), lambda: fixed_table(texts, [], blocked))
        private_runs = texts.memo(("private", private), lambda: fixed_table(texts, [private], []))
        self._outside = texts.memo(("outside", "tokens"), lambda: outside_tokens(texts))
        claimed = fixed_table(texts, [], claimed_phrases([*statements, request.player_text]))
        for lead, tokens in first_word_table(texts, roles).items():
            claimed.setdefault(lead, set()).update(tokens)
        self._blocker = Blocker(texts, self.earlier, fixed, claimed, private_runs)
        # A reply may not open as an earlier one of this conversation did (a small model opens most
        # replies alike: "I'm sorry, ..." on a third of them): the token that would complete it is out.
        earlier_openings = map(opening, npc_lines(request)) if "openings" in aids else ()
        self._openings = {tuple(texts.encode(f"{s}{o}")) for o in earlier_openings if o for s in ("", " ")}
        self._opening_tokens = max(map(len, self._openings), default=0)
        self._text_start: int | None = None  # where the reply's text begins, once its tags are written
        self._end_ids = set(end_ids)
        self._retried: dict[int, set[int]] = {}  # position in the reply -> tokens a retry rules out there

    def choose(self, sampler: Sampler, logits: np.ndarray, reply: list[int], may_end: bool) -> int:
        """The next token after ``reply``; ``may_end``: a sentence is out and the last one is finished."""
        allowed = self.tags.allowed(logits)
        if allowed is not None:
            token = sampler.pick(logits, reply, allowed=allowed, favoured=self.tags.favoured())
            self.tags.advance(token)
            return token
        if self._text_start is None:
            self._text_start = len(reply)
        banned = self._blocker.banned(reply) | self._retried.get(len(reply), set()) | self._reopened(reply)
        banned |= self._outside.banned(self._texts, reply[self._text_start :])
        if not may_end:
            banned |= self._end_ids
        # No bracket after the tags: a tag there would be one the grammar did not check.
        banned |= self._texts.containing("[", np.asarray(logits).size)
        closing = self.lead.closing(reply[self._text_start :], logits) if self.lead is not None else None
        token = sampler.pick(logits, reply, allowed=closing, banned=banned, penalized=self._blocker.penalized,
                             presence=PRESENCE_PENALTY,
                             favoured=self._favoured(reply))  # fmt: skip
        if self._one_clause is not None and closing is None:
            token = self._one_clause.instead(token, reply[self._text_start :], logits)
        return token

    def _favoured(self, reply: list[int]) -> dict[int, float] | None:
        """The bonuses on the next token: the lead's while the reply opens, then the answering words'."""
        if self.lead is not None:
            bonus = self.lead.favoured(reply[self._text_start or 0 :])
            if bonus is not None:
                return bonus
        if self.recall is None:
            return None
        bonus = self.recall.favoured(reply)
        return self.recall.opening(bonus) if len(reply) == self._text_start else bonus

    @property
    def text_start(self) -> int | None:
        """Where the reply's text begins (after its tags), once it has."""
        return self._text_start

    def _reopened(self, reply: list[int]) -> set[int]:
        """The tokens that would make the reply's text open as an earlier reply opened."""
        start = self._text_start or 0
        if len(reply) - start >= self._opening_tokens:  # past every opening: nothing to check
            return set()
        written = tuple(reply[start:])
        return {o[-1] for o in self._openings if len(o) == len(written) + 1 and o[:-1] == written}

    def forced(self, limit: int) -> list[int]:
        """The tokens that must come next (a tag's fixed text), at most ``limit``: the model can take
        them in one pass instead of one step each."""
        run: list[int] = []
        while len(run) < limit and (token := self.tags.forced()) is not None:
            run.append(token)
        return run

    def retry(self, position: int, token: int) -> None:
        """Rule out ``token`` at ``position`` of the reply: the sentence it began came out as a repeat."""
        self._retried.setdefault(position, set()).add(token)
