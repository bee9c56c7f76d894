"""Streaming voice-activity detection with the Silero VAD v6 model that ships inside faster-whisper.

faster-whisper runs Silero over a whole file; a conversation needs it window by window as audio arrives,
with the model's recurrent state carried across calls, and with conversation-speed endpointing (a few
hundred milliseconds of silence ends an utterance, not faster-whisper's two seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 512  # 32 ms at 16 kHz, what the model was trained on
CONTEXT = 64


@lru_cache(maxsize=1)
def _session() -> Any:
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Endpointing:
    speech_threshold: float = 0.5
    min_silence_ms: int = 300
    min_speech_ms: int = 150
    speech_pad_ms: int = 150

    def windows(self, ms: int) -> int:
        return max(1, round(ms * SAMPLE_RATE / 1000 / WINDOW))


class SpeechProbability(Protocol):
    def probabilities(self, windows: np.ndarray) -> np.ndarray: ...


class SileroStream:
    """Speech probability for each 32 ms window of a 16 kHz stream, keeping the model's state."""

    def __init__(self) -> None:
        self._session = _session()
        self._state_h = np.zeros((1, 1, 128), np.float32)
        self._state_c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """``windows`` is (n, 512) float32; returns n probabilities."""
        if len(windows) == 0:
            return np.zeros(0, np.float32)
        previous = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]], axis=0)
        batch = np.ascontiguousarray(np.concatenate([previous, windows], axis=1), np.float32)
        output, self._state_h, self._state_c = self._session.run(
            None, {"input": batch, "h": self._state_h, "c": self._state_c}
        )
        self._context = windows[-1, -CONTEXT:].copy()
        return np.asarray(output, np.float32).reshape(-1)
