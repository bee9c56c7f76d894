"""A reply's prompt and how much of it the conversation's generator already holds (the KV cache reused).

The new prompt is compared token by token with what the conversation's generator holds; the generator is
rewound to the first difference and only the rest is left to prefill. A conversation not in the cache
starts from the persona's fixed prompt prefilled ahead, when one is ready, or else from nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from npcvoice.dialogue.cache import Conversation, common_prefix, new_conversation
from npcvoice.dialogue.metrics import PROMPT_TOKENS, WARM_PREFIXES
from npcvoice.dialogue.model import LoadedModel
from npcvoice.dialogue.parts import EngineParts
from npcvoice.dialogue.prompt import Message, PromptStyle, build_messages, fixed_messages
from npcvoice.dialogue.types import TurnRequest
from npcvoice.personas.schema import Persona


@dataclass
class Opened:
    conversation: Conversation  # held (its ``busy`` lock taken) until the reply hands it back
    messages: list[Message]
    pending: list[int]  # the prompt's tokens still to prefill
    prompt_tokens: int
    cached_tokens: int
    keep: bool  # whether the conversation may go back to the cache afterwards


def open_prompt(
    engine: EngineParts, model: LoadedModel, persona: Persona, request: TurnRequest, max_tokens: int
) -> Opened | None:
    """Build the prompt of ``request`` and take its conversation; None for a prefill ahead (``prefill_only``)
    whose conversation is held by a reply in progress: it would only make that reply wait."""
    key, keep = request.conversation_id, bool(request.conversation_id)
    conversation = engine.cache.get(key) if key else None
    wait_s = 0.0 if request.prefill_only else engine.options.cache_wait_s
    if conversation is not None and not conversation.busy.acquire(timeout=wait_s):
        if request.prefill_only:
            return None
        conversation, keep = None, False  # the previous turn still holds it: start afresh
    if conversation is None:  # a new conversation: start from the persona's prefilled prompt if ready
        conversation = engine.cache.take(engine.warm_key(model, persona))
        if conversation is not None:
            conversation.key = key
            conversation.busy.acquire()
            WARM_PREFIXES.labels("taken", persona.id).inc()
    limit = min(engine.options.context_tokens, model.context_length)
    tokenized: dict[str, list[int]] = {}

    def count(messages: list[Message]) -> int:
        # The last prompt counted is the one returned: keep its ids rather than tokenize it twice.
        key = json.dumps(messages)
        if key not in tokenized:
            tokenized.clear()
            tokenized[key] = model.prompt_ids(messages)
        return len(tokenized[key])

    messages = build_messages(
        persona,
        request.memory,
        request.player_text,
        count,
        limit - max_tokens,
        request.player_name,
        rendered=conversation.rendered if conversation is not None else None,
        cue=request.cue,
        style=model.prompt_style,
    )
    ids = tokenized.get(json.dumps(messages)) or model.prompt_ids(messages)
    shared = 0
    fits = conversation is not None and len(ids) + max_tokens <= conversation.max_length
    if conversation is not None and fits and conversation.model_id == model.model_id:
        shared = common_prefix(conversation.tokens, ids)
        held, conversation.held, end = conversation.held, [], len(conversation.tokens)
        if held and shared == end and ids[end : end + len(held)] == held:
            # the last reply's held tokens, run on their own as the reply would have run them
            conversation.generator.append_tokens(held)
            conversation.tokens.extend(held)
            shared += len(held)
        # at least two tokens to prefill: a lone one would change the numerics (see cache.prefill)
        shared = min(shared, len(ids) - 2)
    if shared > 0 and conversation is not None:
        if shared < len(conversation.tokens):
            conversation.generator.rewind_to(shared)
            del conversation.tokens[shared:]
    else:
        if conversation is not None:
            engine.cache.discard(key, conversation)
            conversation.busy.release()
        # A conversation that will come back gets the whole context at once: a later turn that
        # outgrew a smaller buffer would need a new generator and a full prefill.
        max_length = limit if key else min(limit, len(ids) + max_tokens)
        conversation = new_conversation(model, key, max_length)
        conversation.busy.acquire()
    if not request.memory.recent_turns and not request.memory.summary:
        conversation.said = []  # a memory that starts afresh (a reset, a new save): nothing was said yet
    PROMPT_TOKENS.labels("cached").inc(shared)
    PROMPT_TOKENS.labels("prefilled").inc(len(ids) - shared)
    return Opened(conversation, messages, ids[shared:], len(ids), shared, keep)


def rendered_turns(
    persona: Persona,
    request: TurnRequest,
    messages: list[Message],
    said: str,
    raw: str,
    style: PromptStyle = "full",
) -> dict[tuple[str, str], str]:
    """How this turn's prompt wrote each of its turns (``messages``), and the NPC's reply (``said``, as
    ``raw``: the model's own text with its tags), keyed by (role, text): the next prompt writes them the
    same way, so the conversation's cached tokens still match it."""
    rendered: dict[tuple[str, str], str] = {}
    history = messages[len(fixed_messages(persona, style)) : -1]
    turns = request.memory.recent_turns[-len(history) :] if history else []
    for turn, message in zip(turns, history, strict=False):
        rendered[(turn.role, turn.text)] = message["content"]
    if request.player_text.strip():
        rendered[("player", request.player_text)] = messages[-1]["content"]
    if said:
        rendered[("npc", said)] = raw
    return rendered
