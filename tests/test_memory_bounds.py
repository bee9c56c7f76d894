"""Memory that stays bounded over a long relationship, on the real summarise path: the rolling summary
within its token budget, facts de-duplicated and capped, the stored turns trimmed as the persona says."""

from __future__ import annotations

import pytest

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.conversation.memory import Retention, fact_key
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.personas.loader import load_persona
from tests.conftest import REPO_ROOT
from tests.support.conversation import Conversation, config, export
from tests.support.waiting import eventually

BUDGET = DialogueOptions().summary_tokens


@pytest.fixture(scope="module")
def count_tokens():
    """Tokens of a text, by the bundled model's own tokenizer."""
    import onnxruntime_genai as og

    from npcvoice.dialogue.model import bundled_model_folder

    tokenizer = og.Tokenizer(og.Model(str(bundled_model_folder(REPO_ROOT / ".models", "cpu"))))
    return lambda text: len(tokenizer.encode(text))


async def test_the_rolling_summary_is_condensed_back_within_its_token_budget(dialogue_service, count_tokens):
    previous = " ".join(
        f"On day {day} the traveller brought {item} to the forge and paid in silver." for day, item in
        enumerate(["a sword", "an axe", "a helmet", "a shield", "nails", "a ring", "a chain", "a lantern"] * 3)
    )  # fmt: skip
    assert count_tokens(previous) > BUDGET
    turns = [
        dialogue_pb2.Turn(role=dialogue_pb2.ROLE_PLAYER, text="My name is Tamsin and I need a new plough."),
        dialogue_pb2.Turn(role=dialogue_pb2.ROLE_NPC, text="A plough by Friday, Tamsin."),
    ]
    request = dialogue_pb2.SummarizeRequest(
        persona_id="blacksmith_hilda", previous_summary=previous, turns=turns
    )
    response = await dialogue_pb2_grpc.DialogueServiceStub(dialogue_service.channel).Summarize(request)
    assert 0 < count_tokens(response.summary) <= BUDGET
    assert "My name is Tamsin and I need a new plough." in response.player_facts


async def test_a_long_relationship_keeps_a_bounded_summary_facts_and_turns(
    gateway, test_persona_dir, count_tokens
):
    npc, player = "scribe_short_memory_test", "player-long"
    retention = Retention.of(load_persona(test_persona_dir / f"{npc}.yaml").memory)
    lines = ["My name is Ada.", "I come from Kharzad.", "my name is ada", "I have a mule.", "I work at the mill.",
             "I live by the river.", "Any news?", "I have two sisters.", "Is the gate open?", "I am tired."]  # fmt: skip
    conversation = Conversation(gateway, config(player, npc, reply_mode=conversation_pb2.REPLY_MODE_TEXT))
    for line in lines:
        conversation.send(text=line)
        await conversation.turn()
    await conversation.close()

    async def summarized() -> bool:  # summaries run in the background
        return bool((await export(gateway, player, npc)).summary)

    await eventually(summarized, 60)
    stored = await export(gateway, player, npc)
    assert count_tokens(stored.summary) <= BUDGET
    assert len(stored.turns) <= retention.max_turns
    keys = [fact_key(f) for f in stored.player_facts]
    assert len(keys) <= retention.max_facts and len(set(keys)) == len(keys)
    assert stored.player_facts[-1] == "I am tired."  # the newest stay


async def test_with_settled_summaries_the_turn_after_a_fold_reads_its_summary(
    test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service,
    dialogue_requests,
):  # fmt: skip
    # A script's replies repeat run after run only if each turn sees the same memory: a summary is written
    # in the background after a turn, and a line sent at once would see it or not by the machine's speed.
    # With `settle_summaries` the next turn waits for it: the fold is in that turn's prompt, every time.
    from npcvoice.conversation.registration import REGISTRATION
    from tests.conftest import start_service
    from tests.support.conversation import gateway_options

    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service
    )
    gateway = await start_service("conversation", REGISTRATION, {**options, "settle_summaries": True})
    try:
        npc, player = "scribe_short_memory_test", "player-settled"
        conversation = Conversation(gateway, config(player, npc, reply_mode=conversation_pb2.REPLY_MODE_TEXT))
        for line in ["My name is Ada.", "I come from Kharzad.", "I have a mule.", "What do you know of me?"]:
            conversation.send(text=line)
            await conversation.turn()
        await conversation.close()
        summaries = [request.memory.summary for request in dialogue_requests.replies]
        # three turns stored six lines, past summarize_after (4): the fourth turn reads their summary
        assert summaries[:3] == ["", "", ""] and summaries[3], summaries
    finally:
        await gateway.channel.close()
        await gateway.host.stop(grace=0)
