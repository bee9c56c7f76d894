"""Cutting a live 16 kHz audio stream into utterances with streaming voice-activity detection.

Pure logic over the VAD's probabilities: it says when speech starts and ends, hands out the audio of each
utterance for its final transcript, and asks for interim transcripts at a steady cadence. It never waits
for a transcription, so speech detection (which the gateway uses for barge-in) is never held up.

Once the silence after speech has lasted a moment, the audio the final will use is known (the rest of
its padding is silence), so it is handed out early, marked speculative: transcription starts while the
endpoint's silence is still being confirmed. If the player goes on talking, that guess is void
(``GuessVoid``): its transcription is dropped, or never run if it has not started.

A pause is not always the end of a turn: people stop at a comma and go on. When the silence has lasted
the padding, an end-of-turn model (when there is one) hears the utterance so far: if it sounds finished,
the short silence (``min_silence_ms``) ends it; if it sounds unfinished, the utterance waits for the
player to go on, up to a longer silence (``max_silence_ms``) after which it ends anyway.

Nor does a final always end the line: a speaker may pause a second or more at a comma ("And so, my fellow
Americans, | ask not | what your country can do for you"), and no silence short enough for a quick reply
tells that pause from the end. So the audio of an utterance cut at a pause is kept for ``continue_within``
after its speech ended: if the player speaks again in that time, the next utterance continues it, its
audio starting with the one before (``continues``), and its transcript is the whole line heard as one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from npcvoice.speech.turn_end import TurnEndModel
from npcvoice.speech.vad import SAMPLE_RATE, WINDOW, Endpointing, SileroStream, SpeechProbability

FinalReason = Literal["endpoint", "max_duration", "end_of_stream"]
NEGATIVE_MARGIN = 0.15  # below threshold minus this, a window counts as silence (hysteresis)
# Windows of silence after which the final's transcription starts speculatively. Two (64 ms) rather than
# the whole padding: the final's window is 12 s of audio and beam 5, and its time counts from here.
SPECULATE_AFTER = 2
# Growth of the client's audio's lag behind real time beyond this is its microphone closed, not jitter.
IDLE_JITTER_S = 0.25


@dataclass(frozen=True)
class SpeechStarted:
    utterance_index: int
    stream_time_s: float


@dataclass(frozen=True)
class SpeechEnded:
    utterance_index: int
    stream_time_s: float


@dataclass(frozen=True)
class UtteranceAudio:
    """Audio of an utterance so far (interim) or in full (final), with its place in the stream."""

    utterance_index: int
    audio: np.ndarray
    start_s: float
    end_s: float
    final: bool
    reason: FinalReason | None = None
    decided_at: float = 0.0  # perf_counter when the utterance was cut (finals)
    speculative: bool = False  # the final's audio, if the silence goes on to end the utterance
    continues: bool = False  # the audio starts with the previous utterance's: the player went on after it


@dataclass(frozen=True)
class GuessVoid:
    """The player went on talking within the silence after a speculative final: that guess is void."""

    utterance_index: int


Event = SpeechStarted | SpeechEnded | UtteranceAudio | GuessVoid


@dataclass(frozen=True)
class TurnEnd:
    """An end-of-turn model and how the detector uses it."""

    model: TurnEndModel
    threshold: float = 0.5  # probability of "finished" from which the short silence ends the turn
    max_silence_ms: int = 2000  # the silence that ends a turn that sounded unfinished

    @property
    def max_silence_windows(self) -> int:
        return max(1, round(self.max_silence_ms * SAMPLE_RATE / 1000 / WINDOW))

    def finished(self, audio: np.ndarray) -> bool:
        return self.model.probability(audio) >= self.threshold


class UtteranceDetector:
    def __init__(
        self,
        endpointing: Endpointing,
        max_utterance_s: float,
        interim_interval_s: float | None,
        vad: SpeechProbability | None = None,
        turn_end: TurnEnd | None = None,
        continue_within_s: float = 0.0,
    ) -> None:
        self._endpointing = endpointing
        self._turn_end = turn_end
        self._vad = vad or SileroStream()
        self._max_utterance = int(max_utterance_s * SAMPLE_RATE)
        self._interim_every = int(interim_interval_s * SAMPLE_RATE) if interim_interval_s else None
        self._pad = int(endpointing.speech_pad_ms * SAMPLE_RATE / 1000)
        self._min_speech = endpointing.windows(endpointing.min_speech_ms)
        self._min_silence = endpointing.windows(endpointing.min_silence_ms)
        pad_windows = max(1, -(-self._pad // WINDOW))
        self._speculate_after = min(pad_windows, SPECULATE_AFTER)
        self._judge_after = min(pad_windows, self._min_silence)  # the end-of-turn model hears the padding
        self._silence_needed = self._min_silence
        self._pending = np.zeros(0, np.float32)
        self._windows_seen = 0
        self._history: deque[np.ndarray] = deque(maxlen=self._min_speech + self._pad // WINDOW + 2)
        self._floor = 0  # no utterance starts before the end of the previous one
        self._in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        self._guessed = False  # a speculative final of this utterance is out, and speech has not resumed
        self._utterance: list[np.ndarray] = []
        self._utterance_start = 0
        self._last_interim_samples = 0
        self.utterance_index = 0
        self._continue_within = int(continue_within_s * SAMPLE_RATE)
        self._continues = False
        # The last utterance cut at a pause: its audio and the silence since, its start and its speech end.
        self._carry: list[np.ndarray] = []
        self._carry_start = 0
        self._carry_speech_end = 0

    def feed(self, samples: np.ndarray) -> list[Event]:
        """Take 16 kHz float32 samples; return what they caused, in order."""
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(data) // WINDOW * WINDOW
        self._pending = data[whole:]
        windows = data[:whole].reshape(-1, WINDOW)
        events: list[Event] = []
        for window, probability in zip(windows, self._vad.probabilities(windows), strict=True):
            events += self._step(window, float(probability))
        return events

    def finish(self) -> list[Event]:
        """End of the stream: the utterance in progress, if any, is final."""
        if self._in_speech:
            if len(self._pending):
                self._utterance.append(self._pending)
                self._pending = np.zeros(0, np.float32)
            end = self._utterance_start + sum(len(w) for w in self._utterance)
            return [SpeechEnded(self.utterance_index, end / SAMPLE_RATE), self._cut(end, "end_of_stream")]
        return []

    def _step(self, window: np.ndarray, probability: float) -> list[Event]:
        index = self._windows_seen
        self._windows_seen += 1
        threshold = self._endpointing.speech_threshold
        if not self._in_speech:
            self._history.append(window)
            self._keep_carry(window, end=(index + 1) * WINDOW)
            self._speech_run = self._speech_run + 1 if probability >= threshold else 0
            if self._speech_run < self._min_speech:
                return []
            first_speech = (index - self._speech_run + 1) * WINDOW
            return [self._start(first_speech, end=(index + 1) * WINDOW)]

        self._utterance.append(window)
        end = (index + 1) * WINDOW
        silent = probability < threshold - NEGATIVE_MARGIN
        events: list[Event] = []
        if probability >= threshold:
            self._silence_run = 0
            self._silence_needed = self._min_silence
            if self._guessed:  # speech again before the endpoint: the final will hold more than the guess
                self._guessed = False
                events.append(GuessVoid(self.utterance_index))
        elif silent:
            self._silence_run += 1
        if silent and self._silence_run == self._judge_after:
            self._silence_needed = self._silence_to_end()
        if silent and self._silence_run == self._speculate_after < self._silence_needed:
            cut = end - self._silence_run * WINDOW + self._pad
            # the padding not heard yet is silence (the VAD says so): zeros stand in for it
            heard = np.concatenate(self._utterance)[: cut - self._utterance_start]
            audio = np.concatenate([heard, np.zeros(cut - self._utterance_start - len(heard), np.float32)])
            start_s = self._utterance_start / SAMPLE_RATE
            guess = UtteranceAudio(self.utterance_index, audio, start_s, cut / SAMPLE_RATE, False,
                                   speculative=True, continues=self._continues)  # fmt: skip
            events.append(guess)
            self._guessed = True
        if self._silence_run >= self._silence_needed:
            speech_end = end - self._silence_run * WINDOW
            events.append(SpeechEnded(self.utterance_index, speech_end / SAMPLE_RATE))
            carry, carry_start = self._utterance, self._utterance_start
            events.append(self._cut(min(end, speech_end + self._pad), "endpoint"))
            self._history.append(window)  # pre-roll for the next utterance
            if self._continue_within and end - carry_start < self._max_utterance // 2:
                self._carry, self._carry_start, self._carry_speech_end = carry, carry_start, speech_end
        elif end - self._utterance_start >= self._max_utterance:
            events.append(self._cut(end, "max_duration"))
            events.append(self._start(end, end))
        elif (
            self._interim_every
            and end - self._utterance_start - self._last_interim_samples >= self._interim_every
        ):
            self._last_interim_samples = end - self._utterance_start
            audio, start_s = np.concatenate(self._utterance), self._utterance_start / SAMPLE_RATE
            events.append(UtteranceAudio(self.utterance_index, audio, start_s, end / SAMPLE_RATE,
                                         final=False, continues=self._continues))  # fmt: skip
        return events

    def _silence_to_end(self) -> int:
        """Windows of silence that end the utterance in this pause: few if it sounds finished."""
        if self._turn_end is None:
            return self._min_silence
        finished = self._turn_end.finished(np.concatenate(self._utterance))
        return self._min_silence if finished else max(self._min_silence, self._turn_end.max_silence_windows)

    def _start(self, first_speech: int, end: int) -> SpeechStarted:
        """Open an utterance whose speech began at sample ``first_speech``; the stream has reached ``end``."""
        start = max(self._floor, first_speech - self._pad)
        history = np.concatenate(list(self._history)) if self._history else np.zeros(0, np.float32)
        history_start = end - len(history)
        self._utterance = [history[max(0, start - history_start) :]] if end > first_speech else []
        self._utterance_start = max(start, history_start) if end > first_speech else end
        self._last_interim_samples = 0
        self._continues = bool(self._carry) and first_speech - self._carry_speech_end <= self._continue_within
        if self._continues:  # the player went on after a pause: this utterance is the line so far and more
            self._utterance, self._utterance_start = self._carry, self._carry_start
            self._last_interim_samples = end - self._carry_start
        self._carry = []
        self._history.clear()
        self._in_speech = True
        self._silence_run = 0
        self._silence_needed = self._min_silence
        return SpeechStarted(self.utterance_index, first_speech / SAMPLE_RATE)

    def idle(self, seconds: float) -> None:
        """The client's audio fell ``seconds`` further behind real time: it sent none for a while (its
        microphone closed while the NPC spoke, or push to talk), and the player's silence then is not in the
        stream. It counts toward ``continue_within``: speech after such a gap starts a new line, however
        little silence the stream itself holds. (Shorter gaps are network jitter, not silence.)"""
        if seconds > IDLE_JITTER_S and self._carry:
            self._carry_speech_end -= round(seconds * SAMPLE_RATE)

    def _keep_carry(self, window: np.ndarray, end: int) -> None:
        """Between utterances: the last one's audio goes on growing with the silence after it, until the
        player has been silent for longer than ``continue_within``."""
        if not self._carry:
            return
        if end - self._carry_speech_end > self._continue_within + self._min_speech * WINDOW:
            self._carry = []  # (speech that starts in time is only confirmed min_speech later)
        else:
            self._carry.append(window)

    def _cut(self, end: int, reason: FinalReason) -> UtteranceAudio:
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        audio = audio[: max(0, end - self._utterance_start)]
        start_s = self._utterance_start / SAMPLE_RATE
        final = UtteranceAudio(self.utterance_index, audio, start_s, end / SAMPLE_RATE, True, reason,
                               time.perf_counter(), continues=self._continues)  # fmt: skip
        self.utterance_index += 1
        self._floor = end
        self._in_speech = False
        self._speech_run = 0
        self._utterance = []
        self._continues = False
        self._guessed = False
        return final
