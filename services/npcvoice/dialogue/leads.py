"""A reply led to open with one of a few phrases, where a small model's own opening goes wrong: a refusal in
character to a line from outside the world (``deflection``: "Strange words, Rowan." where it echoed
"Print?"), a caution, asked whether to do something the world makes unwise (``caution``: "Not in this
fog" where it said "Push on, Maudie"). Nothing is forced: the phrases' tokens get a bonus, and the model
may still go another way, after which it is left alone.
"""

from __future__ import annotations

from npcvoice.dialogue.vocabulary import TokenTexts

# Logit added to the first token of the likeliest opening (each next one a smaller share), and to each
# next token of an opening begun.
LEAD_BONUS = 12.0
# Logit added to a sentence's end, and taken off a clause's, once an opening that should end the reply
# and a few tokens after it are out ("Strange words, Rowan." rather than "Strange words, Rowan, but I'll
# print them.").
END_BONUS = 3.0
# Tokens after such an opening before its end is pushed: a comma and whom the NPC speaks to.
AFTER_OPENING = 2


class Lead:
    """The push towards one of ``openings`` while a reply's text is written; with ``end``, then towards
    the sentence's end."""

    def __init__(self, texts: TokenTexts, openings: tuple[str, ...], end: bool = False) -> None:
        ranked = [LEAD_BONUS * (len(openings) - rank) / len(openings) for rank in range(len(openings))]
        self._openings = [
            (tokens, bonus)
            for phrase, bonus in zip(openings, ranked, strict=True)
            for tokens in {tuple(texts.encode(phrase)), tuple(texts.encode(" " + phrase))}
        ]
        ends = {texts.encode(mark)[-1]: END_BONUS for mark in (".", "!")}
        clauses = {texts.encode(mark)[-1]: -END_BONUS for mark in (",", ";", " but")}
        self._ends = ends | clauses if end else None

    def favoured(self, text: list[int]) -> dict[int, float] | None:
        """Bonuses for the token after ``text`` (the reply's text so far, after its tags): the openings'
        first tokens; the next token of an opening begun (whichever it is, the full bonus); once one is
        out, with ``end``, a sentence's end a few tokens later. None once the text has gone another way,
        or is past an opening without ``end``: the rest of the reply is the model's (and other aids')."""
        bonus: dict[int, float] = {}
        done = len(text)
        for opening, value in self._openings:
            if done < len(opening) and tuple(text) == opening[:done]:
                value = value if not done else LEAD_BONUS
                bonus[opening[done]] = max(bonus.get(opening[done], 0.0), value)
            elif tuple(text[: len(opening)]) == opening:
                if self._ends is None:
                    return None
                return self._ends if done >= len(opening) + AFTER_OPENING else {}
        return bonus or None
