"""Whom the NPC speaks to. A small model ends a reply with a name, and often the wrong one: one its context
gives someone else ("Strange words, Odo!" to Senna, whose partner Odo is; "Stained glass, Maudie." to
Ilsabet, Maudie being a barge skipper of the lore). Said to the player, it is a slip a reader notices at
once; so is a name nothing in the context or the conversation has ("Strange words, Eryndor." to Hesper).
``Address`` finds such a name where a sentence speaks to someone (after a comma, closing a clause) and puts
the player's name in its place, or, while the NPC does not know it (or the sentence already says it),
leaves the name out.

The same model turns the player's kin into its own: told "my grandmother Bryony", it says "my granddaughter
Bryony" (the claimed-phrase guard blocks "my grandmother", not another word before the name). Where a reply
says "my <person> <name>" of someone the player called theirs, and whom the NPC's own lore does not name,
it becomes "your <the player's word> <name>". And "Your Teodor Rusk, cooper" before the player's own name
is "You're Teodor Rusk". The player's name said with a letter or two wrong ("Tamsine" to Tamsin), where
nothing in the context has that spelling, is said right.

A name is changed only when the context says it is a person's (after a word for one: "my partner Odo",
"skippered by Maudie Venn", "my sister's boys, Pip and Ned") and none of its words is the player's. Where
the context puts the name after the same word the reply does ("the great bronze bell, Old Tomas"), it is
what the thing is called, not whom the NPC speaks to, and it stays. In a scene, the NPCs and players it
names are left alone: the NPC may speak to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from npcvoice.dialogue.leads import ADDRESS_WORDS
from npcvoice.dialogue.recall import introduced
from npcvoice.dialogue.steering import player_statements
from npcvoice.dialogue.types import TurnRequest
from npcvoice.personas.schema import Persona

_WORD = re.compile(r"[\w'-]+")
_QUOTED = re.compile(r'"[^"]*"')
_NAME_WORD = r"[A-Z][a-z][\w-]*"
# A name said to someone: after a comma, one to four capitalised words ("Pip and Ned"), closing a clause
# (so not a possessive, "the litter, Duchess's"); not the first of a list ("Me, Billy, Red and the twins").
_SPOKEN_TO = re.compile(
    rf"(,\s+)({_NAME_WORD}(?:\s+(?:and\s+)?{_NAME_WORD}){{0,3}})(?!,\s*[A-Z])(?=\s*(?:[,.!?;:]|$))"
)
# Words for a person, which come before their name: kin, company, trades that take a name.
_PERSON_WORDS = (
    "partner|wife|husband|son|sons|daughter|daughters|brother|brothers|sister|sisters|cousin|cousins|uncle|"
    "aunt|friend|friends|mother|father|grandmother|grandfather|grandma|grandpa|granddaughter|grandson|"
    "nephew|nephews|niece|nieces|boy|boys|girl|girls|child|children|kids|baby|apprentice|master|mistress|"
    "skipper|captain|widow|widower|neighbour|neighbor|lad|lass|sweetheart|betrothed|mate|man|woman|"
    "da|ma|pa|dad|mum|mom|lord|lady|sir|dame"
)
_NAMED = "by|named|called|name is|name's"
_PERSON = re.compile(
    rf"\b(?i:{_PERSON_WORDS}|{_NAMED}),?\s+({_NAME_WORD}(?:\s+(?:and\s+)?{_NAME_WORD})*)"
    # ... or before what a person does: "Lowri said", "Maudie drowned"
    rf"|({_NAME_WORD}(?:\s+{_NAME_WORD})*)\s+(?:said|says|told|tells|asked|asks|died|drowned|married|wed)\b"
)
# "my sister Lowri", "my grandmother's cousin Bryony", "Lowri, my sister": the player's people, as they told
# it; a reply's "my wife Lowri" takes one as the NPC's own.
_THEIRS = re.compile(
    rf"\b[Mm]y\s+((?i:{_PERSON_WORDS}))(?:'s)?,?\s+({_NAME_WORD})"
    rf"|\b({_NAME_WORD}),\s+my\s+((?i:{_PERSON_WORDS}))\b"
)
_MY_PERSON = re.compile(rf"\b([Mm]y)\s+((?i:{_PERSON_WORDS}))\s+({_NAME_WORD})")
# "Your Teodor Rusk, cooper from Millbrae.": asked "do you remember my name?", the model writes "Your" where
# it means "You're"; before the player's own name it cannot mean anything else.
_YOUR_NAME = re.compile(rf"\b([Yy]our)\s+({_NAME_WORD})")
# A person word (or "one") before the comma: the name says who that is ("My da, Amos, did this round";
# "Had one, Shinroku."), it is not said to the player.
_NAMES_WHO = re.compile(rf"^(?:{_PERSON_WORDS}|one)$")
# Words for an animal: a name the context puts beside one is a beast's ("an old bitch called Tansy", "Sir
# Pinch is a crab"), and an NPC speaks to its beasts ("Good girl, Tansy!").
_ANIMALS = frozenset(
    _WORD.findall(
        "dog dogs hound hounds mastiff bitch pup puppy horse horses mare gelding stallion pony ponies mule "
        "donkey ox cow cat kitten falcon hawk goshawk merlin sparrowhawk eagle owl raven crow bird birds "
        "goat pig sow boar hen cock rooster ferret rat mouse camel wolf crab goose parrot"
    )
)
# Words either side of a name that the context looks at: the reply's word before the comma found within
# this many words before the name in the context names what the thing is called ("bell, Old Tomas"), not
# someone spoken to; an animal word this near makes the name a beast's.
NEAR_WORDS = 4
# How alike (difflib's ratio) a word said to the player and the player's name are when it is the name
# misspelt: "Tamsine" and "Tamsin" 0.92, "Jorey" and "Jory" 0.89; not "Rowland" and "Rowan" (0.83).
MISSPELT_RATIO = 0.85


def _words(text: str) -> list[str]:
    return [w.lower().removesuffix("'s") for w in _WORD.findall(text)]


@dataclass(frozen=True)
class Address:
    """The player's name (its first word, or "") and the words of other people's names."""

    player: str
    player_words: frozenset[str]
    others: frozenset[str]
    context: tuple[tuple[str, ...], ...]  # the texts the names came from, as words
    theirs: Mapping[str, str] = field(default_factory=dict)  # a name's first word -> the player's word
    heard: frozenset[str] = frozenset()  # every word of the context and the conversation's turns

    @classmethod
    def of(cls, persona: Persona, request: TurnRequest) -> Address:
        statements = player_statements(request)
        named = [request.player_name] if request.player_name else introduced("my name", statements)
        player = " ".join(named).split()
        memory = request.memory
        # whom the NPC knows of itself (not the summary: it tells what the player said)
        known = [
            persona.description,
            *persona.example_lines,
            *(entry.text for entry in persona.lore),
            *memory.world.values(),
        ]
        texts = [*known, memory.summary, *statements]
        context = tuple(tuple(_words(text)) for text in texts if text)
        people = {w for text in texts for m in _PERSON.finditer(text) for w in _words(m[1] or m[2])}
        beasts = {w for w in people if any(_ANIMALS & set(near) for near in _near(context, w, NEAR_WORDS))}
        # in a scene, whom the NPC heard speak and to whom: it may speak to them
        present = {
            w for t in memory.recent_turns if t.role == "event" for w in _words(_QUOTED.sub(" ", t.text))
        }
        mine = {w.lower() for w in player}
        own = set(_words(persona.display_name))  # "Agathe, Sister Agathe.": the NPC's own, said of itself
        lore = {w for text in known for w in _words(text)}
        theirs: dict[str, str] = {}
        for statement in statements:
            for m in _THEIRS.finditer(statement):
                name, word = (m[2], m[1]) if m[1] else (m[3], m[4])
                if name.lower() not in lore | mine:
                    theirs.setdefault(name.lower(), word.lower())
        heard = {w for words in context for w in words} | {
            w for t in memory.recent_turns for w in _words(t.text)
        }
        return cls(
            player[0] if player else "",
            frozenset(mine),
            frozenset(people - beasts - mine - own - present - {"and"}),
            context,
            theirs,
            frozenset(heard | mine | own | set(_words(request.player_text))),
        )

    def mend(self, sentence: str) -> str:
        """``sentence`` with a name of someone else's said to the player made the player's (or left out), and
        the player's people given back to them."""
        sentence = _MY_PERSON.sub(self._given_back, sentence)
        sentence = _YOUR_NAME.sub(self._you_are, sentence)
        return _SPOKEN_TO.sub(lambda m: self._to_player(m, sentence), sentence)

    def _you_are(self, match: re.Match[str]) -> str:
        if match[2].lower() not in self.player_words:
            return match.group(0)  # "Your Grace", "your Old Tomas"
        return f"{match[1][0]}ou're {match[2]}"

    def _given_back(self, match: re.Match[str]) -> str:
        word = self.theirs.get(match[3].lower())
        if word is None:
            return match.group(0)
        return f"{'Your' if match[1] == 'My' else 'your'} {word} {match[3]}"

    def _to_player(self, match: re.Match[str], sentence: str) -> str:
        spelt = " ".join(self.player if self._misspelt(w) else w for w in match.group(2).split(" "))
        if spelt != match.group(2):
            return f"{match.group(1)}{spelt}"
        names = _words(match.group(2))
        if self.player_words & set(names) or not (self.others & set(names) or self._made_up(names)):
            return match.group(0)
        before = _words(sentence[: match.start()])[-1:]
        if before and (_NAMES_WHO.match(before[0]) or self._named_after(before[0], names[0])):
            return match.group(0)
        # left out where the sentence says it already: not "Ilsabet will go first, Ilsabet."
        if not self.player or self.player.lower() in _words(sentence):
            return ""
        return f"{match.group(1)}{self.player}"

    def _made_up(self, names: list[str]) -> bool:
        """Whether a name said to the player is one nothing in the context or the conversation has, nor a
        word anyone is called by ("Strange words, Eryndor." to Hesper)."""
        return (
            not self.heard & set(names) and not _NAMES_WHO.match(names[0]) and names[0] not in ADDRESS_WORDS
        )

    def _misspelt(self, word: str) -> bool:
        """Whether ``word`` is the player's name with a letter or two more, fewer or changed, beginning
        as it does, and nothing in the context is called that."""
        name, player = word.lower(), self.player.lower()
        if not player or name == player or name[:3] != player[:3] or abs(len(name) - len(player)) > 2:
            return False
        close = SequenceMatcher(None, name, player).ratio() >= MISSPELT_RATIO
        return close and not any(name in words for words in self.context)

    def _named_after(self, word: str, name: str) -> bool:
        """Whether the context puts ``name`` a few words after ``word`` ("bell, Old Tomas")."""
        return any(word in before for before in _near(self.context, name, NEAR_WORDS, after=False))


def mender(persona: Persona, request: TurnRequest) -> Callable[[str], str]:
    """``Address.mend`` for this turn, its names gathered only once a sentence says a name after a comma,
    after "my <person>" or after "your" (most turns' never do): nothing on the way to the reply's first
    token."""
    built: list[Address] = []

    def mend(sentence: str) -> str:
        if (
            not _SPOKEN_TO.search(sentence)
            and not _MY_PERSON.search(sentence)
            and not _YOUR_NAME.search(sentence)
        ):
            return sentence
        if not built:
            built.append(Address.of(persona, request))
        return built[0].mend(sentence)

    return mend


def _near(
    context: Iterable[tuple[str, ...]], word: str, distance: int, after: bool = True
) -> Iterator[tuple[str, ...]]:
    """The words within ``distance`` before (and ``after``, after) each place ``word`` is in ``context``."""
    for words in context:
        for i, w in enumerate(words):
            if w == word:
                yield words[max(0, i - distance) : i] + (words[i + 1 : i + 1 + distance] if after else ())
