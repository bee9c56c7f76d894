"""What the player's line would make a person feel, from its words: the lean for the reply's emotion tag.

The reply's ``[emotion: X]`` is the model's choice among the persona's emotions, but a 135M model all but
always takes the first of them (measured on the shipped scripts: 36 of 36 replies neutral, insults
included), so the face never moves. Cue words for each emotion the face knows (an insult, a death, a gift,
a monster at the gate, a revolting smell) lean the choice towards the emotion they call for, among those
the persona declares: the same threat makes a guard who declares anger angry and an innkeeper who
declares only fear afraid. A line with no cue leans back to the NPC's usual mood, the first emotion it
declares (the model would copy the last reply's emotion from the history: one insult, and every later
reply angry). A negation just before a cue ("no harm done", "don't be afraid") cancels it.

The lexicon is general English, written for any line, not for the shipped scripts; its hit rate on lines
written apart from it is in docs/conversation-quality.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# Each entry is a word, or a stem ending in "*" that any word starting with it matches. Where one word
# calls for two emotions (an attack: anger or fear), it is listed under both: the persona's declared
# emotions decide, and a word found under several counts for each.
CUES: dict[str, str] = {
    "anger": """
        insult* idiot* fool fools foolish stupid* dumb moron* imbecile* dimwit* halfwit* liar* lying cheat*
        swindl* crook* fraud* thie* steal steals stealing stole stolen robbed robber* scam* laughable
        pathetic useless worthless incompetent lazy rubbish garbage trash shoddy crap* inferior ugly coward*
        weakling* disgrace* shameful hate hated hateful damn damned bastard* scum wretch* vermin insolent
        arrogant rude mock* sneer* scorn* ridicul* threat* kill murder* smash* wreck* destroy* slap* punch*
        attack* betray* traitor* overcharg* ripoff rip-off outrage* unfair blame* accus* lousy extort* bribe*
        miser* greedy
    """,
    "sadness": """
        die died dies dead death deaths dying killed perish* slain drowned loss grave graves funeral* buried
        burial mourn* grie* sorrow* widow* orphan* lonely heartbreak* sad sadly unhappy tragic* tragedy
        weep* wept tears crying cried sick sickness illness fever plague starv* abandon* forgotten
    """,
    "joy": """
        thank* grateful gratitude gift* won win wins winning victory victorious love lovely loved wonderful
        great excellent marvel* splendid superb magnificent amazing beautiful brilliant perfect fantastic
        celebrat* festival feast* congratulat* rescue* rescued hero* heroic happy happi* glad pleased
        pleasure delight* delicious tasty honou* honor* praise* admire* proud generous bless* lucky cheer*
        hooray huzzah wedding married marry baby healed cured
    """,
    "fear": """
        dragon* monster* undead ghoul* ghost* wraith* demon* devil* troll* orc* goblins bandit* raider*
        raid* army armies invad* invasion siege attack* danger* peril* beware warn* warning flee fled plague
        curse* witch* necromanc* blood bloody murder* assassin* kill killer* haunt* scream* doom* omen*
        threat* poison* trapped collapse* earthquake flood* afraid scared terrif* fright* horror* horrible
        nightmare* arrest* hanged gallows execut* dungeon wolves
    """,
    "surprise": """
        unbelievable incredible impossible astonish* amaz* shock* sudden* suddenly strange* bizarre weird
        mysterious unexpected* unheard wow whoa miracle* vanish* disappear* reappear* twin revealed
        discover* secret*
    """,
    "disgust": """
        rot rotten rotting stink* stench reek* filth* filthy sewer* vomit* puke* maggot* worm* rats roach*
        slime* slimy mold* mould* moldy mouldy spoiled rancid putrid foul gross disgust* revolting repuls*
        vile nasty sickening nause* corpse* carcass* entrails guts dung manure piss urine spit spat lice
        fleas pus leech* cannibal* depraved perver* torture*
    """,
}
NEGATIONS = frozenset(
    re.findall(
        r"[\w']+", "not no never nothing don't dont didn't isn't wasn't aren't won't can't cannot without nor"
    )
)
NEGATION_REACH = 2  # a negation cancels a cue this many words after it
APOLOGY = re.compile(
    r"\b(sorry|apologi[sz]e|apologies|forgive me|pardon me|my fault|i was wrong)\b", re.IGNORECASE
)
# Added to the logit of the emotion the cues call for. The bundled model puts the persona's first emotion
# 1 to 8 logits above the others (measured at the choice on the shipped personas): 12 outweighs that habit,
# not a model sure of another emotion by more.
LEAN = 12.0
# Player lines that call for no emotion: the model's choice after them, on a persona's fixed prompt, is its
# usual leaning among that persona's emotions (the tuned model gives neutral 71 % after them, and shows it
# for 52 of 84 lines written to call for each emotion in turn). The reply's choice is calibrated by it
# ("Calibrate Before Use", Zhao et al. 2021): each emotion's log-probability there, times CALIBRATION, is
# taken off its logit. Measured on those 84 lines (bench/emotions.py, docs/conversation-quality.md), the
# tuned model alone 33 apt, calibrated by half its prior 55, by all of it 45 (every line afraid); with the
# lexicon's lean where the line has a cue word: 57.
CONTENT_FREE = ("N/A", "...", "Hm.", "Yes.", "I see.")
CALIBRATION = 0.5


def calibration(log_probs: list[dict[int, float]], choices: dict[int, str], usual: str) -> dict[int, float]:
    """The bonuses for the emotion's first tokens (``choices``: each token's emotion), from each
    content-free line's log-probabilities of them (restricted to them). Neutral is no emotion a line calls
    for: where the NPC's ``usual`` mood is another (a cheerful puppeteer's joy), neutral gets no more than
    it, or the calibration would take the writer's mood away with the model's habit."""
    bonuses = {t: -CALIBRATION * sum(p[t] for p in log_probs) / len(log_probs) for t in choices}
    by_emotion = {emotion: t for t, emotion in choices.items()}
    neutral, mood = by_emotion.get("neutral"), by_emotion.get(usual)
    if neutral is not None and mood is not None and neutral != mood:
        bonuses[neutral] = min(bonuses[neutral], bonuses[mood])
    return bonuses


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, frozenset[str]], tuple[tuple[str, frozenset[str]], ...]]:
    """Whole words, and stems (longest first), each with the emotions it calls for."""
    words: dict[str, set[str]] = {}
    stems: dict[str, set[str]] = {}
    for emotion, text in CUES.items():
        for entry in text.split():
            table = stems if entry.endswith("*") else words
            table.setdefault(entry.rstrip("*"), set()).add(emotion)
    frozen_stems = sorted(((s, frozenset(e)) for s, e in stems.items()), key=lambda item: -len(item[0]))
    return {w: frozenset(e) for w, e in words.items()}, tuple(frozen_stems)


def _called_for(word: str) -> frozenset[str]:
    """A word listed whole is taken as listed ("killed": sadness); else its longest listed stem."""
    words, stems = _lexicon()
    if word in words:
        return words[word]
    return next((emotions for stem, emotions in stems if word.startswith(stem)), frozenset())


def cue_counts(text: str) -> dict[str, int]:
    """How many of ``text``'s words call for each emotion (negated ones left out)."""
    counts: dict[str, int] = {}
    since_negation = NEGATION_REACH + 1
    for word in re.findall(r"[a-z][a-z'-]*", text.casefold().replace("\u2019", "'")):
        if word in NEGATIONS:
            since_negation = 0
            continue
        since_negation += 1
        if since_negation <= NEGATION_REACH:
            continue
        for emotion in _called_for(word):
            counts[emotion] = counts.get(emotion, 0) + 1
    return counts


def called_for(text: str, declared: Iterable[str]) -> str | None:
    """The declared emotion (neutral aside) that ``text``'s words call for most; None when no cue is
    found. Ties go to the one declared first. A player who apologises ("Sorry, that was rude.") calls for
    no anger, whatever words the apology names."""
    counts = cue_counts(text)
    if APOLOGY.search(text):
        counts.pop("anger", None)
    candidates = [e for e in declared if e != "neutral" and counts.get(e)]
    return max(candidates, key=lambda e: counts[e]) if candidates else None
