"""How the speech engine's short "fit" window fares against Whisper's own 30 s window, final by final.

    PYTHONPATH=services:. .venv/bin/python -m bench.fit_window [--syntheses 300]

The finals the stream's detector cuts from (1) the recordings of real people (tests/data/realspeech) and
(2) piper saying the lines of bench.speech and the CLI test's, ``--syntheses`` in all (its delivery
varies each time), each transcribed by the fit window and by the full window, in one process. Counted:
finals whose fit transcript stops two or more words short of the full window's (a line cut short);
finals the engine doubts (``FIT_MIN_LOG_PROB``, or a repeated tail) and so decodes again in the full
window; the cut ones among those; and the fit window's mean log-probability, lowest and median.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator

import numpy as np

from bench.common import machine, table
from bench.speech import LINES
from npcvoice.speech.engine import FIT_MIN_LOG_PROB, RecognitionRequest, SpeechEngine, repeated_tail
from npcvoice.speech.options import SpeechOptions
from npcvoice.speech.stream import UtteranceAudio, UtteranceDetector
from npcvoice.speech.vad import Endpointing
from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
from npcvoice.voice.options import VoiceOptions
from tests.support.realspeech import RATE, clips
from tests.support.wer import words


def finals(audio: np.ndarray) -> Iterator[np.ndarray]:
    """The finals' audio the speech service would transcribe, the audio streamed as it is sent."""
    detector = UtteranceDetector(Endpointing(), 30.0, None)
    events = []
    padded = np.concatenate([audio, np.zeros(RATE, np.float32)])
    for start in range(0, len(padded), RATE // 10):
        events += detector.feed(padded[start : start + RATE // 10])
    events += detector.finish()
    yield from (e.audio for e in events if isinstance(e, UtteranceAudio) and e.final)


def row(name: str, audios: list[np.ndarray], engine: SpeechEngine, cuts: list[str]) -> list[object]:
    """One table row; each final cut short or doubted is added to ``cuts`` (fit | full)."""
    request = RecognitionRequest(language="en")
    cut = doubted = cut_doubted = 0
    scores = []
    for audio in audios:
        fit, log_prob = engine._transcribe_fit(audio, request, engine.options.beam_size)
        full = engine.transcribe(audio, request, "full")
        scores.append(log_prob)
        doubt = log_prob < FIT_MIN_LOG_PROB or repeated_tail(fit.text) is not None
        said, heard = words(fit.text), words(full.text)
        short = len(heard) - len(said) >= 2 and heard[: len(said)] == said  # the line ends early
        cut, doubted, cut_doubted = cut + short, doubted + doubt, cut_doubted + (short and doubt)
        if short or doubt:
            cuts.append(f"{fit.text!r} ({log_prob:.2f}{', doubted' if doubt else ''}) | full: {full.text!r}")
    lowest, median = f"{min(scores):.2f}", f"{statistics.median(scores):.2f}"
    return [name, len(audios), cut, doubted, cut_doubted, lowest, median]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syntheses", type=int, default=300)
    args = parser.parse_args()
    engine = SpeechEngine(SpeechOptions())
    voice = VoiceEngine(VoiceOptions())
    settings = voice.check(SynthesisSettings(sample_rate=RATE))
    real = [a for c in clips() for a in finals(c.audio)]
    said = [*LINES, "Do you have a letter for me?"]  # (the line the CLI test once heard cut short)
    lines = [said[n % len(said)] for n in range(args.syntheses)]
    piper = [a for line in lines for a in finals(voice.synthesize_piece(line, settings, 0, 0).audio)]
    print(machine())
    print(f"threshold: mean log-probability {FIT_MIN_LOG_PROB}")
    headers = ["finals of", "finals", "cut short by fit", "doubted: full window", "cut and doubted",
               "lowest log-prob", "median"]  # fmt: skip
    cuts: list[str] = []
    rows = [row("recordings of people", real, engine, cuts), row("piper's lines", piper, engine, cuts)]
    print(table(headers, rows))
    print("\ncut short or doubted (the fit window's words, their log-probability | the full window's):")
    print("\n".join(cuts) or "none")


if __name__ == "__main__":
    main()
