"""A corpus conversation as the model sees it when it serves: each NPC reply's prompt built by the engine's
own prompt builder (``build_messages``) from the memory the gateway would hold at that turn, rendered by
the served model's own chat template and tokenizer, and the reply in the form the engine decodes it
(``[emotion: X] [action: name k=v] words``).

A conversation's prompt is append-only while its history fits the persona's ``recent_turns`` (past turns
are written as they were first sent, which is what lets the engine reuse its KV cache): then one sequence
holds the whole conversation and every reply in it is a training target (``Sequence.targets``). When the
window slides, the next reply starts a new sequence. Each target span ends with the template's end of
message, so the model learns to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from npcvoice.dialogue.prompt import Message, PromptStyle, build_messages
from npcvoice.dialogue.reuse import rendered_turns
from npcvoice.dialogue.tags import emotion_tag
from npcvoice.personas.schema import Persona
from npcvoice.training.corpus import ActionCall, Conversation
from npcvoice.training.memory import HeldMemory

PromptIds = Callable[[list[Message], bool], list[int]]
PROMPT_BUDGET = 1024 - 96  # the engine's default context less a reply's room (DialogueOptions)


@dataclass
class Sequence:
    """Token ids of one packed stretch of a conversation, and the (start, end) spans to learn."""

    ids: list[int] = field(default_factory=list)
    targets: list[tuple[int, int]] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)  # each target's skill, in order


def action_tag(call: ActionCall, persona: Persona) -> str:
    """`` [action: name k=v]``, the parameters in the persona's order, a value of several words joined
    with underscores (a tag value is one word to the engine's tag constraint)."""
    declared = persona.action(call.name)
    order = [p.name for p in declared.parameters] if declared else list(call.args)
    parts = [call.name]
    for name in order:
        if name in call.args:
            value = call.args[name]
            text = str(value).lower() if isinstance(value, bool) else str(value)
            parts.append(f"{name}={'_'.join(text.split())}")
    return f" [action: {' '.join(parts)}]"


def raw_reply(text: str, emotion: str, call: ActionCall | None, persona: Persona) -> str:
    """The reply as the model writes it: its tags, then the words."""
    return emotion_tag(emotion) + (action_tag(call, persona) if call else "") + " " + text


def render(
    conversation: Conversation, persona: Persona, prompt_ids: PromptIds, style: PromptStyle = "compact"
) -> list[Sequence]:
    """The conversation's training sequences (see the module's docstring)."""
    held = HeldMemory(conversation, persona)
    rendered: dict[tuple[str, str], str] = {}
    sequences: list[Sequence] = []

    def count(messages: list[Message]) -> int:
        return len(prompt_ids(messages, True))

    for step in conversation.steps:
        if step.npc is None:
            held.step(step)
            continue
        request = held.request()
        messages = build_messages(
            persona, request.memory, request.player_text, count, PROMPT_BUDGET, rendered=rendered,
            cue=request.cue, style=style,
        )  # fmt: skip
        raw = raw_reply(step.npc, step.emotion or "", step.action, persona)
        prompt = prompt_ids(messages, True)
        whole = prompt_ids([*messages, {"role": "assistant", "content": raw}], False)
        if whole[: len(prompt)] != prompt:
            raise ValueError(f"{persona.id}: the template does not extend the prompt with the reply")
        current = sequences[-1] if sequences else None
        if current is None or current.ids != prompt[: len(current.ids)]:
            current = Sequence()
            sequences.append(current)
        current.ids = list(whole)
        current.targets.append((len(prompt), len(whole)))
        current.skills.append(step.skill or "")
        rendered = rendered_turns(persona, request, messages, step.npc, raw, style)  # as the engine keeps it
        held.replied(step.npc, [step.emotion or ""], [step.action.name] if step.action else [])
    return sequences
