"""Prefilling while the player speaks (issue #13), on the real dialogue service and model over gRPC: the
gateway sends the line heard so far with ``prefill_only``; the reply to the final line then finds that
prefix in the conversation's cache and prefills only where the line differs."""

from __future__ import annotations

from typing import Any

import grpc

from tests.support.grpc_status import status_of
from tests.support.waiting import fresh_persona
from tests.test_dialogue import generate, npc_turn, player_turn, request, stub

FIRST = "Good evening! Are you the innkeeper?"
PARTIAL = "Do you have a warm room"
FINAL = "Do you have a warm room for the night?"


async def second_turn(service, persona: str, conversation: str, prefill: bool):
    """A first turn, then (when ``prefill``) a prefill of the partial second line, then the final second
    line; returns the prefill's summary (or None) and the final reply."""
    first = await generate(service, request(FIRST, persona=persona, conversation=conversation))
    history = [player_turn(FIRST), npc_turn(first.summary.text)]
    ahead = await prefill_ahead(service, PARTIAL, persona, conversation, history) if prefill else None
    final = request(FINAL, persona=persona, conversation=conversation)
    final.memory.recent_turns.extend(history)
    return ahead, await generate(service, final)


async def prefill_ahead(service, line: str, persona: str, conversation: str, history: list[Any]):
    """A prefill of ``line`` (the words heard so far; none: the prompt up to the next line) after
    ``history``; its summary."""
    ahead = request(line, persona=persona, conversation=conversation)
    ahead.memory.recent_turns.extend(history)
    ahead.prefill_only = True
    responses = [r async for r in stub(service).Generate(ahead)]
    assert [r.WhichOneof("event") for r in responses] == ["summary"]  # nothing is generated
    return responses[0].summary


async def test_after_a_prefill_of_the_partial_line_the_final_turn_finds_that_prefix_cached(
    dialogue_service, test_persona_dir
):
    persona = fresh_persona(test_persona_dir, "innkeeper_tobin")
    ahead, reply = await second_turn(dialogue_service, persona, "prefilled-ahead", prefill=True)
    _, plain = await second_turn(dialogue_service, persona, "not-prefilled", prefill=False)
    assert ahead is not None and ahead.completion_tokens == 0 and ahead.prompt_tokens > 0
    # Everything the prefill held but the end of its prompt (the user message's end and the reply's
    # header, a few tokens that come after the whole line in the final prompt) is reused...
    assert reply.summary.cached_prompt_tokens >= ahead.prompt_tokens - 8
    # ...which is the partial line's words more than the same turn without the prefill reuses.
    gained = reply.summary.cached_prompt_tokens - plain.summary.cached_prompt_tokens
    assert gained >= len(PARTIAL.split()), (reply.summary, plain.summary)
    assert reply.text.strip()  # and the reply itself is written as usual


async def test_a_prefill_needs_a_conversation(dialogue_service):
    partial = request(PARTIAL)
    partial.prefill_only = True
    code, details = await status_of(stub(dialogue_service).Generate(partial))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "conversation_id")


async def test_a_prefill_with_no_line_readies_a_moved_history_for_the_next_line(
    dialogue_service, test_persona_dir
):
    """After a turn is stored, the gateway prefills the next prompt up to the player's line (neither line
    nor cue): when the window of recent turns has moved, the next reply finds all of that history cached
    instead of prefilling it after the player spoke."""
    persona = fresh_persona(test_persona_dir, "innkeeper_tobin")
    earlier = [player_turn("I walked here from Dunmore."), npc_turn("A long road. Sit by the fire."),
               player_turn("My name is Aric."), npc_turn("Welcome, Aric.")]  # fmt: skip
    replies = {}
    for ahead in (True, False):
        conversation = f"moved-window-{ahead}"
        first = request(FIRST, persona=persona, conversation=conversation)
        first.memory.recent_turns.extend(earlier)
        said = (await generate(dialogue_service, first)).summary.text
        # The window moved: the two oldest turns left it, so the history after the fixed prompt differs.
        moved = [*earlier[2:], player_turn(FIRST), npc_turn(said)]
        summary = await prefill_ahead(dialogue_service, "", persona, conversation, moved) if ahead else None
        final = request(FINAL, persona=persona, conversation=conversation)
        final.memory.recent_turns.extend(moved)
        replies[ahead] = (summary, await generate(dialogue_service, final))
    (prefilled, reply), (_, plain) = replies[True], replies[False]
    assert prefilled is not None and prefilled.completion_tokens == 0
    # The history is reused (the prompt is the same up to the last message's context, whose lore
    # follows the line); without the prefill the reply prefills the moved history after the line came.
    assert prefilled.cached_prompt_tokens < reply.summary.cached_prompt_tokens <= prefilled.prompt_tokens
    history = sum(len(t.text.split()) for t in moved)  # fewer than its tokens
    gained = reply.summary.cached_prompt_tokens - plain.summary.cached_prompt_tokens
    assert gained >= history, (prefilled, reply.summary, plain.summary)
    assert reply.text.strip()


async def test_only_a_prefill_may_come_with_neither_a_line_nor_a_cue(dialogue_service):
    code, details = await status_of(stub(dialogue_service).Generate(request("", conversation="no-line")))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "player_text")
