"""Whether the player has finished their turn, judged from the sound of its end: Pipecat's Smart Turn v3.

A pause is not the end of a turn: people stop for a breath at a comma ("And so, my fellow Americans,
...") and go on. Smart Turn is a small classifier (Whisper-tiny's encoder and a linear head, BSD-2) that
hears the last seconds of the utterance, its intonation and its words, and says how likely the turn is
finished. The weights ship inside the ``pipecat-ai`` wheel on PyPI (installed without its dependencies,
like the other bundled models); they are loaded from disk, never fetched.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from npcvoice.runtime.errors import NotFound

log = logging.getLogger("npcvoice.speech")

SAMPLE_RATE = 16000
WINDOW_S = 8  # the model hears the last 8 s, zero-padded in front when shorter
BUNDLED_FILE = ("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")


class TurnEndModel(Protocol):
    def probability(self, audio: np.ndarray) -> float:
        """How likely the turn is finished, from its 16 kHz audio so far."""
        ...


def bundled_model_path() -> Path | None:
    """The model inside the installed ``pipecat-ai`` package, found without importing pipecat (whose own
    dependencies are not installed)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*BUNDLED_FILE)
    return path if path.is_file() else None


@lru_cache(maxsize=4)
def _session(path: str, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _features() -> Any:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, chunk_length=WINDOW_S)


class SmartTurn:
    """Smart Turn v3 over onnxruntime, fed as Pipecat feeds it: the last 8 s at 16 kHz, zero-padded in
    front, normalised to zero mean and unit variance, Whisper's 80-bin log-mel features (800 frames)."""

    def __init__(self, path: str, threads: int = 1) -> None:
        if not Path(path).is_file():
            raise NotFound("turn-end model", path)
        self._session = _session(path, threads)
        self._input = self._session.get_inputs()[0].name

    def probability(self, audio: np.ndarray) -> float:
        window = WINDOW_S * SAMPLE_RATE
        clip = np.zeros(window, np.float32)
        tail = audio[-window:]
        clip[window - len(tail) :] = tail
        clip = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)
        features = _features()(clip, padding=0)[:, : window // 160]
        output = self._session.run(None, {self._input: features[None].astype(np.float32)})
        return float(np.asarray(output[0]).reshape(-1)[0])


def load(path: str, threads: int = 1) -> SmartTurn | None:
    """The configured model, or the bundled one for an empty ``path``; None (silence alone decides) when
    nothing is configured and ``pipecat-ai`` is not installed."""
    if path:
        return SmartTurn(path, threads)
    bundled = bundled_model_path()
    if bundled is None:
        log.warning("no turn-end model (install pipecat-ai --no-deps): the end of a turn is silence alone")
        return None
    return SmartTurn(str(bundled), threads)
