"""Answering as the player finishes: the gateway begins the reply on the speech service's settled words
(transcribed from the final's audio once the player's silence begins) and holds all of it until the
final transcript; released when the final says the same, dropped unheard and unstored when it does not
(real services, real gRPC, real Redis)."""

from __future__ import annotations

import asyncio

import numpy as np

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.conversation.metrics import DRAFTS
from tests.conftest import DialogueRequests
from tests.support.conversation import Conversation, TurnOutput, config, export

RATE = 16000
PCM16 = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE)


def drafts(outcome: str) -> float:
    return DRAFTS.labels(outcome)._value.get()


async def spoken(gateway, player: str, speech: np.ndarray) -> TurnOutput:
    """The turn answering the player's line, followed by a second of silence in real time (the time
    between the settled words and the end of the line is the draft's head start)."""
    conversation = Conversation(gateway, config(player, input_audio=PCM16))
    conversation.send_speech(speech, RATE)
    for _ in range(10):
        await asyncio.sleep(0.1)
        conversation.send_speech(np.zeros(RATE // 10, np.float32), RATE)
    out = await conversation.spoken_turn()
    await conversation.close()
    return out


def replies(requests: DialogueRequests) -> list[str]:
    """The player lines the dialogue engine was asked to answer (prefills ahead left out)."""
    return [r.player_text for r in requests.replies]


async def test_a_draft_whose_final_says_the_same_is_released_without_a_second_model_pass(
    gateway, speak, dialogue_requests
):
    used = drafts("used")
    player = "draft-used"
    out = await spoken(gateway, player, speak("Can you repair my sword?", RATE))

    assert out.end.drafted and not out.end.interrupted
    assert out.audio and out.text
    assert replies(dialogue_requests) == [out.end.player_text]  # one model pass for the line
    assert drafts("used") == used + 1
    # what was held went out after the final transcript, in order, and the turn is stored once
    assert out.events.index("transcript") < out.events.index("audio")
    latency = out.end.latency
    assert 0 < latency.transcript_seconds <= latency.first_audio_seconds <= latency.total_seconds
    snapshot = await export(gateway, player)
    assert [(t.role, t.text) for t in snapshot.turns][-2:] == [
        ("player", out.end.player_text),
        ("npc", out.end.reply_text),
    ]


async def test_a_draft_whose_final_differs_is_never_heard_or_stored(
    gateway, speak, dialogue_requests, monkeypatch
):
    # The speech service's settled words and its final agree unless the utterance's audio changed in
    # between (a short sound the VAD did not take for speech). That is made to happen here by a spy on the
    # real speech stream that rewrites the settled transcript's words, and calls through for the rest; it
    # lets the final out once the draft has reached the dialogue engine (on a busy machine the settled
    # words and the final can come back to back, and the draft is then dropped before it begins).
    from npcvoice.speech import recognition

    transcript = recognition.RecognitionStream._transcript
    settled = "Tell me about the dragon."

    async def misheard(self, utterance, task):
        result = await transcript(self, utterance, task)
        if result is not None and result.settled:
            return type(result)(**{**result.__dict__, "text": settled})
        if result is not None and result.is_final:
            for _ in range(100):
                if settled in replies(dialogue_requests):
                    break
                await asyncio.sleep(0.05)
        return result

    monkeypatch.setattr(recognition.RecognitionStream, "_transcript", misheard)
    dropped = drafts("dropped")
    player = "draft-dropped"
    out = await spoken(gateway, player, speak("Can you repair my sword?", RATE))

    asked = replies(dialogue_requests)
    assert asked[0] == settled  # the draft was begun on the settled words...
    assert asked[-1] == out.end.player_text != asked[0]  # ...and the final's line was answered instead
    assert not out.end.drafted and drafts("dropped") >= dropped + 1
    # nothing of the draft reached the player: every reply event of the stream comes after the final
    first_reply = min(out.events.index(k) for k in ("audio", "reply_text", "emotion") if k in out.events)
    assert out.events.index("transcript") < first_reply
    assert out.interruption is None
    snapshot = await export(gateway, player)
    texts = [t.text for t in snapshot.turns]
    assert settled not in texts
    assert texts[-2:] == [out.end.player_text, out.end.reply_text]
