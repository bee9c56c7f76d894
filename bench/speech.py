"""Speech benchmarks, one run, same audio (speech from the bundled piper voice).

    .venv/bin/python -m bench.speech [--utterances 20]

1. Real-time factor of Recognize through gRPC (a real speech service process) vs faster-whisper called
   directly with the same model and options, and word error rate.
2. Latency from the true end of speech to the final transcript, streaming in real time (20 ms chunks at
   wall-clock pace), p50/p95 over the utterances; split into the wait for the endpoint (silence) and the
   transcription after it.
Both for final_window=fit (the default) and final_window=full (Whisper's 30 s window).
"""

from __future__ import annotations

import argparse
import threading
import time

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


def bench_rtf(
    stubs: dict[str, speech_pb2_grpc.SpeechServiceStub], utterances: list[np.ndarray], lines: list[str]
) -> list[list[object]]:
    model = WhisperModel(bundled_model_path(), device="cpu", compute_type="int8", cpu_threads=2)
    seconds = sum(len(a) for a in utterances) / RATE
    times = {"direct": 0.0} | dict.fromkeys(stubs, 0.0)
    errors = {"direct": [0, 0]} | {name: [0, 0] for name in stubs}
    for audio, line in zip(utterances, lines, strict=True):
        started = time.perf_counter()
        segments, _ = model.transcribe(audio, language="en", beam_size=1, without_timestamps=True,
                                       condition_on_previous_text=False, vad_filter=False)  # fmt: skip
        text = " ".join(s.text for s in segments)
        times["direct"] += time.perf_counter() - started
        errors["direct"] = [
            errors["direct"][0] + word_edits(line, text),
            errors["direct"][1] + len(words(line)),
        ]
        for name, stub in stubs.items():
            started = time.perf_counter()
            response = stub.Recognize(
                speech_pb2.RecognizeRequest(config=CONFIG, audio=encode(audio, "pcm16"))
            )
            times[name] += time.perf_counter() - started
            errors[name] = [
                errors[name][0] + word_edits(line, response.text),
                errors[name][1] + len(words(line)),
            ]
    labels = {"direct": "faster-whisper direct"} | {
        n: f"Recognize over gRPC, final_window={n}" for n in stubs
    }
    return [
        [labels[n], times[n] / seconds, times[n] / times["direct"], errors[n][0] / errors[n][1]]
        for n in times
    ]


def bench_end_of_speech(
    stub: speech_pb2_grpc.SpeechServiceStub, utterances: list[np.ndarray]
) -> list[list[object]]:
    gap = np.zeros(int(1.2 * RATE), np.float32)
    stream = np.concatenate([x for audio in utterances for x in (audio, gap)])
    ends, position = [], 0
    for audio in utterances:
        voiced = np.flatnonzero(np.abs(audio) > 0.02)  # piper ends each line with silence: not speech
        ends.append((position + (voiced[-1] if len(voiced) else len(audio))) / RATE)
        position += len(audio) + len(gap)
    chunk = RATE // 50  # 20 ms
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

    ended_at: dict[int, float] = {}
    finals: dict[int, tuple[float, float]] = {}
    for response in stub.StreamingRecognize(requests()):
        now = time.perf_counter() - started
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
    args = parser.parse_args()
    voice = VoiceEngine(VoiceOptions())
    settings = voice.check(SynthesisSettings(sample_rate=RATE))
    utterances = [
        voice.synthesize_piece(LINES[i % len(LINES)], settings, 0, 0).audio for i in range(args.utterances)
    ]
    lines = [LINES[i % len(LINES)] for i in range(args.utterances)]
    latency: list[list[object]] = []
    with (
        service_process("speech", "--option", "final_window=full") as full_address,
        service_process("speech") as fit_address,
    ):
        stubs = {name: speech_pb2_grpc.SpeechServiceStub(grpc.insecure_channel(address))
                 for name, address in (("full", full_address), ("fit", fit_address))}  # fmt: skip
        for stub in stubs.values():
            stub.Recognize(speech_pb2.RecognizeRequest(config=CONFIG, audio=encode(utterances[0], "pcm16")))
        rtf = bench_rtf(stubs, utterances, lines)
        for name, stub in stubs.items():
            latency += [[f"final_window={name}", "", ""], *bench_end_of_speech(stub, utterances)]
    print(f"machine: {machine()}; utterances: {args.utterances}\n")
    print("Recognition: real-time factor (seconds of compute per second of audio) and word error rate")
    print(table(["path", "real-time factor", "ratio to direct", "WER"], rtf), "\n")
    print("Streaming in real time: end of speech to final transcript (ms)")
    print(table(["measure", "p50 ms", "p95 ms"], latency))


if __name__ == "__main__":
    threading.excepthook = lambda args: None  # the request thread ends when the stream does
    main()
