"""Options of the speech service (the ``engine:`` section of its configuration)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SpeechOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "", description="faster-whisper model folder or size; empty means the bundled tiny.en (offline)."
    )
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    compute_type: str = Field("int8", description="CTranslate2 compute type: int8, float16, float32...")
    cpu_threads: int = Field(2, ge=1)
    workers: int = Field(1, ge=1, description="Transcriptions run at once, across all requests.")
    max_waiting: int = Field(
        8, ge=0, description="Transcriptions that may wait; more get RESOURCE_EXHAUSTED."
    )
    beam_size: int = Field(
        5, ge=1, le=10, description="Finals and Recognize (interims use 1): 5 is what Whisper's papers use."
    )
    final_window: Literal["full", "fit"] = Field(
        "fit",
        description="Finals and Recognize: 'fit' encodes the utterance in a window of at least 12 s "
        "(two to four times faster on a 2-core CPU, same word error rate on real recordings in "
        "bench/speech.py); 'full' pads to Whisper's 30 s window as faster-whisper does.",
    )
    interim_window: Literal["full", "fit"] = Field(
        "fit", description="Interim transcripts: 'fit' by default."
    )
    # streaming defaults (a client's Endpointing overrides them per stream)
    min_silence_ms: int = Field(300, ge=50, le=5000, description="Silence that ends an utterance.")
    speech_threshold: float = Field(0.5, gt=0, lt=1, description="Voice-activity probability that is speech.")
    min_speech_ms: int = Field(150, ge=32, le=2000, description="Shorter sounds are not speech.")
    speech_pad_ms: int = Field(150, ge=0, le=1000, description="Audio kept around detected speech.")
    interim_interval_ms: int = Field(600, ge=100, le=10000, description="Cadence of interim transcripts.")
    # end of turn: a pause that sounds unfinished waits longer than min_silence_ms
    end_of_turn: Literal["model", "silence"] = Field(
        "silence",
        description="'silence': min_silence_ms ends an utterance. 'model': an end-of-turn model (Smart "
        "Turn v3, from the pipecat-ai package) hears each pause; one that sounds unfinished ends only "
        "after max_silence_ms (off by default: see docs/benchmarks.md, speech).",
    )
    turn_model: str = Field(
        "", description="Smart Turn ONNX file; empty means the one inside the pipecat-ai package."
    )
    turn_threshold: float = Field(0.5, gt=0, lt=1, description="Probability of 'finished' that ends a turn.")
    max_silence_ms: int = Field(
        2000, ge=100, le=10000, description="Silence that ends a turn that sounded unfinished."
    )
    continue_within_ms: int = Field(
        2000,
        ge=0,
        le=10000,
        description="Speech that starts this soon after an utterance's end continues it: its final "
        "carries the whole line transcribed as one (line_text), so a pause at a comma does not split "
        "what the player meant as one line. 0: every pause long enough ends a separate utterance.",
    )
    # limits
    max_utterance_s: float = Field(30.0, gt=1, description="An utterance this long is finalised and cut.")
    max_stream_s: float = Field(900.0, gt=1, description="Audio one stream may carry.")
    max_recognize_s: float = Field(60.0, gt=1, description="Audio one Recognize call may carry.")
    max_chunk_bytes: int = Field(256 * 1024, ge=1024, description="Largest audio message in a stream.")
    max_hotwords: int = Field(64, ge=0)
