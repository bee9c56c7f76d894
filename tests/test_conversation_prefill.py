"""Prefill while the player speaks (issue #13), through the real gateway, speech and dialogue services:
interim transcripts make the gateway ask dialogue to prefill the line heard so far, before the reply to
the final line; nothing of it reaches memory, and the gateway option switches it off. (That the prefill
shortens the reply's prefill is tested on the dialogue service: test_dialogue_prefill_ahead.py.)"""

from __future__ import annotations

import numpy as np

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.conversation.registration import REGISTRATION
from tests.conftest import start_service
from tests.support.conversation import Conversation, config, export, gateway_options
from tests.support.waiting import eventually

# About 2.5 s: well inside the test speech service's 4 s utterance limit, which a longer line (piper's
# timing varies from one synthesis to the next) sometimes crossed, cutting it in two.
LINE = "Can you repair my sword? The blade is chipped."
RATE = 16000


async def voice_turn(service, player: str, speech: np.ndarray) -> int:
    """The player says the line; how many replies to a part of it were dropped (the speech service may
    cut the line at a pause: the player went on, so the reply to the part is never said)."""
    audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE)
    conversation = Conversation(service, config(player, input_audio=audio))
    conversation.send_speech(speech, RATE)
    out = await conversation.spoken_turn()
    await conversation.close()
    assert out.audio and out.end.player_text
    return out.parts_dropped


async def test_the_line_heard_so_far_is_prefilled_before_the_reply_and_never_remembered(
    test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service,
    dialogue_requests, speak,
):  # fmt: skip
    speech = np.concatenate([speak(LINE, RATE), np.zeros(RATE, np.float32)])
    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service
    )
    for prefill in (True, False):
        service = await start_service(
            "conversation",
            REGISTRATION,
            {**options, "prefill_while_speaking": prefill, "prefill_after_turn": False},
        )
        dialogue_requests.clear()
        player = f"player-prefill-{prefill}"
        dropped = await voice_turn(service, player, speech)
        snapshot = await export(service, player)
        await service.channel.close()
        await service.host.stop(grace=0)
        ahead = dialogue_requests.prefills
        replies = dialogue_requests.replies
        # one reply per final at most (a part's may be dropped before it is asked for); the last is said
        assert 1 <= len(replies) <= 1 + dropped
        assert len(snapshot.turns) == 2 and snapshot.turns[0].text == replies[-1].player_text  # the line only
        if not prefill:
            assert not ahead
            continue
        assert ahead and dialogue_requests.index(ahead[-1]) < dialogue_requests.index(replies[-1])
        heard = replies[-1].player_text.lower().split()
        for request in ahead:  # each a start of the line (the speech service may hear it differently)
            words = request.player_text.lower().split()
            assert 2 <= len(words) < len(heard) and words[:1] == heard[:1], (request.player_text, heard)
            assert request.conversation_id == replies[-1].conversation_id
            assert request.memory == replies[-1].memory


async def test_once_a_turn_is_stored_the_next_prompt_is_prefilled_up_to_the_players_line(
    test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service,
    dialogue_requests,
):  # fmt: skip
    """While the NPC's reply still plays, dialogue prefills the prompt the player's next line will have
    (the memory with the turn just stored, no line yet); nothing of it is remembered, and the next turn
    asks with that same memory. The gateway option switches it off."""
    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service
    )
    for after in (True, False):
        service = await start_service("conversation", REGISTRATION, {**options, "prefill_after_turn": after})
        dialogue_requests.clear()
        player = f"player-after-turn-{after}"
        conversation = Conversation(service, config(player, reply_mode=conversation_pb2.REPLY_MODE_TEXT))
        conversation.send(text="Good evening. I am Aric, a smith from Dunmore.")
        first = await conversation.turn()
        if after:
            await eventually(lambda: bool(dialogue_requests.prefills), 10)
        conversation.send(text="Do you have a room for the night?")
        await conversation.turn()
        if after:
            await eventually(lambda: len(dialogue_requests.prefills) >= 2, 10)
        await conversation.close()
        snapshot = await export(service, player)
        await service.channel.close()
        await service.host.stop(grace=0)
        replies = dialogue_requests.replies
        ahead = dialogue_requests.prefills
        assert [t.text for t in snapshot.turns] == [
            "Good evening. I am Aric, a smith from Dunmore.", first.end.reply_text,
            "Do you have a room for the night?", snapshot.turns[3].text,
        ]  # fmt: skip
        if not after:
            assert not ahead
            continue
        # one after each turn; the first before the second line, with the memory that line is asked with
        assert len(ahead) == 2 and dialogue_requests.index(ahead[0]) < dialogue_requests.index(replies[1])
        assert not ahead[0].player_text and not ahead[0].cue
        assert ahead[0].conversation_id == replies[1].conversation_id
        assert said(ahead[0].memory) == said(replies[1].memory)
        assert [t.text for t in ahead[1].memory.recent_turns] == [t.text for t in snapshot.turns]


def said(memory) -> tuple[object, ...]:
    """What a prompt is built from (a turn's time is when the dialogue service read the request)."""
    turns = [(t.role, t.text, t.interrupted) for t in memory.recent_turns]
    return turns, memory.summary, memory.player_facts, memory.affinity, memory.trust, memory.world
