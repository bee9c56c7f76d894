"""The conversation gateway composing the real speech, dialogue, voice and face services, over real gRPC
on loopback, with memory in a real Redis."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.conversation.registration import REGISTRATION
from npcvoice.dialogue.options import DEFAULT_MODEL_ID
from tests.conftest import start_service
from tests.support.conversation import (
    NPC,
    Conversation,
    TurnOutput,
    config,
    export,
    gateway_options,
    pcm16,
    stub,
)
from tests.support.grpc_status import status_of


async def test_a_text_turn_returns_text_audio_and_visemes_covering_the_audio(gateway):
    conversation = Conversation(gateway, config("player-text"))
    conversation.send(text="Good morning! What do you make here?")
    out = await conversation.turn()
    await conversation.close()

    assert out.started is not None and out.started.display_name == "Hilda Ironhand"
    assert out.text and out.end.reply_text == out.text
    assert out.end.answered_by == DEFAULT_MODEL_ID and not out.end.escalation  # the local model answered
    assert out.audio, "no audio"
    position = 0
    for chunk in out.audio:
        assert chunk.start_sample == position  # chunks tile the turn's audio
        assert len(chunk.audio) == 2 * chunk.num_samples  # PCM16
        rate = chunk.format.sample_rate_hz
        seconds = chunk.num_samples / rate
        frame_rate = 30  # Hilda's persona
        assert abs(len(chunk.visemes) - math.ceil(seconds * frame_rate)) <= 1
        assert chunk.visemes[0].time_seconds == pytest.approx(chunk.start_sample / rate, abs=1e-6)
        position += chunk.num_samples
    latency = out.end.latency
    assert 0 < latency.first_token_seconds <= latency.first_audio_seconds <= latency.total_seconds
    assert out.events.index("audio") > out.events.index("reply_text") - 1


async def test_a_voice_turn_is_transcribed_and_answered(gateway, speak):
    rate = 16000
    speech = np.concatenate([speak("Can you repair my sword?", rate), np.zeros(rate, np.float32)])
    conversation = Conversation(
        gateway,
        config(
            "player-voice",
            input_audio=audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=rate),
        ),
    )
    for start in range(0, len(speech), rate // 10):
        conversation.send(audio=pcm16(speech[start : start + rate // 10]))
    out = await conversation.turn()
    await conversation.close()
    # tiny.en hears "sword" as "sore" now and then (piper's delivery varies); "repair" it always gets.
    assert out.transcripts and "can you repair" in out.transcripts[0].lower()
    assert out.end.player_text == out.transcripts[0]
    assert out.audio and out.end.latency.transcript_seconds > 0


async def test_a_fact_told_in_turn_one_reaches_the_prompt_of_turn_eight_after_a_gateway_restart(
    test_persona_dir,
    redis_server,
    speech_service,
    dialogue_service,
    voice_service,
    face_service,
    dialogue_requests,
):
    seen = dialogue_requests  # what the model was given
    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service
    )
    player, npc = "player-restart", "courier_quick_test"
    lines = ["My name is Ada and I come from Kharzad.", "Any letters today?", "Is the road safe?", "How far is Vaelmoor?",
             "Do you like your job?", "Who sends the most letters?", "Is it raining there?", "Do you remember where I come from?"]  # fmt: skip
    for part in (lines[:4], lines[4:]):
        service = await start_service("conversation", REGISTRATION, options)
        conversation = Conversation(service, config(player, npc, reply_mode=conversation_pb2.REPLY_MODE_TEXT))
        for line in part:
            conversation.send(text=line)
            await conversation.turn()
        await conversation.close()
        await service.channel.close()
        await service.host.stop(grace=0)
    eighth = seen.replies[-1]
    assert eighth.player_text == lines[7]
    assert "My name is Ada and I come from Kharzad." in eighth.memory.player_facts
    assert all(
        t.text != lines[0] for t in eighth.memory.recent_turns
    )  # it came from the facts, not the turns


@pytest.fixture(scope="module")
def talkative(test_persona_dir: Path) -> str:
    """Hilda with replies of up to three sentences (``max_sentences``, as a writer sets it): a reply of
    several pieces to talk over, where the tuned model's own is one sentence, often a single piece."""
    persona = yaml.safe_load((test_persona_dir / f"{NPC}.yaml").read_text())
    persona["id"] = f"{NPC}_talkative"
    persona.setdefault("dialogue", {})["max_sentences"] = 3
    (test_persona_dir / f"{persona['id']}.yaml").write_text(yaml.safe_dump(persona, sort_keys=False))
    return str(persona["id"])


async def test_barge_in_stops_the_reply_and_memory_keeps_only_what_was_heard(
    gateway, speak, held_rest, talkative
):
    rate = 16000
    request = "Tell me the whole story of the dragon and your father, please."
    audio_format = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=rate)
    interruption_speech = np.concatenate([speak("Hold on a moment", rate), np.zeros(rate, np.float32)])
    # The reply's pieces after its first are held until the player's line is answered (held_rest), so a
    # fast machine cannot finish the reply before the voice is detected. The model decides how long its
    # reply is: one of a single piece ends at once, and the test tries again with a new player, so each
    # try starts from the same memory (a reply that ended was not interrupted, and that is right too).
    for attempt in range(5):
        held_rest.arm()
        player = f"player-barge-in-{attempt}"
        conversation = Conversation(gateway, config(player, talkative, input_audio=audio_format))
        conversation.send(text=request)
        out = TurnOutput()
        while not out.audio:
            response = await conversation.next()
            if response.WhichOneof("event") == "audio":
                out.audio.append(response.audio)
        first = out.audio[0]
        turn_index = first.turn_index
        played = first.num_samples // 2
        conversation.send(
            playback=conversation_pb2.PlaybackPosition(turn_index=turn_index, played_samples=played)
        )
        for start in range(0, len(interruption_speech), rate // 10):
            conversation.send(audio=pcm16(interruption_speech[start : start + rate // 10]))
        out = await conversation.turn(out)
        held_rest.release()
        await conversation.close()
        if out.interruption is not None:
            break
    assert out.interruption is not None and out.end.interrupted and out.end.turn_index == turn_index
    words = first.text.split()
    heard = out.interruption.heard_text
    assert out.interruption.heard_samples == played
    assert heard == " ".join(words[: int(len(words) * played / first.num_samples)])
    after = out.events[out.events.index("interruption") :]
    assert "audio" not in after  # nothing of the cut reply arrives after the interruption
    stored = (await export(gateway, player, talkative)).turns
    assert (stored[0].role, stored[0].text) == ("player", request)
    following = stored[1] if len(stored) > 1 else None
    if heard:  # the NPC's line is what was heard, marked interrupted
        assert following is not None and following.role == "npc"
        assert (following.text, following.interrupted) == (heard, True)
    else:  # nothing heard: no NPC line for that turn
        assert following is None or following.role == "player"


async def test_a_reply_sent_in_full_but_talked_over_while_it_plays_is_remembered_as_heard(gateway):
    """On a fast machine a reply is all sent long before it has played. A line that comes while the
    client's playback says the reply still plays cuts it after its TurnEnd: an Interruption for that turn,
    and memory keeps what was heard. A reply played out (the position says so, or it has been long enough
    since the last one) and one whose client reports no playback stay whole."""
    player = "player-cut-short"
    conversation = Conversation(gateway, config(player))

    async def turn(line: str) -> TurnOutput:
        conversation.send(text=line)
        return await conversation.turn()

    def report(out: TurnOutput, played: int) -> None:
        conversation.send(
            playback=conversation_pb2.PlaybackPosition(turn_index=out.end.turn_index, played_samples=played)
        )

    unreported = await turn("Good morning! What do you make here?")
    played_out = await turn("And what do you charge for a sword?")  # the first is not cut: no playback word
    assert played_out.cut_short is None
    report(played_out, sum(a.num_samples for a in played_out.audio))
    stale = await turn("Do you mend armour too?")
    assert stale.cut_short is None
    short = sum(a.num_samples for a in stale.audio) - stale.audio[-1].format.sample_rate_hz // 10
    report(stale, short)  # 0.1 s before its end, and the next line comes later than that
    await asyncio.sleep(0.3)
    cut = await turn("Where did you learn your trade?")
    assert cut.cut_short is None and cut.audio
    first = cut.audio[0]
    report(cut, first.num_samples // 3)
    after = await turn("Sorry, go on.")
    await conversation.close()

    assert after.cut_short is not None and after.cut_short.turn_index == cut.end.turn_index
    assert not cut.end.interrupted and cut.end.reply_text == cut.text  # it had ended whole
    words = first.text.split()
    heard = " ".join(words[: int(len(words) * (first.num_samples // 3) / first.num_samples)])
    assert (after.cut_short.heard_text, after.cut_short.heard_samples) == (heard, first.num_samples // 3)
    assert after.end.player_text == "Sorry, go on." and not after.end.interrupted
    stored = [(t.role, t.text, t.interrupted) for t in (await export(gateway, player)).turns]
    whole = [(o.end.player_text, o.end.reply_text.strip()) for o in (unreported, played_out, stale)]
    expected = [line for said, reply in whole for line in (("player", said, False), ("npc", reply, False))]
    expected += [("player", cut.end.player_text, False), *([("npc", heard, True)] if heard else [])]
    assert stored[: len(expected) + 1] == [*expected, ("player", "Sorry, go on.", False)]


async def test_bad_conversations_get_the_right_status(gateway):
    cases = [
        ([config("p1", npc="nobody")], grpc.StatusCode.NOT_FOUND, "NPC 'nobody' not found"),
        ([conversation_pb2.ConverseRequest(text="hi")], grpc.StatusCode.INVALID_ARGUMENT, "config: the first message"),
        ([config("p1"), conversation_pb2.ConverseRequest(audio=b"\\0\\0")], grpc.StatusCode.FAILED_PRECONDITION,
         "audio: set config.input_audio"),
        ([config("p1"), conversation_pb2.ConverseRequest(text="x" * 1001)], grpc.StatusCode.INVALID_ARGUMENT,
         "text: at most 1000 characters"),
        ([config("p1", visemes=conversation_pb2.VisemeOptions(frame_rate=7))], grpc.StatusCode.INVALID_ARGUMENT,
         "config.visemes.frame_rate"),
        ([config("bad player id!")], grpc.StatusCode.INVALID_ARGUMENT, "config.player_id"),
        ([config("p1"), config("p1")], grpc.StatusCode.INVALID_ARGUMENT, "config: only the first message"),
    ]  # fmt: skip
    for requests, code, message in cases:

        async def stream(requests=requests):
            for request in requests:
                yield request
            await asyncio.sleep(60)  # the stream stays open: the server's error is what ends it

        got, details = await status_of(stub(gateway).Converse(stream()))
        assert (got, details[: len(message)]) == (code, message)


async def test_an_edited_persona_takes_effect_on_the_next_session_without_a_restart(
    gateway, test_persona_dir
):
    path = test_persona_dir / "courier_edited_test.yaml"
    source = (
        (test_persona_dir / "courier_quick_test.yaml")
        .read_text()
        .replace("courier_quick_test", "courier_edited_test")
    )
    path.write_text(source)
    conversation = Conversation(
        gateway, config("p-edit", "courier_edited_test", reply_mode=conversation_pb2.REPLY_MODE_TEXT)
    )
    assert (await conversation.next()).started.greeting == "Letter for you? No? Then I'm off."
    await conversation.close()
    path.write_text(source.replace("Letter for you? No? Then I'm off.", "Post! Fresh from Vaelmoor."))
    conversation = Conversation(
        gateway, config("p-edit", "courier_edited_test", reply_mode=conversation_pb2.REPLY_MODE_TEXT)
    )
    assert (await conversation.next()).started.greeting == "Post! Fresh from Vaelmoor."
    await conversation.close()
    path.write_text(
        source.replace("display_name:", "display_nam:")
    )  # an invalid edit keeps the last good one
    conversation = Conversation(
        gateway, config("p-edit", "courier_edited_test", reply_mode=conversation_pb2.REPLY_MODE_TEXT)
    )
    assert (await conversation.next()).started.greeting == "Post! Fresh from Vaelmoor."
    await conversation.close()


async def test_the_cli_talks_by_text_and_wav_and_writes_the_reply_audio_and_visemes(gateway, speak, tmp_path):
    import json
    import sys
    import wave

    from tests.conftest import REPO_ROOT

    question = tmp_path / "question.wav"
    with wave.open(str(question), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(
            pcm16(np.concatenate([speak("Do you have a letter for me?", 22050), np.zeros(11025, np.float32)]))
        )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npcvoice", "talk", "courier_quick_test", "Hello there!", str(question),
        "--address", gateway.host.address, "--out", str(tmp_path / "out"), "--player", "cli-test",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 0, output
    assert "[0] player: Hello there!" in output
    heard = next(line for line in output.splitlines() if line.startswith("[1] player:"))
    # the WAV's transcript ("letter" is sometimes heard as "lighter": piper's delivery varies)
    assert "do you have a" in heard.lower(), output
    assert output.count("npc:") == 2 and "first audio" in output
    for index in (0, 1):
        with wave.open(str(tmp_path / "out" / f"turn-{index}.wav")) as reply:
            seconds = reply.getnframes() / reply.getframerate()
        frames = json.loads((tmp_path / "out" / f"turn-{index}.visemes.json").read_text())["frames"]
        assert seconds > 0.3 and abs(len(frames) / 30 - seconds) < 0.2  # 30 frames a second cover the audio


async def test_several_conversations_at_once_each_keep_their_own_memory(gateway):
    players = [f"player-crowd-{n}" for n in range(3)]

    async def talk(player: str) -> list[str]:
        conversation = Conversation(
            gateway, config(player, "courier_quick_test", reply_mode=conversation_pb2.REPLY_MODE_TEXT)
        )
        said = []
        for line in (f"I am {player}.", "Any letters for me?"):
            conversation.send(text=line)
            said.append((await conversation.turn()).end.player_text)
        await conversation.close()
        return said

    said = await asyncio.gather(*(talk(player) for player in players))
    for player, lines in zip(players, said, strict=True):
        stored = await export(gateway, player, "courier_quick_test")
        assert [t.text for t in stored.turns if t.role == "player"] == lines
        assert stored.player_facts == [f"I am {player}."]


async def test_a_typed_line_while_the_npc_speaks_interrupts_it_and_becomes_the_next_turn(
    gateway, held_rest, talkative
):
    interruption_line = "Wait, stop."
    # The reply's pieces after its first are held until the typed line is answered (held_rest). The model
    # decides how long its reply is: if it is one piece, over before the typed line arrives, the test
    # tries again with a new player (a reply that ended was not interrupted, and that is right too).
    for attempt in range(5):
        held_rest.arm()
        player = f"player-typed-barge-in-{attempt}"
        conversation = Conversation(gateway, config(player, talkative))
        conversation.send(text="Tell me the whole story of the dragon and your father, please.")
        out = TurnOutput()
        while not out.audio:
            response = await conversation.next()
            if response.WhichOneof("event") == "audio":
                out.audio.append(response.audio)
        conversation.send(text=interruption_line)
        first = await conversation.turn(out)
        second = await conversation.turn()
        await conversation.close()
        if first.interruption is not None:
            break
    assert first.interruption is not None and first.end.interrupted
    assert first.interruption.turn_index == first.end.turn_index
    # No playback reported: what was heard is the audio delivered before the typed line.
    assert first.interruption.heard_samples == sum(chunk.num_samples for chunk in first.audio)
    assert "audio" not in first.events[first.events.index("interruption") :]
    assert second.end.player_text == interruption_line and second.end.turn_index == first.end.turn_index + 1
    stored = [(t.role, t.text, t.interrupted) for t in (await export(gateway, player, talkative)).turns]
    heard = first.interruption.heard_text
    expected = [("player", first.end.player_text, False), *([("npc", heard, True)] if heard else [])]
    assert stored[: len(expected) + 1] == [*expected, ("player", interruption_line, False)]
