"""The hand-written aids on a reply's logits, each of which can be turned off.

They were written for the bundled model, which could not do these things by itself; a model tuned on the
NPC corpus (``npcvoice tune``) may not need them, and an aid a model does not need only gets in its way
(a lean to a word-listed emotion, a bonus to a word the player said). Which aids a model gets is in its
manifest (``aids``) if it says, else ``TUNED_AIDS`` for a model tuned on the corpus (its compact prompt)
and ``UNTUNED_AIDS`` (all but the emotion calibration) for any other; the dialogue options may override
it (``engine.aids``), as ``bench/npc_mind.py --ablate`` does to measure each one.

The guards are not aids and are always on: the reply's tags under constraint, no repeat of an earlier
reply, no run of the persona's private text, no word from outside the world (``blocking.OUTSIDE_WORDS``: AI,
internet, phone, ...), no prompt text spoken (the reply filter), no name of someone else's said to the
player (``address``).
"""

from __future__ import annotations

from collections.abc import Iterable

AIDS: dict[str, str] = {
    "emotion_lean": "each emotion as likely as the player's line makes it (a small model learned from "
    "labelled lines, feelings.EmotionModel) is favoured when the reply's emotion tag is chosen; without the "
    "calibration, the one the line calls for most (a plain line: the persona's first) is taken",
    "emotion_calibration": "the model's usual leaning among the persona's emotions (measured once on "
    "content-free lines, feelings.CONTENT_FREE) is taken out of its choice of the reply's emotion",
    "recall": "asked what they told the NPC, the words of the player's statement that answer get a bonus; "
    "asked who someone else is, the player's own name loses some as the reply's first word",
    "grounding": "asked about the lore or about the moment, the words of the lore entry the question "
    "calls up or of the world context get a bonus, and once the reply is on them, their next word",
    "deflection": "to a line from outside the world (an injection, 'are you an AI?': "
    "deflection.from_outside: word lists and a learned model), the reply is led to open as a refusal in "
    "character does, in a way the conversation has not said yet (deflection.refusal_openings), and end "
    "after it, not to echo the line; and it is offered no action",
    "caution": "asked whether to do something now when the world context tells of a danger (fog, a "
    "warning horn: caution.cautioned), the reply is led to open as a caution (caution.CAUTIONS), the "
    "danger's words first among the world context's",
    "openings": "a reply may not open with the first two words of an earlier reply",
    "scaffolding": "the prompt's labels are blocked token by token while the reply is written",
    "action_keywords": "an action is offered only when the player's line shares a word with its "
    "description and does not only ask to know something; off: every declared action is offered and the "
    "model chooses",
    "one_clause": "a reply of one sentence ends where its first clause does (leads.OneClause: 'Two hours, "
    "in the far side.' -> 'Two hours.'), unless the clause is only an interjection or whom it speaks to",
    "action_taken": "an action offered by keyword is taken; off: the model chooses (it takes one when it "
    "gives the action tag's first token at least tags.ACTION_CHANCE of its probability)",
}
ALL_AIDS = frozenset(AIDS)
# What a model tuned on the NPC corpus gets: all but one. Read blind (docs/conversation-quality.md,
# session 9), the shipped adapter with all passed 48 of 205 lines and with none 51: a wash overall, none
# with more lore (19 vs 13 of 63) and far fewer actions nobody asked for (11 vs 29), all with more actions
# asked for, memory and world lines, and the emotion and action a line calls for (what the suite's tests
# specify). The action a line names is offered but not forced on it (session 12): on the held-out action
# lines, forced took 21 of 26 actions on lines that only named its object, chosen by the model 7, for 30
# against 35 of 54 asked-for ones. Grounding (session 23), read blind on the unseen NPCs' scripts: lore 23
# -> 27 of 48, world context 2 -> 7 of 18, all 96 -> 109 of 204 (with the claimed-phrase guard).
TUNED_AIDS = ALL_AIDS - {"action_taken"}
# What any other model gets (the bundled one): all but the calibration, which helps the tuned model (33 ->
# 55 apt emotions of 84 alone, 37 -> 57 with the lean) and not the bundled one (18 -> 16, 37 -> 35:
# bench/emotions.py, docs/conversation-quality.md, session 22).
# The first clause alone was read on the tuned model only (session 32), whose replies are one sentence.
UNTUNED_AIDS = ALL_AIDS - {"emotion_calibration", "one_clause"}


def aid_set(names: Iterable[str]) -> frozenset[str]:
    """``names`` as a set of aids; ValueError naming any that is not one."""
    chosen = frozenset(names)
    unknown = sorted(chosen - ALL_AIDS)
    if unknown:
        raise ValueError(f"unknown aids {unknown}: the aids are {sorted(ALL_AIDS)}")
    return chosen
