"""Speech benchmarks, one run, one speech service process (engine options with --option key=value).

    .venv/bin/python -m bench.speech [--utterances 20] [--option end_of_turn=model ...]

1. Word error rate on recordings of real people (tests/data/realspeech): faster-whisper called directly
   (30 s window, beam 5 and beam 1) against the service's Recognize and StreamingRecognize paced at real
   time (a final that continues the one before replaces its line), and the clips the stream cut into
   several finals, with the time each continuation's final took.
2. Latency from the true end of speech to the final transcript, streaming piper's lines in real time
   (20 ms chunks at wall-clock pace), p50/p95; split into the wait for the endpoint and the transcription
   after it.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
from faster_whisper import WhisperModel

from bench.common import machine, p50, percentile, service_process, table
from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.speech.v1 import speech_pb2, speech_pb2_grpc
from npcvoice.audio import encode
from npcvoice.speech.engine import bundled_model_path
from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
from npcvoice.voice.options import VoiceOptions
from tests.support.realspeech import clips, spoken_lines
from tests.support.wer import word_edits, words

RATE = 16000
LINES = [
    "I need my sword repaired before I go to the forest.",
    "How much for a room at the inn tonight?",
    "The captain said the gate closes at dusk.",
    "Can you tell me what happened to your father?",
    "Where can I find someone who sells healing potions?",
    "I am looking for work, do you have anything for me?",
    "Please open the gate, I have a letter for the king.",
    "What is the best ale you have?",
    "Thank you, I will come back tomorrow morning.",
    "Goodbye, and good luck with the forge.",
]
CONFIG = speech_pb2.RecognitionConfig(
    audio_format=audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE)
)


def bench_accuracy(stub: speech_pb2_grpc.SpeechServiceStub) -> tuple[list[list[object]], list[list[object]]]:
    """Word error rate on the real recordings: faster-whisper direct (its usual 30 s window, beam 5 and
    beam 1), Recognize, and StreamingRecognize paced at real time (all clips in one stream, 3 s of
    silence after each: longer than the 2 s within which speech continues a line); and the clips the
    stream cut into several finals."""
    model = WhisperModel(bundled_model_path(), device="cpu", compute_type="int8", cpu_threads=2)
    recordings = clips()
    seconds = sum(len(c.audio) for c in recordings) / RATE
    rows: list[list[object]] = []
    for beam in (5, 1):
        started, pairs = time.perf_counter(), []
        for c in recordings:
            segments, _ = model.transcribe(c.audio, language="en", beam_size=beam, vad_filter=False)
            pairs.append((c.reference, " ".join(s.text for s in segments)))
        elapsed = time.perf_counter() - started
        rows.append([f"faster-whisper direct, 30 s window, beam {beam}", elapsed / seconds, wer(pairs)])
    started, pairs = time.perf_counter(), []
    for c in recordings:
        response = stub.Recognize(speech_pb2.RecognizeRequest(config=CONFIG, audio=encode(c.audio, "pcm16")))
        pairs.append((c.reference, response.text))
    rows.append(["service Recognize", (time.perf_counter() - started) / seconds, wer(pairs)])
    gap = np.zeros(int(3.0 * RATE), np.float32)
    stream = np.concatenate([x for c in recordings for x in (c.audio, gap)])
    bounds = np.cumsum([len(c.audio) + len(gap) for c in recordings]) / RATE
    finals: list[list[speech_pb2.StreamingTranscript]] = [[] for _ in recordings]
    for response, _ in paced(stub, stream):
        if response.HasField("transcript") and response.transcript.is_final:
            index = int(np.searchsorted(bounds, response.transcript.start_seconds, side="right"))
            finals[min(index, len(recordings) - 1)].append(response.transcript)
    streamed = [(c.reference, " ".join(spoken_lines(f))) for c, f in zip(recordings, finals, strict=True)]
    rows.append(["service StreamingRecognize, real time", "", wer(streamed)])
    split = [
        [c.name, len(f), len(spoken_lines(f)), " | ".join(x.text for x in f),
         " ".join(f"{x.finalize_seconds * 1000:.0f}" for x in f)]
        for c, f in zip(recordings, finals, strict=True)
        if len(f) > 1
    ]  # fmt: skip
    return rows, split


def wer(pairs: list[tuple[str, str]]) -> float:
    return sum(word_edits(r, h) for r, h in pairs) / sum(len(words(r)) for r, _ in pairs)


def paced(
    stub: speech_pb2_grpc.SpeechServiceStub, stream: np.ndarray
) -> Iterator[tuple[speech_pb2.StreamingRecognizeResponse, float]]:
    """Stream ``stream`` in 20 ms chunks at wall-clock pace; yield each response with its arrival time
    (seconds from the start)."""
    chunk = RATE // 50
    started = time.perf_counter()

    def requests():
        yield speech_pb2.StreamingRecognizeRequest(
            config=speech_pb2.StreamingRecognitionConfig(recognition=CONFIG)
        )
        for index, offset in enumerate(range(0, len(stream), chunk)):
            delay = started + index * chunk / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield speech_pb2.StreamingRecognizeRequest(audio=encode(stream[offset : offset + chunk], "pcm16"))

    for response in stub.StreamingRecognize(requests()):
        yield response, time.perf_counter() - started


def bench_end_of_speech(
    stub: speech_pb2_grpc.SpeechServiceStub, utterances: list[np.ndarray]
) -> list[list[object]]:
    gap = np.zeros(int(2.5 * RATE), np.float32)  # more than continue_within_ms: each line is its own
    stream = np.concatenate([x for audio in utterances for x in (audio, gap)])
    ends, position = [], 0
    for audio in utterances:
        voiced = np.flatnonzero(np.abs(audio) > 0.02)  # piper ends each line with silence: not speech
        ends.append((position + (voiced[-1] if len(voiced) else len(audio))) / RATE)
        position += len(audio) + len(gap)
    ended_at: dict[int, float] = {}
    finals: dict[int, tuple[float, float]] = {}
    for response, now in paced(stub, stream):
        if response.HasField("activity") and response.activity.type == speech_pb2.SPEECH_ACTIVITY_TYPE_ENDED:
            ended_at[response.activity.utterance_index] = now
        elif response.HasField("transcript") and response.transcript.is_final:
            finals[response.transcript.utterance_index] = (now, response.transcript.finalize_seconds)
    total, wait, transcribe = [], [], []
    for index, (received, finalize) in finals.items():
        true_end = min(ends, key=lambda e: abs(e - (received - finalize)))  # the utterance this final closed
        total.append(received - true_end)
        wait.append(ended_at.get(index, received) - true_end)
        transcribe.append(finalize)
    return [
        ["end of speech → final transcript", p50(total) * 1000, percentile(total, 95) * 1000],
        ["  of which: waiting for the silence endpoint", p50(wait) * 1000, percentile(wait, 95) * 1000],
        [
            "  of which: transcription after the endpoint",
            p50(transcribe) * 1000,
            percentile(transcribe, 95) * 1000,
        ],
        [f"utterances finalised: {len(finals)} of {len(utterances)}", "", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--option", action="append", default=[], help="engine option for the service")
    args = parser.parse_args()
    voice = VoiceEngine(VoiceOptions())
    settings = voice.check(SynthesisSettings(sample_rate=RATE))
    utterances = [
        voice.synthesize_piece(LINES[i % len(LINES)], settings, 0, 0).audio for i in range(args.utterances)
    ]
    options = [x for option in args.option for x in ("--option", option)]
    with service_process("speech", *options) as address:
        stub = speech_pb2_grpc.SpeechServiceStub(grpc.insecure_channel(address))
        stub.Recognize(speech_pb2.RecognizeRequest(config=CONFIG, audio=encode(utterances[0], "pcm16")))
        accuracy, split = bench_accuracy(stub)
        latency = bench_end_of_speech(stub, utterances)
    print(f"machine: {machine()}; options: {args.option or 'defaults'}; utterances: {args.utterances}\n")
    print(f"Real recordings ({len(clips())} clips, tests/data/realspeech): word error rate")
    print(table(["path", "real-time factor", "WER"], accuracy), "\n")
    print(f"Clips the stream cut into several finals: {len(split)} of {len(clips())}")
    columns = ["clip", "finals", "lines", "texts (of a continuation: after its pause)", "finalize ms"]
    print(table(columns, split), "\n")
    print("Piper lines streamed in real time: end of speech to final transcript (ms)")
    print(table(["measure", "p50 ms", "p95 ms"], latency))


if __name__ == "__main__":
    threading.excepthook = lambda args: None  # the request thread ends when the stream does
    main()
