"""Utterance cutting, step by step. The VAD here is a fake that replays scripted speech probabilities, so
that the endpointing rules can be checked window by window; the real Silero model is exercised by
tests/test_speech.py."""

from __future__ import annotations

import itertools
from typing import cast

import numpy as np

from npcvoice.speech.recognition import said_after
from npcvoice.speech.stream import (
    Event,
    GuessVoid,
    SpeechEnded,
    SpeechStarted,
    TurnEnd,
    UtteranceAudio,
    UtteranceDetector,
)
from npcvoice.speech.vad import WINDOW, Endpointing

WINDOW_S = WINDOW / 16000  # 32 ms


class ScriptedVad:
    def __init__(self, probabilities: list[float]) -> None:
        self._script = iter(probabilities)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return np.array([next(self._script) for _ in range(len(windows))], np.float32)


class ScriptedTurnEnd:
    """An end-of-turn model that answers scripted probabilities and notes how much audio it heard."""

    def __init__(self, probabilities: list[float]) -> None:
        self._script = iter(probabilities)
        self.heard: list[int] = []

    def probability(self, audio: np.ndarray) -> float:
        self.heard.append(len(audio))
        return next(self._script)


def detector(script: list[float], turn_end: TurnEnd | None = None, **limits) -> UtteranceDetector:
    endpointing = Endpointing(speech_threshold=0.5, min_silence_ms=320, min_speech_ms=96, speech_pad_ms=64)
    return UtteranceDetector(endpointing, limits.get("max_utterance_s", 30.0), limits.get("interim_s"),
                             vad=ScriptedVad(script), turn_end=turn_end,
                             continue_within_s=limits.get("continue_within_s", 0.0))  # fmt: skip


def run(script: list[float], turn_end: TurnEnd | None = None, **limits) -> list[Event]:
    cutter = detector(script, turn_end, **limits)
    audio = np.arange(len(script) * WINDOW, dtype=np.float32)  # sample values are their own positions
    return cutter.feed(audio) + cutter.finish()


def finals(events: list[Event]) -> list[UtteranceAudio]:
    return [e for e in events if isinstance(e, UtteranceAudio) and e.final]


def test_speech_then_silence_gives_start_end_and_a_final_with_padding():
    script = [0.0] * 10 + [0.9] * 20 + [0.0] * 15
    events = run(script)
    started, speculative, ended, final = events
    assert started == SpeechStarted(0, 10 * WINDOW_S)
    assert ended == SpeechEnded(0, 30 * WINDOW_S)
    assert isinstance(final, UtteranceAudio) and final.final and final.reason == "endpoint"
    # 64 ms of padding either side of the speech
    assert final.start_s == (10 - 2) * WINDOW_S and final.end_s == (30 + 2) * WINDOW_S
    assert final.audio[0] == (10 - 2) * WINDOW and len(final.audio) == 24 * WINDOW
    # the speculative transcript was of exactly the final's audio
    assert isinstance(speculative, UtteranceAudio) and speculative.speculative
    assert (speculative.start_s, speculative.end_s) == (final.start_s, final.end_s)
    assert np.array_equal(speculative.audio, final.audio)


def test_a_short_pause_does_not_end_the_utterance_and_blips_are_not_speech():
    script = [0.9, 0.9] + [0.0] * 5 + [0.9] * 10 + [0.0] * 5 + [0.9] * 10 + [0.0] * 12
    events = run(script)
    kinds = [type(e).__name__ for e in events if not (isinstance(e, UtteranceAudio) and e.speculative)]
    # one utterance despite the pause; the final guessed in the pause is void once the player goes on
    assert kinds == ["SpeechStarted", "GuessVoid", "SpeechEnded", "UtteranceAudio"]
    assert events[0] == SpeechStarted(0, 7 * WINDOW_S)  # the two-window blip was too short to be speech
    guesses = [i for i, e in enumerate(events) if isinstance(e, UtteranceAudio) and e.speculative]
    void = next(i for i, e in enumerate(events) if isinstance(e, GuessVoid))
    assert guesses[0] < void < guesses[1]  # the pause's guess is void; the one after the last word stands
    assert finals(events)[0].end_s == cast(UtteranceAudio, events[guesses[1]]).end_s


def test_an_utterance_over_the_limit_is_cut_and_continues_as_the_next():
    script = [0.9] * 100 + [0.0] * 12
    finals = [e for e in run(script, max_utterance_s=1.0) if isinstance(e, UtteranceAudio) and e.final]
    assert [f.reason for f in finals][:3] == ["max_duration", "max_duration", "max_duration"]
    assert finals[-1].reason == "endpoint"
    assert all(f.end_s - f.start_s <= 1.0 + WINDOW_S for f in finals)
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(finals))  # nothing lost


def test_interims_come_at_the_requested_cadence_and_the_stream_end_finalises():
    script = [0.9] * 40
    events = run(script, interim_s=0.32)
    interims = [e for e in events if isinstance(e, UtteranceAudio) and not e.final and not e.speculative]
    assert [round(i.end_s, 2) for i in interims] == [0.32, 0.64, 0.96, 1.28]
    final = events[-1]
    assert isinstance(final, UtteranceAudio) and final.reason == "end_of_stream"


# speech, a pause of 15 windows (480 ms, more than the 320 ms that end an utterance), speech, silence
PAUSED = [0.0] * 5 + [0.9] * 20 + [0.0] * 15 + [0.9] * 20 + [0.0] * 80


def test_a_pause_that_sounds_unfinished_does_not_end_the_utterance():
    model = ScriptedTurnEnd([0.1, 0.9])
    (final,) = finals(run(PAUSED, TurnEnd(model, threshold=0.5, max_silence_ms=2000)))
    assert (final.start_s, final.end_s, final.reason) == ((5 - 2) * WINDOW_S, (60 + 2) * WINDOW_S, "endpoint")
    # asked once per pause, when the silence had lasted the padding (2 windows)
    assert model.heard == [(25 + 2 - 3) * WINDOW, (60 + 2 - 3) * WINDOW]


def test_a_pause_that_sounds_finished_ends_the_utterance_after_the_short_silence():
    cut = finals(run(PAUSED, TurnEnd(ScriptedTurnEnd([0.9, 0.9]), threshold=0.5)))
    assert [(f.start_s, f.end_s) for f in cut] == [
        (3 * WINDOW_S, 27 * WINDOW_S),
        (38 * WINDOW_S, 62 * WINDOW_S),
    ]
    assert len(finals(run(PAUSED))) == 2  # as silence alone does


def test_an_unfinished_sounding_turn_still_ends_after_the_longer_silence():
    script = [0.9] * 20 + [0.0] * 60
    cutter = detector(
        script, TurnEnd(ScriptedTurnEnd([0.1]), threshold=0.5, max_silence_ms=1024)
    )  # 32 windows
    audio = np.zeros(len(script) * WINDOW, np.float32)
    assert finals(cutter.feed(audio[: (20 + 31) * WINDOW])) == []  # 31 windows of silence: still waiting
    (final,) = finals(cutter.feed(audio[(20 + 31) * WINDOW :]))
    assert final.end_s == 22 * WINDOW_S and final.reason == "endpoint"


def test_speech_soon_after_a_final_continues_it_from_the_start_of_the_line():
    # the 480 ms pause ends the first utterance; the speech after it starts within 640 ms of its end
    first, second = finals(run(PAUSED, continue_within_s=0.64))
    assert not first.continues and (first.start_s, first.end_s) == (3 * WINDOW_S, 27 * WINDOW_S)
    assert second.continues and (second.start_s, second.end_s) == (3 * WINDOW_S, 62 * WINDOW_S)
    # its audio is the whole line, the pause included, nothing skipped (samples are their positions)
    assert np.array_equal(second.audio, np.arange(3 * WINDOW, 62 * WINDOW, dtype=np.float32))


def test_speech_after_a_longer_silence_starts_a_new_line():
    _, second = finals(run(PAUSED, continue_within_s=0.32))
    assert not second.continues and second.start_s == 38 * WINDOW_S
    assert not any(f.continues for f in finals(run(PAUSED)))  # off unless asked for


def test_speech_after_the_client_paused_its_audio_starts_a_new_line():
    # A client that closes its microphone while the NPC speaks sends only a little of the silence after a
    # line: in the stream the next line starts soon after, though the player was silent for seconds.
    def second_after(idle_s: float) -> UtteranceAudio:
        cutter = detector(PAUSED, continue_within_s=0.64)
        audio = np.arange(len(PAUSED) * WINDOW, dtype=np.float32)
        events = cutter.feed(audio[: 37 * WINDOW])  # the first part, ended by its pause
        cutter.idle(idle_s)  # no audio came for that long
        return finals(events + cutter.feed(audio[37 * WINDOW :]) + cutter.finish())[1]

    assert not second_after(2.0).continues and second_after(2.0).start_s == 38 * WINDOW_S
    assert second_after(0.1).continues  # network jitter is not silence


def test_a_line_is_not_continued_past_half_the_utterance_limit():
    script = [0.9] * 30 + [0.0] * 15 + [0.9] * 20 + [0.0] * 15  # the first part alone is ~1 s
    cut = finals(run(script, max_utterance_s=2.0, continue_within_s=1.0))
    assert [f.continues for f in cut] == [False, False]


def test_what_a_continuation_adds_is_the_line_after_its_earlier_hearing():
    # heard alone, a phrase cut off at a pause is often misheard; heard with what followed, the line
    # agrees with the earlier hearing up to there, and the rest is what the player said after the pause
    assert said_after("And so, my fellow Americans, ask not.", "And so my fellow Americans.") == "ask not."
    # an end misheard before ("Lock!" for "ask not") is given again, as it is heard now
    assert said_after("And so, my fellow Americans, ask not what your country can do for you.",
                      "And so my fellow Americans. Lock!") == "ask not what your country can do for you."  # fmt: skip
    # a word said again later ("you") does not move the cut
    assert (
        said_after("What can I do for you? Ask what you can do for me.", "What can I do for you?")
        == "Ask what you can do for me."
    )
    assert said_after("Hello there.", "") == "Hello there."
