"""The Pipecat side of bench/peer_pipecat.py. Runs in the peer venv (.venv-peer: pipecat-ai and its own
dependencies), never in .venv, and imports nothing of npcvoice: pipecat-ai pins protobuf<7, our grpc
stack needs 7.

    .venv-peer/bin/python bench/pipecat_worker.py CONFIG_JSON

One JSON job per line on stdin, one JSON answer per line on stdout (Pipecat's logs go to stderr):
  {"op": "open", "count": N}         build N conversations (one pipeline each, its own Whisper and piper,
                                     as Pipecat builds a bot per session), start them; answers when ready
  {"op": "run", "turns": [[...]]}    conversation i plays turns[i] in order, all conversations at once
                                     (a turn with "wait_s" waits for the reply before it to play out, and
                                     that long more: a paced player);
                                     a turn is {"text": LINE} or {"wav": PATH, "speech_end_s": S}
  {"op": "close"}                    end the conversations

The pipeline: frames in -> Silero VAD -> Whisper (faster-whisper) -> user context -> OpenAI-compatible
LLM (llama.cpp's server) -> piper -> the listener (where a player would hear the audio) -> assistant
context. Audio goes in as 100 ms InputAudioRawFrames paced in real time: no transport, no browser.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import wave
from pathlib import Path
from typing import Any

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMMessagesAppendFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

RATE = 16000
CHUNK_S = 0.1
TAG = re.compile(r"\[[^\]]*\]")  # our prompt asks for [emotion: X] / [action: ...]; ours never voices them


async def strip_tags(text: str, _type: object) -> str:
    return " ".join(TAG.sub(" ", text).split())


class Listener(FrameProcessor):
    """After the TTS: when a reply's audio arrives, and when the turn is over (the TTS queues the LLM's
    LLMFullResponseEndFrame behind the turn's audio, so it comes here after the last of it)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.expect()

    def expect(self, not_before: float = 0.0) -> None:
        """A new turn: its reply is what comes after ``not_before`` (a reply to the first words of a line
        that goes on after a pause comes before its end and is interrupted; it is not this turn's)."""
        self.not_before = not_before
        self.first_audio: float | None = None
        self.last_audio = 0.0
        self.audio_bytes = 0
        self.words: list[str] = []
        self.done = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = time.perf_counter()
        if now < self.not_before:
            pass
        elif isinstance(frame, StartFrame):
            self.started.set()
        elif isinstance(frame, TTSAudioRawFrame):
            self.first_audio = self.first_audio or now
            self.last_audio = now
            self.audio_bytes += len(frame.audio)
        elif isinstance(frame, TTSTextFrame):
            self.words.append(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.done.set()
        await self.push_frame(frame, direction)


class Conversation:
    def __init__(self, config: dict[str, Any]) -> None:
        system, *exchange = config["messages"]  # our prompt's fixed start: the persona, one example exchange
        self.context = LLMContext(messages=exchange)
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)  # the VAD's silence alone ends it
        pair = LLMContextAggregatorPair(
            self.context,
            # empty_user_turn=None: its default answers a turn heard but not transcribed with a message of
            # role "developer", which llama-cpp-python's server rejects (and our gateway says nothing then)
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=UserTurnStrategies(stop=[stop]), empty_user_turn=None
            ),
        )
        vad = SileroVADAnalyzer(params=VADParams(stop_secs=config["min_silence_s"]))
        stt = WhisperSTTService(
            settings=WhisperSTTService.Settings(model=config["whisper"], hotwords=config["hotwords"]),
            device="cpu",
            compute_type="int8",
        )
        llm = OpenAILLMService(
            api_key="unused",
            base_url=config["llm_url"],
            settings=OpenAILLMService.Settings(
                model="smollm2", system_instruction=system["content"], **config["sampling"]
            ),
        )
        tts = PiperTTSService(
            settings=PiperTTSService.Settings(voice=config["voice"]),
            download_dir=Path(config["voice_dir"]),
            text_transforms=[("*", strip_tags)],
        )
        self.listener = Listener()
        pipeline = Pipeline(
            [VADProcessor(vad_analyzer=vad), stt, pair.user(), llm, tts, self.listener, pair.assistant()]
        )
        self.task = PipelineTask(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=config["voice_rate"]),
            idle_timeout_secs=None,
        )
        self.runner = asyncio.create_task(PipelineRunner(handle_sigint=False).run(self.task))

    async def text_turn(self, line: str) -> dict[str, Any] | None:
        self.listener.expect()
        started = time.perf_counter()
        await self.task.queue_frame(
            LLMMessagesAppendFrame(messages=[{"role": "user", "content": line}], run_llm=True)
        )
        if not await self.finished():
            return None
        return self.result(started, "")

    async def finished(self) -> bool:
        """Whether the turn ended in time (as our gateway's reply deadline: 60 s)."""
        try:
            await asyncio.wait_for(self.listener.done.wait(), 60)
        except TimeoutError:
            print("pipecat: a turn got no reply in 60 s", file=sys.stderr)
            return False
        return True

    async def voice_turn(self, path: str, speech_end_s: float) -> dict[str, Any] | None:
        """Stream the recording in real time, then silence until the turn is over; from the end of speech."""
        with wave.open(path, "rb") as source:
            assert source.getframerate() == RATE and source.getnchannels() == 1
            speech = source.readframes(source.getnframes())
        step = int(RATE * CHUNK_S) * 2
        started = time.perf_counter()
        self.listener.expect(not_before=started + speech_end_s)
        sent = 0
        while not self.listener.done.is_set() and sent < len(speech) + RATE * 2 * 60:
            chunk = speech[sent : sent + step] if sent < len(speech) else bytes(step)
            await asyncio.sleep(max(0.0, started + sent / 2 / RATE - time.perf_counter()))
            await self.task.queue_frame(InputAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1))
            sent += len(chunk)
        if not self.listener.done.is_set():
            print("pipecat: a spoken turn got no reply in 60 s", file=sys.stderr)
            return None
        # the context's messages are plain dicts at run time (typed as a union of OpenAI's message types)
        messages: list[dict[str, Any]] = list(self.context.get_messages())  # type: ignore[arg-type]
        user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        return self.result(started + speech_end_s, str(user.get("content", "")))

    def result(self, since: float, transcript: str) -> dict[str, Any] | None:
        heard = self.listener
        if heard.first_audio is None:
            print(f"pipecat: a turn ended with no audio ({transcript!r})", file=sys.stderr)
            return None
        return {
            "first_audio_s": heard.first_audio - since,
            "total_s": heard.last_audio - since,
            "audio_s": heard.audio_bytes / 2 / CONFIG["voice_rate"],
            "text": " ".join("".join(heard.words).split()),
            "transcript": transcript,
        }

    async def play(self, turns: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Each turn in order. A turn with ``wait_s`` is paced as a player who listens: it comes that long
        after the reply before it has played out (its audio's length from its first audio)."""
        played: list[dict[str, Any] | None] = []
        heard_until = time.perf_counter()
        for t in turns:
            if "wait_s" in t:
                await asyncio.sleep(max(0.0, heard_until - time.perf_counter()) + t["wait_s"])
            played.append(
                await (
                    self.voice_turn(t["wav"], t["speech_end_s"]) if "wav" in t else self.text_turn(t["text"])
                )
            )
            heard = self.listener
            heard_until = (heard.first_audio or time.perf_counter()) + heard.audio_bytes / 2 / CONFIG[
                "voice_rate"
            ]
        return played

    async def close(self) -> None:
        await self.task.cancel()
        await self.runner


CONFIG: dict[str, Any] = {}


async def serve() -> None:
    conversations: list[Conversation] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        job = json.loads(line)
        answer: Any = None
        if job["op"] == "open":
            conversations = [Conversation(CONFIG) for _ in range(job["count"])]
            await asyncio.gather(*(c.listener.started.wait() for c in conversations))
        elif job["op"] == "run":
            answer = await asyncio.gather(
                *(c.play(t) for c, t in zip(conversations, job["turns"], strict=True))
            )
        elif job["op"] == "close":
            await asyncio.gather(*(c.close() for c in conversations))
            conversations = []
        print(json.dumps({"op": job["op"], "answer": answer}), flush=True)


if __name__ == "__main__":
    CONFIG.update(json.loads(sys.argv[1]))
    asyncio.run(serve())
