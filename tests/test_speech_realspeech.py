"""The speech service on recordings of real people (tests/data/realspeech): commands, card names, digits,
read sentences and a speech, several speakers. Accuracy is measured against faster-whisper called directly
on the same audio as its authors run it (the 30-second window, beam 5), on this machine, in this run."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import numpy as np
import pytest
from faster_whisper import WhisperModel

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.speech.v1 import speech_pb2, speech_pb2_grpc
from npcvoice.audio import encode
from npcvoice.catalog import SERVICES
from npcvoice.speech.engine import bundled_model_path, repeated_tail
from tests.conftest import HostedService, start_service
from tests.support.realspeech import RATE, clip, clips, spoken_lines
from tests.support.wer import corpus_word_error_rate, word_edits, words

ALLOWED_RATIO = 1.10  # the service's word error rate may be at most 10 % above faster-whisper's own,
# counted in whole words: on this set (134 words) a tenth of faster-whisper's errors is less than one word.
# Clips whose transcript came back with a phrase repeated before the window was fixed (issue #12).
REPEATED_BEFORE = ["cards-001", "cards-004", "goforward", "forever-2", "librivox-sense-and-sensibility-0930"]
CONFIG = speech_pb2.RecognitionConfig(
    audio_format=audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE)
)


@pytest.fixture(scope="module")
async def speech() -> AsyncIterator[HostedService]:
    """The speech service with its default options (the shared test service has small limits)."""
    service = await start_service("speech", SERVICES["speech"].registration())
    yield service
    await service.channel.close()
    await service.host.stop(grace=0)


@pytest.fixture(scope="module")
def direct_edits() -> dict[str, int]:
    """faster-whisper alone, full window, beam 5, is the reference: its word errors on each clip."""
    model = WhisperModel(bundled_model_path(), device="cpu", compute_type="int8", cpu_threads=2)
    edits = {}
    for c in clips():
        segments, _ = model.transcribe(c.audio, language="en", beam_size=5, vad_filter=False)
        edits[c.name] = word_edits(c.reference, " ".join(s.text for s in segments))
    return edits


def allowed(direct_edits: dict[str, int], names: list[str]) -> int:
    return math.ceil(sum(direct_edits[n] for n in names) * ALLOWED_RATIO)


async def recognize(service: HostedService, audio: np.ndarray) -> str:
    stub = speech_pb2_grpc.SpeechServiceStub(service.channel)
    request = speech_pb2.RecognizeRequest(config=CONFIG, audio=encode(audio, "pcm16"))
    return str((await stub.Recognize(request)).text)


async def stream_finals(service: HostedService, audio: np.ndarray) -> list[speech_pb2.StreamingTranscript]:
    """The final transcripts of ``audio`` streamed in 100 ms messages (as fast as they are taken: the
    utterance cutting counts in audio time, so pacing would only slow the test)."""
    stub = speech_pb2_grpc.SpeechServiceStub(service.channel)
    data, step = encode(audio, "pcm16"), RATE // 10 * 2

    def requests():
        yield speech_pb2.StreamingRecognizeRequest(
            config=speech_pb2.StreamingRecognitionConfig(recognition=CONFIG)
        )
        for start in range(0, len(data), step):
            yield speech_pb2.StreamingRecognizeRequest(audio=data[start : start + step])

    return [
        r.transcript
        async for r in stub.StreamingRecognize(requests())
        if r.HasField("transcript") and r.transcript.is_final
    ]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


async def test_recognize_is_within_ten_percent_of_faster_whisper_on_real_voices(speech, direct_edits):
    pairs = [(c.reference, await recognize(speech, c.audio)) for c in clips()]
    assert sum(word_edits(r, h) for r, h in pairs) <= allowed(direct_edits, [c.name for c in clips()]), pairs


async def test_streaming_is_within_ten_percent_of_faster_whisper_on_real_voices(speech, direct_edits):
    pairs = []
    for c in clips():  # one stream per clip, then silence: the player stopped talking
        finals = await stream_finals(speech, np.concatenate([silence(0.5), c.audio, silence(2.5)]))
        pairs.append((c.reference, " ".join(spoken_lines(finals))))
    assert sum(word_edits(r, h) for r, h in pairs) <= allowed(direct_edits, [c.name for c in clips()]), pairs


async def test_a_speech_with_long_comma_pauses_comes_out_as_one_line(speech):
    """Kennedy pauses 0.3-1.5 s at his commas: each pause ends an utterance (a reply must not wait 1.5 s
    on every pause), but each part after a pause continues the line, and the last final is all of it."""
    jfk = clip("jfk")
    finals = await stream_finals(speech, np.concatenate([silence(0.5), jfk.audio, silence(2.5)]))
    assert len(finals) > 1 and all(f.line_text for f in finals[1:]), [f.text for f in finals]
    whole = finals[-1].line_text
    assert word_edits(jfk.reference, whole) <= 2, whole
    # each continuation's own text is what was said after its pause, not the line again
    assert sum(len(words(f.text)) for f in finals) <= len(words(jfk.reference)) + 2, [f.text for f in finals]
    assert finals[-1].start_seconds == finals[0].start_seconds


@pytest.mark.parametrize("name", REPEATED_BEFORE)
async def test_a_phrase_said_once_comes_back_once(speech, name):
    c = clip(name)
    text = await recognize(speech, c.audio)
    assert repeated_tail(text) is None, text
    assert len(words(text)) <= len(words(c.reference)) + 1, text


@pytest.mark.parametrize(
    "name", ["librivox-sense-and-sensibility-0890", "librivox-sense-and-sensibility-0920"]
)
async def test_a_sentence_with_a_comma_pause_is_one_final(speech, name):
    c = clip(name)
    finals = await stream_finals(speech, np.concatenate([silence(0.5), c.audio, silence(1.5)]))
    assert len(finals) == 1, [f.text for f in finals]
    assert len(words(finals[0].text)) >= len(words(c.reference)) - 2


async def test_two_questions_with_a_long_pause_between_are_two_finals(speech):
    first, second = clip("goforward"), clip("cards-005")
    audio = np.concatenate([silence(0.5), first.audio, silence(2.5), second.audio, silence(1.5)])
    finals = await stream_finals(speech, audio)
    assert len(finals) == 2 and not finals[1].line_text, [f.text for f in finals]
    assert (
        corpus_word_error_rate([(first.reference, finals[0].text), (second.reference, finals[1].text)]) <= 0.2
    )


async def test_the_end_of_turn_model_keeps_a_pause_that_sounds_unfinished_in_the_utterance(speech, hosted):
    from npcvoice.speech.registration import REGISTRATION

    listening = await hosted("speech", REGISTRATION, {"end_of_turn": "model"})
    audio = np.concatenate([silence(0.5), clip("jfk").audio, silence(2.5)])
    by_silence = await stream_finals(speech, audio)
    by_model = await stream_finals(listening, audio)
    # Kennedy pauses at each comma; after "ask not what your country can do for you," he sounds unfinished
    assert len(by_model) < len(by_silence), ([f.text for f in by_model], [f.text for f in by_silence])
