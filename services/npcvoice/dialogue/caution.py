"""Asked whether to do something now ("Should I push on towards the top now, or wait?", "Is it wise to
walk back into town now?", "Will the boats be all right?") when the world context tells of a danger
(thick fog, sleet, a warning horn), a small model answers as if it were any day ("Push, Maudie.", "You
walk, my friend!"): read blind after session 24, 4 of 18 such world-context lines passed. The reply is
led to open as the corpus's NPCs answer such a question ("Not in this fog, lamb."; ``leads.Lead``), and
its grounding in the world context (``recall``) starts from the danger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from npcvoice.dialogue.recall import about_the_moment, asked_part

# How a caution opens, likeliest first; the danger's words follow (the grounding). With foul weather, the
# weather is named in the opening (``openings``).
CAUTIONS = ("Not in this", "Not with")
# The weather a caution names, by the first of these words the danger has ("a strong east wind with
# squalls of rain" -> wind, "thunderheads building" -> storm, "freezing sleet" -> cold); a danger that is
# no weather (a warning horn, raiders) opens "Not with", its own words after.
_WEATHER = {"fog|foggy": "fog", "mist|misty": "mist", r"murk\w*": "murk", "haze": "haze",
            "blizzards?": "blizzard", "sandstorms?": "sandstorm", "storms?|stormy": "storm",
            r"thunder\w*|lightning": "storm", "sleet": "sleet", r"snow\w*": "snow", "hail": "hail",
            "drizzle": "drizzle", "downpour|rain|raining": "rain", "gales?": "gale",
            "squalls?|winds?|windy|gusts?|gusty|whitecaps": "wind", "dust": "dust", r"frost\w*": "frost",
            "frozen|ice|icy": "ice", r"freez\w*|bitter": "cold", "scorching|blistering": "heat"}  # fmt: skip
_WEATHER_WORD = re.compile(
    r"\b(?:" + "|".join(f"(?P<w{i}>{forms})" for i, forms in enumerate(_WEATHER)) + r")\b", re.IGNORECASE
)
_WEATHER_NAMES = list(_WEATHER.values())

# A question whether to do something, or whether it will go well: "Should I set off?", "Is that wise?",
# "Is now a good time?", "Will they be all right?", "Will you still make the last run?", "Would you
# ride out in this?", "Will his lordship be taking the birds out?".
_WHETHER = re.compile(
    r"^\W*(?:[\w' ]+,\s*)?(?:should|shall|must|ought)\s+(?:i|we)\b"
    r"|\b(?:is|would|will|was)\s+(?:it|that|this|now|today|tonight)\b[^?]{0,30}\b(?:wise|safe|smart|sensible|"
    r"a good (?:time|idea|day|night)|all right|alright|ok|okay)\b"
    r"|\bwill\s+(?:\w+\s+){1,3}be\s+(?:all right|alright|safe|ok|okay|fine)\b"
    r"|\b(?:will|would)\s+(?:you|he|she|they|(?:his|her|the|your)\s+\w+)\s+(?:still\s+)?(?:be\s+)?\w+ing\b"
    r"|\bwill you still\b"
    r"|\bwould you\s+(?:\w+\s+)?(?:ride|go|sail|walk|fly|set|head|travel|cross|venture|step|row)\b",
    re.IGNORECASE,
)
# ... unless it asks whether to keep out of the danger ("Should I wait here?"). (Not "Can I ...?": that
# asks the NPC for something, "Can I go through now?", which the world does not answer.)
_STAYING = re.compile(
    r"\b(?:should|shall|must|ought)\s+(?:i|we)\s+(?:just\s+)?(?:stay|wait|shelter|rest|hide|remain|"
    r"sleep|sit|come in|warm|keep|take cover|bide|stop)\b",
    re.IGNORECASE,
)
# Going somewhere or out: a plan the world context bears on though the line does not say "now" ("I meant
# to cross after this. Is that safe?").
_GOING = re.compile(
    r"\b(go|going|cross|crossing|walk|walking|ride|riding|sail|sailing|set off|set out|head|heading|"
    r"travel|travelling|climb|climbing|push on|leave|leaving|fly|flying|row|venture|hunt|hunting|out)\b",
    re.IGNORECASE,
)
# What makes going out unwise: foul weather (``_WEATHER``), an alarm, raiders, fire.
_DANGER = re.compile(
    rf"{_WEATHER_WORD.pattern}|\b(flood\w*|warning|alarm|raid\w*|bandits?|wolf|wolves|fire|smoke|plague|"
    r"fever|riots?|fighting|battle|siege|attack\w*|collaps\w*|firedamp|surge|surf|swell|moonless)\b",
    re.IGNORECASE,
)
# ... unless the world says it is over or mild ("the wind has dropped", "light rain").
_CALM = re.compile(
    r"\b(passed|dropped|settled|cleared|calm|lifted|eased|after|died down|blown over|broken|gentle|light|"
    r"soft|fresh|mild)\b",
    re.IGNORECASE,
)


def dangers(world: Iterable[str]) -> list[str]:
    """The entries of the world context that tell of a danger now."""
    return [entry for entry in world if _DANGER.search(entry) and not _CALM.search(entry)]


def cautioned(player_line: str, world: list[str]) -> list[str]:
    """The dangers that answer ``player_line``, a question whether to do something now; none when it
    asks something else, or the world tells of no danger."""
    question = asked_part(player_line)
    if not _WHETHER.search(question) or _STAYING.search(question):
        return []
    if not (about_the_moment(player_line, world) or _GOING.search(player_line)):
        return []
    return dangers(world)


def openings(danger: str) -> tuple[str, ...]:
    """How a caution against ``danger`` (one of ``dangers``) opens: "Not in this fog", else "Not with"
    (one opening: two that share "Not" would leave the model to choose after it)."""
    weather = _WEATHER_WORD.search(danger)
    if weather is None or weather.lastgroup is None:
        return (CAUTIONS[1],)
    return (f"{CAUTIONS[0]} {_WEATHER_NAMES[int(weather.lastgroup[1:])]}",)
