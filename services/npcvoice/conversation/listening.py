"""The player's voice: audio goes to the speech service as it arrives, one stream at a time, and what the
speech service hears comes back as calls to the session: speech started (barge-in), interim transcripts,
and each final transcript with the moment the player stopped talking, in this process's clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from npcvoice.api.npc.speech.v1 import speech_pb2
from npcvoice.conversation import convert
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.options import SessionConfig


class Listener:
    def __init__(
        self,
        gateway: Gateway,
        config: SessionConfig,
        *,
        on_speech: Callable[[], Awaitable[None]],
        on_interim: Callable[[str, str, bool], None],
        on_final: Callable[[str, str, float, float], Awaitable[None]],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """``on_interim(text, line_text, settled)``: the words so far; ``settled``, the final's words if the
        silence that has begun goes on to end the utterance (StreamingTranscript.settled).
        ``on_final(text, line_text, speech_end, transcript_s)``: ``speech_end`` is when the player
        stopped talking (perf_counter), ``transcript_s`` how long the final transcript took from then;
        ``text`` may be empty (the utterance was noise); ``line_text``, when the player went on after a
        short pause, is the whole line heard as one (the speech service's StreamingTranscript.line_text)."""
        self._gateway = gateway
        self._config = config
        self._on_speech, self._on_interim, self._on_final = on_speech, on_interim, on_final
        self._on_error = on_error  # a failed speech stream ends the conversation at once, not at its end
        self._task: asyncio.Task[None] | None = None
        self._audio_in: asyncio.Queue[bytes | None] | None = None
        self._audio_times: list[tuple[float, float]] = []  # (stream seconds at chunk end, arrival)
        self._received_samples = 0
        self._end_of_speech_at: float | None = None

    def audio(self, chunk: bytes) -> None:
        """Some of the player's audio (already checked), in the encoding and rate of the config."""
        if self._audio_in is None:
            self._open()
        assert self._audio_in is not None
        width = 2 if self._config.input_encoding == "pcm16" else 4
        self._received_samples += len(chunk) // width
        self._audio_times.append((self._received_samples / self._config.input_rate, time.perf_counter()))
        self._audio_in.put_nowait(chunk)

    def end_of_speech(self) -> None:
        """The client says the player stopped (push to talk released): finalize what was said."""
        if self._audio_in is not None:
            self._end_of_speech_at = time.perf_counter()
            self._audio_in.put_nowait(None)
            self._audio_in = None

    async def finished(self) -> None:
        """Wait for the last final transcript (after ``end_of_speech``)."""
        if self._task is not None:
            await self._task

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _open(self) -> None:
        persona = self._gateway.persona(self._config.npc_id, "config.npc_id")
        options = self._gateway.options
        interims = self._config.interim_transcripts or options.prefill_while_speaking or options.draft_replies
        config = convert.speech_config(persona, self._config, interims)
        audio_in: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._audio_in = audio_in
        self._received_samples = 0
        self._audio_times = []
        self._end_of_speech_at = None

        async def audio() -> AsyncIterator[bytes]:
            while (chunk := await audio_in.get()) is not None:
                yield chunk

        previous = self._task
        self._task = asyncio.create_task(self._listen(config, audio(), self._audio_times, previous))
        self._task.add_done_callback(self._failed)

    def _failed(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._on_error(error)

    async def _listen(
        self,
        config: speech_pb2.StreamingRecognitionConfig,
        audio: AsyncIterator[bytes],
        times: list[tuple[float, float]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await previous  # the last utterance's final transcript comes first
        speaking = -1  # the utterance the player last began
        async for response in self._gateway.downstream.recognize(config, audio):
            if response.HasField("activity"):
                if response.activity.type == speech_pb2.SPEECH_ACTIVITY_TYPE_STARTED:
                    speaking = response.activity.utterance_index
                    await self._on_speech()  # barge-in: the player talks over the NPC
                continue
            transcript = response.transcript
            if not transcript.is_final:
                # words settled before the player went on (a pause) are not the line's end after all
                settled = transcript.settled and transcript.utterance_index >= speaking
                self._on_interim(transcript.text, transcript.line_text.strip(), settled)
                continue
            now = time.perf_counter()
            speech_end = self._speech_end(times, transcript.end_seconds)
            text, line = transcript.text.strip(), transcript.line_text.strip()
            await self._on_final(text, line, speech_end, now - speech_end)

    def _speech_end(self, times: list[tuple[float, float]], end_seconds: float) -> float:
        """When the player stopped talking, in this process's clock: the arrival of the audio at
        ``end_seconds`` (clients stream in real time), or the explicit end of speech if that came first."""
        for chunk_end, arrived in times:
            if chunk_end >= end_seconds:
                estimate = arrived - (chunk_end - end_seconds)
                break
        else:
            estimate = times[-1][1] if times else time.perf_counter()
        if self._end_of_speech_at is not None:
            estimate = min(estimate, self._end_of_speech_at)
        return estimate
