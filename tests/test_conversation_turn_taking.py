"""Turn-taking at the gateway: a final transcript followed at once by more of the player's voice is one
line, not two turns (real services, real gRPC, real Redis)."""

from __future__ import annotations

import numpy as np

from npcvoice.api.npc.audio.v1 import audio_pb2
from tests.support.conversation import Conversation, config, export

RATE = 16000


async def test_a_player_who_goes_on_after_a_pause_is_answered_once_for_the_whole_line(gateway, speak, gate):
    # 0.6 s of silence ends the first utterance; the second follows before any reply audio: the reply is
    # held (gate) until the gateway has heard the player go on, however fast this machine answers.
    pause = np.zeros(int(0.6 * RATE), np.float32)
    speech = np.concatenate(
        [speak("Can you repair", RATE), pause, speak("my old sword?", RATE), pause, pause]
    )
    player = "player-goes-on"
    conversation = Conversation(
        gateway,
        config(
            player,
            input_audio=audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE),
        ),
    )
    conversation.send_speech(speech, RATE)
    dropped = await conversation.turn()
    gate.released.set()
    answered = await conversation.turn()
    await conversation.close()

    # the client heard of the player's voice before its transcript, and again when they went on
    assert dropped.events.index("speaking") < dropped.events.index("transcript"), dropped.events
    assert answered.events.count("speaking") + dropped.events.count("speaking") == 2
    # the reply to the first part was dropped before anything of it was heard
    assert dropped.end.interrupted and dropped.end.reply_text == "" and not dropped.audio
    assert dropped.end.continued and not answered.end.continued  # the client can replace the subtitle
    assert dropped.interruption is not None and dropped.interruption.heard_text == ""
    # the whole line is one turn, answered
    line = answered.end.player_text.lower()
    assert "repair" in line and "sword" in line, line
    assert line.count("repair") == 1, line  # the speech service's hearing of the whole replaced the parts
    assert answered.audio and not answered.end.interrupted
    snapshot = await export(gateway, player)
    assert [t.text for t in snapshot.turns if t.role == "player"] == [answered.end.player_text]
