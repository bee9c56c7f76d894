"""When the player asks what they told the NPC ("Do you remember my name?", "Where did I say I came
from?"), or asks about something the NPC's lore holds ("Why is that tunnel walled up?"), the words that
answer it are made likelier while the reply is written.

The prompt already holds what the player said about themselves (its facts, its recent lines), but a small
model seldom copies a name from its context: it invents one. So the engine finds the player's statement
the question is about (the one sharing most of the question's words; else every statement about
themselves) and the words of it that may answer (nearest the shared words first: "my name is -> Aric",
"arrived from -> Vaelmoor", "a wool trader -> wool"), and gives their tokens a logit bonus until one of
them is written. Nothing is forced: the model still chooses among them, and its sentence.

Any other question is grounded the same way (the aid ``grounding``) in the lore entry its words call up
(the one sharing most of its words: "What does the guild charge?" -> "penny", "silver"), or, asked about
the moment ("Should I go down now?"), in the world context the game set; and once the reply is on that
source, the source's next token is favoured wherever the reply is copying it, to the end of its clause, so
that a fact comes out whole ("twenty-two days", not "twenty days"). Asked who it is ("Who am I talking
to?"), the NPC is pushed to its own name, not one from its lore nor the player's.

Asked who they are, or their name, trade or home, the player's answer is how they introduced themselves
("my name's Jory Halloran, a rope-maker from Saltgrave"); asked "who" or "where" anything else, a person
("my father") or a place of the statement before its other words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from npcvoice.dialogue.blocking import without_possessive
from npcvoice.dialogue.deflection import from_outside
from npcvoice.dialogue.vocabulary import TokenTexts

# Logit added to the first token of the likeliest answering word (a quarter less for each next one), until
# the reply has written one of them.
RECALL_BONUS = 4.0
# The same for an answer that is certain: the words the player introduced themselves with, asked for
# them; the NPC's own name, asked who it is. A small model is sure of another name in its place (its own
# or its lore's for the player's, the player's for its own), and a lesser bonus seldom outweighs it.
SURE_BONUS = 12.0
# The same for the words of a lore entry or the world context that answers a question.
LORE_BONUS = 2.5
# The same for the world context, asked about the moment: what the game says is happening is seldom
# the model's first thought ("Set off, then." in a steady drizzle on the moor).
WORLD_BONUS = 4.0
MAX_WORDS = 4
# Logit taken off the player's own name as a reply's first word, asked who someone else is ("Who is it
# I'm going over to visit?" -> "Teodor Rusk, Vennholm cooper." from Teodor): the name a small model is
# surest of in the conversation, and never the answer.
SHUN_PENALTY = 8.0
STEM = 5


def wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that say nothing about what the question is after, nor answer it.
_FILLER = wordset(
    "i me my myself you your yours we us our he she they him her them his hers their theirs "
    "a an the and or but so then just also too very really "
    "do did does done doing is am are was were be been being have has had will would can could shall "
    "should may might must what whats where who whom whose which when why how that this these those it "
    "its there here say said says tell told telling remember remembers recall know knew again still ever "
    "please of to for on at by with about as if not no yes oh well now all any some one way thing after "
    "before past "
    "hello hi hey good morning evening night day greetings farewell goodbye thanks thank"
)
# Words that tie a sentence together, which a question may share with a statement but which answer
# nothing.
_NOT_ANSWERS = wordset(
    "from in into out at on off up down over under near by to toward towards across through i'm i've "
    "i'd i'll let get got go going went come came coming"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SELF = re.compile(r"\b(i|i'm|i've|i'd|my|me|myself)\b", re.IGNORECASE)
_RECALLS = re.compile(
    r"\b(remember|recall|remind|forgot|forgotten|did i (say|tell|mention)|i told you|"
    r"(what|who|where|which) i (said|told|mentioned)|(know|tell me) (my|who i|what i|where i|which))\b",
    re.IGNORECASE,
)
_ASKS = re.compile(rf"\?|{_RECALLS.pattern}", re.IGNORECASE)
# "my", "me", "who am I", "what I do": what the player is or did, not what they hear or see now
_ABOUT_SELF = re.compile(
    r"\b(my|am i|i am|i'm|i was|was i|do i|did i|i (do|did|come|came|live|work|trade|sell|hail|lost|bring|"
    r"brought|called))\b",
    re.IGNORECASE,
)
_WHO = re.compile(r"\b(who|whom|whose)\b", re.IGNORECASE)
_WHERE = re.compile(r"\b(where|which (town|village|city|place))\b", re.IGNORECASE)
# Who a person is to the player: what answers "who" as well as a name does.
_KIN = wordset(
    "father mother brother sister son daughter wife husband cousin uncle aunt nephew niece grandmother "
    "grandfather grandson granddaughter friend partner master mistress bride groom sweetheart boys girls "
    "children child baby"
)
_DATES = wordset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december"
)
_WH = re.compile(r"\b(who|what|whats|where|which|whose)\b", re.IGNORECASE)
_MAY_I = re.compile(r"^\W*(should|shall|can|could|may|might|must|will|would)\s+i\b", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;:!?]")
_SENTENCE = re.compile(r"[^.!?]*[.!?]*")
# A question about the moment: what the game says is happening now answers it.
_NOW = re.compile(
    r"\b(now|today|tonight|this morning|this evening|at the moment|currently|soon|sudden|suddenly|in this|"
    r"what'?s wrong|going on|happening|happened|racket|commotion|a good (?:day|time|night))\b",
    re.IGNORECASE,
)
# A question about who the NPC is: its answer is not in the lore, and a name from the lore is a slip.
_WHO_YOU = re.compile(
    r"\b(your name|call(ed)? you|who are you|who\b[^?]*\bam i (talking|speaking)|"
    r"(are|aren'?t) you (the|a|an)\b|and you are\W*$)",
    re.IGNORECASE,
)
# The NPC's name asked for without a question ("Forgive me, I never asked your name.", "I didn't catch your
# name."): the model, not pushed to its own, answered with the player's.
_NAME_UNHEARD = re.compile(
    r"\b(never|didn'?t|did not|don'?t|do not|haven'?t|have not|not)\b[^.?!]*\b(ask|asked|catch|caught|"
    r"know|knew|get|got|hear|heard|tell|told|give|gave|learn|learned|learnt)\b[^.?!]*\byour name\b|"
    r"\btell me your name\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"\?|^\W*(who|what|where|when|why|how|which|tell me)\b", re.IGNORECASE)
# What the player says of who they are, when introducing themselves: "My name's Jory Halloran, a
# rope-maker from Saltgrave", "I'm Senna Brookhollow, a prospector out of Tallow Cross", "I'm a cooper".
_NAME = r"[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){0,2}"
_INTRODUCING = r"(?i:\b(?:my name is|my name's|name's|i'm|i am|call me)\s+)"
_INTRODUCED = re.compile(rf"{_INTRODUCING}({_NAME})")
_TRADE = re.compile(
    rf"(?:(?i:\b(?:i'm|i am|i work as)\s+)|{_INTRODUCING}{_NAME},\s+)"
    r"(?:an?\s+)((?:[a-z][\w-]*\s+)?[a-z][\w-]*)"
    r"|\ban?\s+([a-z][\w-]*)\s+by trade"
    # "Name's Ysolde, I blow glass in Saltcombe", "I'm Gus, I push the lamp-oil cart"
    rf"|{_INTRODUCING}{_NAME},\s+(?:and\s+)?I\s+((?!am\b)[a-z]+\s+(?:(?:the|a|an|some)\s+)?[a-z][\w'-]*)"
)
_HOME = re.compile(rf"(?i:\b(?:from|out of|live in|living in|home in|home is)\s+)({_NAME})")
# ... and what a question about the player asks of it: "Do you remember my name?", "What do I do for a
# living?", "Which town did I say I hail from?", "Who am I?" (all three).
_ASKS_NAME = re.compile(r"\b(my name|i'?m called|am i called|call me|who am i|who i am)\b", re.IGNORECASE)
_ASKS_TRADE = re.compile(
    r"\b(for a living|my (trade|work|job|craft|line)|who am i|who i am|what (do|did) i (do|make)|"
    r"what i do)\b",
    re.IGNORECASE,
)
_ASKS_HOME = re.compile(r"\b(from|live|lived|hail|home|village|town|city)\b|who am i|who i am", re.IGNORECASE)
# A trade's words that say where, not what: "a farrier from Bellmere" is a farrier.
_NOT_TRADE = re.compile(r"\s+(from|out|of|by|in|at|on|to|here|and|sent|down|up|with)\b.*$")


def asks_about_the_player(line: str) -> bool:
    """A question about the player themselves: "Do you remember my name?", "What do I trade in?"; not
    one about what they may do ("Should I go down now?", "Can I buy a map?")."""
    about = _about(line)
    if _RECALLS.search(about):
        return True
    asked = asked_part(line)
    if _WHO_YOU.search(asked) or _MAY_I.search(asked):
        return False
    return bool(_WH.search(asked) and _ABOUT_SELF.search(about))


def _about(line: str) -> str:
    """What a question is about: its asking sentence, or with a short one ("What is it?") the whole line
    ("You'll need my name to sign it. What is it?")."""
    asked = asked_part(line)
    return asked if len(asked.split()) > 3 else line


def introduced(question: str, statements: Iterable[str]) -> list[str]:
    """What the player said of who they are that ``question`` asks for, in their own words: their name
    ("my name's Jory Halloran"), trade ("a rope-maker"), home ("from Saltgrave"), the first they said of
    each; "Who am I?" asks all three. Empty when they never said it, or the question asks something else."""
    wanted = [
        pattern
        for asks_it, pattern in ((_ASKS_NAME, _INTRODUCED), (_ASKS_TRADE, _TRADE), (_ASKS_HOME, _HOME))
        if asks_it.search(question)
    ]
    words: list[str] = []
    for pattern in wanted:
        first = next(
            (
                match
                for statement in statements
                if _SELF.search(statement)
                for match in pattern.finditer(statement)
            ),
            None,
        )
        if first:
            said = _NOT_TRADE.sub("", next(filter(None, first.groups())))
            words += [w for w in _words(said) if w.lower() not in _FILLER]
    return words


def asks_about_the_world(line: str) -> bool:
    """A question about anything but the player themselves or who the NPC is ("Why is that tunnel walled
    up?"; not "Where did I say I'm from?", "What's your name?")."""
    question = asked_part(line)
    return asks(question) and not asks_about_the_player(line) and not _WHO_YOU.search(question)


def asks(line: str) -> bool:
    """A question of any kind ("How deep is the mine?", "Tell me about the war")."""
    return bool(_QUESTION.search(line))


def content_stems(text: str) -> set[str]:
    """The stems of ``text``'s words that carry meaning (no fillers, nothing under three letters)."""
    return {_stem(w) for w in content_words(text)}


def content_words(text: str) -> list[str]:
    """``text``'s words that carry meaning, as written (no fillers, nothing under three letters)."""
    return [w for w in _words(text) if len(w) > 2 and w.lower() not in _FILLER]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _stem(word: str) -> str:
    """Enough of a word to match its forms ("trade", "trader", "trading"; "name's", "name")."""
    return without_possessive(word.lower())[:STEM]


def told(statements: Iterable[str]) -> list[str]:
    """What the player said, without what they asked that is not about themselves ("What makes ore count
    as top quality?"): a question shares words with the statements, not an answer."""
    kept = (
        " ".join(s.strip() for s in _SENTENCE.findall(line) if s.strip() and (not asks(s) or _SELF.search(s)))
        for line in statements
    )
    return [line for line in kept if line]


def answer_words(
    question: str,
    statements: Iterable[str],
    addressee: Iterable[str] = (),
    about_player: bool = True,
    limit: int | None = MAX_WORDS,
) -> list[str]:
    """The words of ``statements`` (the player's earlier ones; with ``about_player`` false, lore entries)
    that may answer ``question``.

    From the statement sharing most of the question's words, its other words nearest the shared ones; if
    none shares any, from every statement the player made about themselves, the words nearest "I" or
    "my" (lore: from the first entry, in its order, which says what it is about first). Names and places
    (capitalised inside a sentence) before other words at the same distance. Left out: fillers, the
    question's own words and the ``addressee``'s (the NPC's name, which the player says to it: "Good
    evening, captain")."""
    asked = _asked(question)
    left_out = asked | {_stem(w) for w in addressee}
    chosen, best = _chosen(question, statements, about_player)
    # "Who did I say the drink was for?" -> father; "Where was I heading?" -> Carrowmouth
    who = about_player and bool(_WHO.search(question))
    where = about_player and bool(_WHERE.search(question))
    ranked: dict[str, tuple[bool, bool, int, bool]] = {}
    for statement in chosen:
        words = _words(statement)
        near_self = not best and about_player
        anchors = [i for i, w in enumerate(words) if (_SELF.fullmatch(w) if near_self else _stem(w) in asked)]
        for i, word in enumerate(words):
            if word.lower() in _FILLER or word.lower() in _NOT_ANSWERS or _stem(word) in left_out:
                continue
            distance = min((abs(i - j) for j in anchors), default=len(words) if about_player else i)
            named = bool(i and word[0].isupper()) and word.lower() not in _DATES
            kin = word.lower() in _KIN
            person_or_place = (who and not (named or kin)) or (where and not named)
            rank = (person_or_place, who and not kin, distance, not named)
            ranked[word] = min(ranked.get(word, rank), rank)
    return sorted(ranked, key=ranked.__getitem__)[:limit]


def _asked(question: str) -> set[str]:
    return {_stem(w) for w in _words(question) if w.lower() not in _FILLER}


def _chosen(question: str, statements: Iterable[str], about_player: bool) -> tuple[list[str], int]:
    """The statements ``answer_words`` takes its words from, and how many words they share with
    ``question``: the one sharing most; if none shares any, every statement about the player (lore: the
    first entry)."""
    asked = _asked(question)
    scored = [(len({_stem(w) for w in _words(s)} & asked), s) for s in statements]
    best = max((score for score, _ in scored), default=0)
    if best or not about_player:
        return [s for score, s in scored if score == best][:1], best
    return [s for _, s in scored if _SELF.search(s)], best


@dataclass(frozen=True)
class Recalled:
    """What a reply is pushed towards: ``words``, likeliest first, with ``bonus`` for the first; none
    once the reply holds any of ``settled`` (the words themselves; for lore, any word of its entry)."""

    words: list[str]
    settled: list[str]
    bonus: float
    source: str = ""  # lore: the entry, whose next token gets the bonus where the reply copies it
    speaker: tuple[str, ...] = ()  # the NPC's names, which the source may hold and a copy may not say
    shunned: tuple[str, ...] = ()  # words the reply may not well open with (the player's name, asked who)


NOTHING = Recalled([], [], 0.0)


def recalled_words(
    player_line: str,
    statements: list[str],
    lore_for: Callable[[str], list[str]],
    npc_name: str,
    memory: bool,
    facts: bool,
    world: list[str] | None = None,
    outside: bool | None = None,
) -> Recalled:
    """What answers the player's line: asked about themselves, words of what they said (``memory``);
    asked anything else (``facts``), words of what the game says is happening (``world``: the weather,
    an event) when the line is about the moment ("now", "today") or shares a word with it, else of the
    lore entries (``lore_for``) its question calls up; else none.

    The question is the line's last sentence that asks ("My partner is up top. | How do folk get down?"):
    what the player says of themselves around it is not what they ask. ``outside``: whether the line is
    from outside the world, where the caller knows it already (``deflection.from_outside``)."""
    question = asked_part(player_line)
    if asks_about_the_player(player_line):
        if not memory:
            return NOTHING
        return remembered(player_line, statements, npc_name)
    # a line from outside the world ("what's the wifi password up here?"): the lore its words call up (the
    # clock tower) is no answer to it
    unheard = bool(_NAME_UNHEARD.search(player_line))  # "I never caught your name."
    if (
        not facts
        or not (asks(question) or unheard)
        or (from_outside(player_line) if outside is None else outside)
    ):
        return NOTHING
    if unheard or _WHO_YOU.search(question):  # "Who am I talking to?": its own name, not one from its lore
        own = _words(npc_name)
        return Recalled(own, own, SURE_BONUS)
    world = world or []
    # "I meant to walk out past the west gate. | Is that wise?": the line says what "that" is
    about = _about(player_line)
    timely = about_the_moment(player_line, world)
    sources = world if timely else lore_for(question)
    if not sources:
        return NOTHING
    asked = about if timely else question
    # Once the reply is on the source (any of its words), it is pushed along it (Recall.favoured).
    settled = answer_words(asked, sources, _words(npc_name), about_player=False, limit=None)
    source = _chosen(asked, sources, about_player=False)[0][0]
    bonus = WORLD_BONUS if timely else LORE_BONUS
    return Recalled(settled[:MAX_WORDS], settled, bonus, source, tuple(_words(npc_name)))


def about_the_moment(player_line: str, world: list[str]) -> bool:
    """Whether ``player_line`` asks about what the game says is happening (``world``): it says "now",
    "today", "what's going on" and the like, or shares a word with the world context."""
    return bool(world) and bool(
        _NOW.search(player_line) or _chosen(_about(player_line), world, about_player=False)[1]
    )


def remembered(player_line: str, statements: list[str], npc_name: str) -> Recalled:
    """The words of what the player said (``statements``) that answer ``player_line``, a question about
    themselves: how they introduced themselves, when it asks that (their very words, pushed harder: the
    model is sure of a name of its own, its lore's or the player's in its place); else the words of the
    statement it is about."""
    about, said = _about(player_line), told(statements)
    asking = " ".join(s for s in _SENTENCE.findall(player_line) if _ASKS.search(s))  # "Who am I? Say it."
    own = introduced(f"{about} {asking}", said)[:MAX_WORDS]
    if own:
        return Recalled(own, own, SURE_BONUS)
    words = answer_words(about, said, _words(npc_name))
    # asked who someone is, not who they are: "Who is it I'm going over to visit?" is not the player
    shunned = tuple(introduced("my name", said)) if _WHO.search(about) else ()
    return Recalled(words, words, RECALL_BONUS, shunned=shunned)


def asked_part(line: str) -> str:
    """The last sentence of ``line`` that asks, else the whole line."""
    asking = [s for s in _SENTENCE.findall(line) if s.strip() and _ASKS.search(s)]
    return asking[-1].strip() if asking else line


class Recall:
    """The answering words of one reply as token sequences, favoured while none is written yet: the first
    token of each, and after a word's first tokens the token that goes on with it. The likeliest answer
    gets the full bonus, each next one a quarter of it less."""

    def __init__(self, texts: TokenTexts, recalled: Recalled) -> None:
        self.words = recalled.words
        self._bonus = recalled.bonus
        self._sequences = [
            (t, recalled.bonus * (MAX_WORDS - rank) / MAX_WORDS)
            for rank, word in enumerate(self.words)
            for variant in _written(word)
            if (t := texts.encode(variant))
        ]
        settling = [t for word in recalled.settled for v in _written(word) if (t := texts.encode(v))]
        self._settled = _Written(settling)
        source = texts.encode(" " + recalled.source) if recalled.source else []
        # where the reply's last two tokens are two tokens of the source in a row: the source's next one,
        # unless it begins the NPC's own name (lore speaks of it in the third person: "Wystan feeds them")
        # and not past the end of a clause (";", "."): one fact, not the entry's every clause
        own = {texts.encode(v)[0] for name in recalled.speaker for v in (" " + name, name)}
        steps = zip(source, source[1:], source[2:], strict=False)
        ends = {c for c in source if _CLAUSE_END.search(texts.text(c))}
        self._copy = {(a, b): c for a, b, c in steps if c not in own and c not in ends}
        # ... nor onto "she" or "his" after the entry has named the NPC ("Sister Agathe keeps forty-two
        # skeps, and every August she carries a dozen up": the NPC is not to say "she" of itself): there the
        # pronoun is pushed down, so that the reply goes on in its own person
        third = texts.memo("third person", lambda: _single_tokens(texts, _THIRD_PERSON))
        self._not_copied: dict[tuple[int, int], int] = {}
        for i in range(2, len(source)):
            if source[i] in third and own.intersection(source[:i]):
                self._not_copied[(source[i - 2], source[i - 1])] = source[i]
        self._shunned = {t[0] for word in recalled.shunned for v in _written(word) if (t := texts.encode(v))}

    def opening(self, bonus: dict[int, float]) -> dict[int, float]:
        """``bonus`` for a reply's first word: less for the words it may not well open with."""
        return bonus | {t: bonus.get(t, 0.0) - SHUN_PENALTY for t in self._shunned}

    def favoured(self, reply: list[int]) -> dict[int, float]:
        """Bonuses for the tokens that may come after ``reply``: the next token of an answering word begun
        (always: a surname's second token once its first is out, though the first name settled). Once the
        reply has written one of the
        settling words, no more, but where it is copying its source (two tokens of it in a row), the
        source's next token, so that a fact is copied whole ("twenty-two days", not "twenty days"), or,
        where that is the source's "she" or "his" of the NPC, less for it."""
        bonus: dict[int, float] = {}
        for sequence, _ in self._sequences:
            for done in range(1, len(sequence)):
                if reply[-done:] == sequence[:done]:  # a word begun: its next token
                    bonus[sequence[done]] = max(bonus.get(sequence[done], 0.0), self._bonus)
        if self._settled.held(reply):
            last = (reply[-2], reply[-1]) if len(reply) > 1 else (-1, -1)
            if (following := self._copy.get(last)) is not None:
                bonus[following] = self._bonus
            if (theirs := self._not_copied.get(last)) is not None:  # "she" of the NPC: not in its mouth
                bonus[theirs] = -SHUN_PENALTY
            return bonus
        if not bonus:
            for sequence, value in self._sequences:
                bonus[sequence[0]] = max(bonus.get(sequence[0], 0.0), value)
        return bonus


# How lore speaks of the NPC that a reply in its voice does not.
_THIRD_PERSON = ("she", "he", "her", "his", "him", "herself", "himself")


def _single_tokens(texts: TokenTexts, words: Iterable[str]) -> frozenset[int]:
    """The tokens that are one of ``words`` whole, as a reply may write it (``_written``)."""
    return frozenset(t[0] for word in words for v in _written(word) if len(t := texts.encode(v)) == 1)


def _written(word: str) -> list[str]:
    """How a reply may write ``word``: after a space or not, and capitalised to open a sentence ("Cooper,
    from Millbrae.", not "cooper, from Millbrae.")."""
    capital = word[:1].upper() + word[1:]
    return list(dict.fromkeys((" " + word, word, " " + capital, capital)))


class _Written:
    """Whether a reply holds any of ``runs`` (token sequences), asked after every step: only the runs
    that end in the tokens added since the last time are looked for, unless the reply was rolled back."""

    def __init__(self, runs: list[list[int]]) -> None:
        self._runs = runs
        self._seen: list[int] = []
        self._held = False

    def held(self, reply: list[int]) -> bool:
        if reply[: len(self._seen)] != self._seen:  # rolled back (a sentence written again): from the start
            self._seen, self._held = [], False
        if not self._held:
            for end in range(len(self._seen) + 1, len(reply) + 1):
                if any(reply[max(0, end - len(run)) : end] == run for run in self._runs):
                    self._held = True
                    break
        self._seen = list(reply)
        return self._held
