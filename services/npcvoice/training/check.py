"""Is each NPC reply of the corpus fit to learn from? Grounded in what the served prompt will hold (the
lore its keywords bring in, what the player said, the world context: ``HeldMemory`` keeps them as the
gateway would), in the NPC's declared emotions and actions, inside the world, and spoken.

    .venv/bin/python -m npcvoice.training.check     # every problem as file:line: step: what; exit 1 if any
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from npcvoice.dialogue.types import TurnRequest
from npcvoice.evaluation.checks import OUT_OF_WORLD, content_words, player_identity, takes_identity
from npcvoice.personas.schema import Persona
from npcvoice.training.corpus import (
    CORPUS_DIR,
    Conversation,
    Located,
    Step,
    load_personas,
    read_conversations,
)
from npcvoice.training.memory import HeldMemory

_STAGE = re.compile(r"[*\[\]()<>#_~`|]|\b(smiles|laughs|sighs|nods|shrugs|grins|winks)\b", re.IGNORECASE)
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
MAX_REPLY_WORDS = 45
MAX_SENTENCES = 3


def check_reply(
    step: Step, index: int, conversation: Conversation, persona: Persona, request: TurnRequest
) -> list[str]:
    """What is wrong with one NPC reply as something to learn from (empty when nothing)."""
    text, problems = step.npc or "", []
    before = conversation.steps[:index]
    if step.emotion not in persona.emotions:
        problems.append(f"emotion {step.emotion!r} is not one of the persona's {persona.emotions}")
    if step.skill == "emotion" and step.emotion == persona.emotions[0]:
        problems.append(f"an emotion line answered in the usual mood ({step.emotion}): show another")
    words = text.split()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    if not words or len(words) > MAX_REPLY_WORDS or len(sentences) > MAX_SENTENCES:
        problems.append(f"{len(words)} words in {len(sentences)} sentences (1-{MAX_REPLY_WORDS}, at most 3)")
    if _STAGE.search(text) or _EMOJI.search(text):
        problems.append("stage directions, brackets, markup or emoji: replies are spoken")
    outside = OUT_OF_WORLD.search(text)
    if outside:
        problems.append(
            f"speaks of {outside.group(0)!r}: out of the world (a deflection stays inside it too)"
        )
    taken = takes_identity(text, player_identity([s.player for s in before if s.player]))
    if taken:
        problems.append(f"the NPC takes the player's {taken!r} as its own")
    for secret in persona.secrets:
        if content_words(secret) and content_words(secret) <= content_words(text):
            problems.append("says a secret")
    problems += _check_action(step, before, conversation, persona)
    problems += _check_grounding(step, before, persona, request)
    return problems


def _check_action(step: Step, before: list[Step], conversation: Conversation, persona: Persona) -> list[str]:
    if step.action is None:
        return ["skill action without an action"] if step.skill == "action" else []
    if step.skill != "action":
        return [f"an action on a {step.skill} line: only lines that ask for one get one"]
    declared = persona.action(step.action.name)
    if declared is None:
        return [f"action {step.action.name!r} is not declared by the persona"]
    problems = []
    earlier = conversation.earlier
    said = " ".join(
        [s.player or "" for s in before] + [s.event.told for s in before if s.event]
        + [" ".join(s.world.values()) for s in before if s.world] + [earlier.summary, *earlier.facts]
    )  # fmt: skip
    names = {p.name: p for p in declared.parameters}
    for name, value in step.action.args.items():
        parameter = names.get(name)
        if parameter is None:
            problems.append(f"action {declared.name} has no parameter {name!r}")
            continue
        if parameter.choices and str(value) not in parameter.choices:
            problems.append(f"{declared.name}.{name}={value!r} is not one of {parameter.choices}")
        if parameter.type == "integer" and not isinstance(value, int):
            problems.append(f"{declared.name}.{name} must be an integer")
        if (
            isinstance(value, str)
            and not parameter.choices
            and not content_words(value) <= content_words(said)
        ):
            problems.append(f"{declared.name}.{name}={value!r}: not from the conversation's words")
    missing = [p.name for p in declared.parameters if p.required and p.name not in step.action.args]
    if missing:
        problems.append(f"action {declared.name} lacks {missing}")
    return problems


EMPTY = {
    "lore": "lore: no lore keyword in the last lines, so the prompt holds no lore to answer from",
    "memory": "memory: recalls nothing the prompt holds of the player (recent lines, facts, earlier)",
    "world": "world: no world context (of the persona's context_keys) was sent before this reply",
}
UNUSED = {
    "lore": "lore: the reply uses no word of the lore its prompt holds",
    "memory": EMPTY["memory"],
    "world": "world: the reply uses nothing of the world context",
}


def grounding(skill: str, persona: Persona, request: TurnRequest) -> str | None:
    """What the served prompt holds for a reply of ``skill`` to draw on (``request``: what the gateway
    would send): the lore the last four turns' keywords bring in (the prompt builder's own rule), what
    the player said (their recent lines, the facts kept, earlier sessions), the world context of the
    persona's keys; None for a skill that draws on none of these."""
    memory = request.memory
    if skill == "lore":
        recent = " ".join([*(t.text for t in memory.recent_turns[-4:]), request.player_text or request.cue])
        return " ".join(entry.text for entry in persona.lore_for(recent))
    if skill == "memory":
        said = [t.text for t in memory.recent_turns if t.role == "player"]
        return " ".join([*said, *memory.player_facts, memory.summary])
    if skill == "world":
        return " ".join(memory.world.values())
    return None


def _check_grounding(step: Step, before: list[Step], persona: Persona, request: TurnRequest) -> list[str]:
    """A reply that teaches using the prompt must use what the served prompt will hold."""
    source = grounding(step.skill or "", persona, request)
    if source is not None and not content_words(source):
        return [EMPTY[step.skill or ""]]
    if source is not None and not content_words(step.npc or "") & content_words(source):
        return [UNUSED[step.skill or ""]]
    last = before[-1] if before else Step(player="")
    if step.skill == "event" and not last.event and not last.cue:
        return ["event: the reply does not follow an event or a cue"]
    if last.event:
        trigger = persona.trigger_for(last.event.name)
        if trigger is None or not trigger.say:
            return [f"a reply to event {last.event.name!r}: the persona has no trigger saying it"]
    return []


def check_conversation(located: Located, personas: dict[str, Persona]) -> list[str]:
    conversation = located.conversation
    persona = personas.get(conversation.persona)
    if persona is None:
        return [f"{located.where}: no persona {conversation.persona!r} in training/personas"]
    problems = []
    previous = None
    held = HeldMemory(conversation, persona)
    for index, step in enumerate(conversation.steps):
        kind = step.kind
        if kind != "npc":
            held.step(step)
        if kind == "npc" and previous not in ("player", "event", "cue"):
            problems.append(f"step {index + 1}: an npc reply must follow a player line, an event or a cue")
        if kind in ("player", "cue") and previous in ("player", "cue"):
            problems.append(f"step {index + 1}: two lines in a row without a reply")
        if kind == "npc":
            found = check_reply(step, index, conversation, persona, held.request())
            problems += [f"step {index + 1} ({step.skill}): {p}" for p in found]
            held.replied(step.npc or "", [step.emotion or ""], [step.action.name] if step.action else [])
        if kind != "world":
            previous = kind
    if previous in ("player", "cue"):
        problems.append("the last line has no reply")
    return [f"{located.where}: {p}" for p in problems]


def check_corpus(root: Path = CORPUS_DIR) -> tuple[list[str], dict[str, int]]:
    """Every problem in the corpus under ``root``, and counts (personas, conversations, replies, skills)."""
    personas, problems = load_personas(root / "personas")
    counts: dict[str, int] = {"personas": len(personas), "conversations": 0, "replies": 0}
    for path in sorted((root / "conversations").glob("*.jsonl")):
        try:
            located = list(read_conversations(path))
        except ValidationError as error:
            problems.append(f"{path}: {error}")
            continue
        for item in located:
            counts["conversations"] += 1
            problems += check_conversation(item, personas)
            for step in item.conversation.steps:
                if step.npc is not None:
                    counts["replies"] += 1
                    counts[f"skill {step.skill}"] = counts.get(f"skill {step.skill}", 0) + 1
    return problems, counts


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR
    problems, counts = check_corpus(root)
    for problem in problems:
        print(problem)
    print(json.dumps(counts, indent=1, sort_keys=True))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
