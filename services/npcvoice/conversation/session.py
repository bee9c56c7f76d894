"""One ``Converse`` stream: a player talking to one NPC.

The session reads the client's messages (typed lines, audio, playback positions, end of speech) and
writes events to one output queue. Audio goes to a speech stream; its final transcript starts a turn.
A turn is pipelined: the dialogue reply's sentences go to the voice service as soon as each is complete,
each audio chunk's phoneme timings go to the face service, and the audio is sent with the viseme frames
for exactly its samples. If the player speaks (or types) while the NPC is still replying, the turn is
cancelled at once and memory keeps only what the player heard, marked as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.api.npc.dialogue.v1 import dialogue_pb2
from npcvoice.api.npc.face.v1 import face_pb2
from npcvoice.api.npc.speech.v1 import speech_pb2
from npcvoice.api.npc.voice.v1 import voice_pb2
from npcvoice.audio import Encoding, check_sample_rate
from npcvoice.conversation.gateway import LATENCY, Gateway, new_facts, to_dialogue_turns
from npcvoice.conversation.memory import Memory, TurnRecord, check_id
from npcvoice.converters import encoding_from_proto, encoding_to_proto, input_format
from npcvoice.face.engine import FRAME_RATES
from npcvoice.personas import Persona
from npcvoice.runtime.errors import FailedPrecondition, InvalidArgument
from npcvoice.turns import Turn

log = logging.getLogger("npcvoice.conversation")

MAX_AUDIO_CHUNK_BYTES = 1 << 20
# How a reply's emotion and actions move the NPC's feelings: (affinity, trust) per event.
EMOTION_EFFECT = {
    "joy": (0.05, 0.02),
    "anger": (-0.08, -0.04),
    "disgust": (-0.06, -0.03),
    "fear": (-0.02, -0.05),
    "sadness": (0.01, 0.0),
}
ACTION_EFFECT = (0.0, 0.02)


@dataclass(frozen=True)
class SessionSettings:
    npc_id: str
    player_id: str
    player_name: str
    voice_reply: bool
    input_encoding: Encoding | None
    input_rate: int
    output_encoding: Encoding
    output_rate: int
    frame_rate: int  # 0: the persona's
    frame_set: face_pb2.FrameSet.ValueType
    viseme_events: bool
    interim_transcripts: bool


def settings_from_proto(config: conversation_pb2.ConverseConfig) -> SessionSettings:
    check_id(config.npc_id, "config.npc_id")
    check_id(config.player_id, "config.player_id")
    if len(config.player_name) > 80:
        raise InvalidArgument("config.player_name", "at most 80 characters")
    if config.HasField("input_audio"):
        input_encoding, input_rate = input_format(config.input_audio, "config.input_audio")
    else:
        input_encoding, input_rate = None, 0
    output_encoding = encoding_from_proto(config.output_audio.encoding, "config.output_audio.encoding")
    if config.output_audio.sample_rate_hz:
        check_sample_rate(config.output_audio.sample_rate_hz, "config.output_audio.sample_rate_hz")
    frame_rate = config.visemes.frame_rate
    if frame_rate and frame_rate not in FRAME_RATES:
        raise InvalidArgument(
            "config.visemes.frame_rate", f"must be 0 (the persona's) or one of {FRAME_RATES}"
        )
    return SessionSettings(
        npc_id=config.npc_id,
        player_id=config.player_id,
        player_name=config.player_name,
        voice_reply=config.reply_mode != conversation_pb2.REPLY_MODE_TEXT,
        input_encoding=input_encoding,
        input_rate=input_rate,
        output_encoding=output_encoding,
        output_rate=config.output_audio.sample_rate_hz,
        frame_rate=frame_rate,
        frame_set=config.visemes.frame_set or face_pb2.FRAME_SET_BOTH,
        viseme_events=config.visemes.include_events,
        interim_transcripts=config.interim_transcripts,
    )


def recent_window(turns: list[Turn], recent: int) -> list[Turn]:
    """The last ``recent`` to ``recent * 1.5`` lines, the window moving in steps of half its size.

    A window that slid by one turn every turn would change the start of the prompt every turn and the
    dialogue service would prefill the whole history again; moving it in steps keeps the prompt's prefix
    (and the model's cache) the same for several turns.
    """
    step = max(1, recent // 2)
    start = 0 if len(turns) <= recent else ((len(turns) - recent) // step) * step
    return turns[start:]


@dataclass
class SpokenSentence:
    start_sample: int
    num_samples: int
    text: str


def heard_text(sentences: list[SpokenSentence], heard_samples: int) -> str:
    """The words of the reply the player heard by ``heard_samples`` (a partly heard sentence by share)."""
    words: list[str] = []
    for sentence in sentences:
        parts = sentence.text.split()
        if heard_samples >= sentence.start_sample + sentence.num_samples:
            words += parts
        elif heard_samples > sentence.start_sample and sentence.num_samples:
            share = (heard_samples - sentence.start_sample) / sentence.num_samples
            words += parts[: int(len(parts) * share)]
    return " ".join(words)


@dataclass
class TurnState:
    index: int
    player_text: str
    origin: float  # end of the player's speech or the arrival of their typed line (perf_counter)
    transcript_s: float = 0.0
    reply_text: str = ""
    sentences: list[SpokenSentence] = field(default_factory=list)
    delivered_samples: int = 0
    emotions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    first_token_s: float = 0.0
    first_audio_s: float = 0.0
    interrupted: bool = False


class Session:
    def __init__(self, gateway: Gateway, settings: SessionSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.memory = Memory(settings.npc_id, settings.player_id)
        self._turn_index = 0
        self._turn: asyncio.Task[None] | None = None
        self._state: TurnState | None = None
        self._playback: dict[int, int] = {}
        self._speech: asyncio.Task[None] | None = None
        self._audio_in: asyncio.Queue[bytes | None] | None = None
        self._audio_times: list[tuple[float, float]] = []  # (stream seconds at chunk end, arrival)
        self._received_samples = 0
        self._end_of_speech_at: float | None = None
        self._memory_read = False  # whether self.memory ever came from Redis

    @property
    def persona(self) -> Persona:
        """Read on every turn: an edited persona file takes effect on the next turn."""
        return self.gateway.persona(self.settings.npc_id, "config.npc_id")

    async def start(self) -> conversation_pb2.SessionStarted:
        persona = self.persona
        memory = await self.gateway.load_memory(self.settings.npc_id, self.settings.player_id)
        if memory is not None:
            self.memory, self._memory_read = memory, True
        return conversation_pb2.SessionStarted(
            npc_id=persona.id,
            display_name=persona.display_name,
            greeting=persona.greeting,
            remembered_turns=len(self.memory.turns),
        )

    # --- the client's messages ---------------------------------------------------------------------------

    async def read(self, requests: AsyncIterator[conversation_pb2.ConverseRequest]) -> None:
        """Handle the client's messages until it closes its side; then finish the turn in progress."""
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "text":
                    await self._typed(request.text)
                elif kind == "audio":
                    await self._audio(request.audio)
                elif kind == "end_of_speech":
                    self._end_of_speech()
                elif kind == "playback":
                    self._playback[request.playback.turn_index] = request.playback.played_samples
            self._end_of_speech()
            if self._speech is not None:
                await self._speech
            if self._turn is not None and not self._turn.done():
                await self._turn  # (a turn that failed has already put its error on the queue)
            self.out.put_nowait(None)
        except Exception as error:
            self.out.put_nowait(error)

    async def _typed(self, text: str) -> None:
        if not text.strip():
            raise InvalidArgument("text", "must not be empty")
        limit = self.gateway.options.max_text_chars
        if len(text) > limit:
            raise InvalidArgument("text", f"at most {limit} characters, got {len(text)}")
        await self.interrupt()
        self._start_turn(text.strip(), time.perf_counter(), 0.0)

    async def _audio(self, chunk: bytes) -> None:
        if self.settings.input_encoding is None:
            raise FailedPrecondition(
                "audio: set config.input_audio (encoding and sample rate) before sending audio"
            )
        if len(chunk) > MAX_AUDIO_CHUNK_BYTES:
            raise InvalidArgument(
                "audio", f"at most {MAX_AUDIO_CHUNK_BYTES} bytes per message, got {len(chunk)}"
            )
        if self._audio_in is None:
            self._open_speech()
        assert self._audio_in is not None
        width = 2 if self.settings.input_encoding == "pcm16" else 4
        self._received_samples += len(chunk) // width
        self._audio_times.append((self._received_samples / self.settings.input_rate, time.perf_counter()))
        self._audio_in.put_nowait(chunk)

    def _end_of_speech(self) -> None:
        """The client says the player stopped (push to talk released): finalize what was said."""
        if self._audio_in is not None:
            self._end_of_speech_at = time.perf_counter()
            self._audio_in.put_nowait(None)
            self._audio_in = None

    # --- speech ------------------------------------------------------------------------------------------

    def _open_speech(self) -> None:
        persona = self.persona
        encoding = self.settings.input_encoding or "pcm16"
        config = speech_pb2.StreamingRecognitionConfig(
            recognition=speech_pb2.RecognitionConfig(
                audio_format=audio_pb2.AudioFormat(
                    encoding=encoding_to_proto(encoding), sample_rate_hz=self.settings.input_rate
                ),
                language=persona.speech.language,
                hotwords=list(persona.speech.hotwords),
            ),
            interim_results=self.settings.interim_transcripts,
        )
        audio_in: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._audio_in = audio_in
        self._received_samples = 0
        self._audio_times = []
        self._end_of_speech_at = None

        async def requests() -> AsyncIterator[speech_pb2.StreamingRecognizeRequest]:
            yield speech_pb2.StreamingRecognizeRequest(config=config)
            while (chunk := await audio_in.get()) is not None:
                yield speech_pb2.StreamingRecognizeRequest(audio=chunk)

        previous = self._speech
        self._speech = asyncio.create_task(self._listen(requests(), self._audio_times, previous))

    async def _listen(
        self,
        requests: AsyncIterator[speech_pb2.StreamingRecognizeRequest],
        times: list[tuple[float, float]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await previous  # the last utterance's final transcript comes first
        await self.gateway.downstream.connected("speech")
        with self.gateway.downstream.calling("speech"):
            async for response in self.gateway.downstream.speech.StreamingRecognize(requests):
                if response.HasField("activity"):
                    if response.activity.type == speech_pb2.SPEECH_ACTIVITY_TYPE_STARTED:
                        await self.interrupt()  # barge-in: the player talks over the NPC
                    continue
                transcript = response.transcript
                if not transcript.is_final:
                    self._emit(
                        transcript=conversation_pb2.PlayerTranscript(
                            turn_index=self._turn_index, text=transcript.text, is_final=False
                        )
                    )
                    continue
                if not transcript.text.strip():
                    continue
                now = time.perf_counter()
                origin = self._speech_end(times, transcript.end_seconds)
                await self.interrupt()
                self._start_turn(transcript.text.strip(), origin, now - origin)

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

    # --- turns -------------------------------------------------------------------------------------------

    def _emit(self, **event: Any) -> None:
        self.out.put_nowait(conversation_pb2.ConverseResponse(**event))

    def _start_turn(self, player_text: str, origin: float, transcript_s: float) -> None:
        state = TurnState(self._turn_index, player_text, origin, transcript_s)
        self._turn_index += 1
        if transcript_s:
            self._emit(
                transcript=conversation_pb2.PlayerTranscript(
                    turn_index=state.index, text=player_text, is_final=True
                )
            )
        self._state = state
        self._turn = asyncio.create_task(self._run_turn(state))
        self._turn.add_done_callback(self._turn_failed)

    def _turn_failed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.out.put_nowait(task.exception())

    async def interrupt_quietly(self) -> None:
        """The client went away: stop the reply and the speech stream without sending anything."""
        for task in (self._turn, self._speech):
            if task is not None and not task.done():
                task.cancel()

    async def interrupt(self) -> None:
        """Stop the reply in progress (barge-in); memory keeps what the player heard of it."""
        task, state = self._turn, self._state
        if task is None or state is None or task.done():
            return
        state.interrupted = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        heard_samples = self._playback.get(state.index, state.delivered_samples)
        heard = heard_text(state.sentences, heard_samples) if self.settings.voice_reply else state.reply_text
        self._emit(
            interruption=conversation_pb2.Interruption(
                turn_index=state.index, heard_text=heard, heard_samples=heard_samples
            )
        )
        await self._finish(state, heard)

    async def _run_turn(self, state: TurnState) -> None:
        persona = self.persona
        memory = await self.gateway.load_memory(self.settings.npc_id, self.settings.player_id)
        if memory is not None:
            self.memory, self._memory_read = memory, True
        recent = recent_window(self.memory.turns, persona.memory.recent_turns)
        request = dialogue_pb2.GenerateRequest(
            persona_id=persona.id,
            conversation_id=f"{persona.id}:{self.settings.player_id}",
            player_text=state.player_text,
            player_name=self.settings.player_name,
            first_clause=self.settings.voice_reply,  # speech starts on the first clause
            memory=dialogue_pb2.Memory(
                recent_turns=to_dialogue_turns(recent),
                summary=self.memory.summary,
                player_facts=self.memory.player_facts,
                relationship=dialogue_pb2.Relationship(
                    affinity=self.memory.affinity, trust=self.memory.trust
                ),
            ),
        )
        downstream = self.gateway.downstream
        sentences: asyncio.Queue[dialogue_pb2.Sentence | None] = asyncio.Queue()
        speaker = (
            asyncio.create_task(self._speak(state, persona, sentences)) if self.settings.voice_reply else None
        )
        try:
            asked = time.perf_counter()
            await downstream.connected("dialogue")
            with downstream.calling("dialogue"):
                call = downstream.dialogue.Generate(request, timeout=self.gateway.options.reply_timeout_s)
                async for response in call:
                    kind = response.WhichOneof("event")
                    if kind == "delta":
                        state.reply_text += response.delta.text
                        if not self.settings.voice_reply and not state.first_audio_s:
                            state.first_audio_s = time.perf_counter() - state.origin  # first reply text
                        self._emit(
                            reply_text=conversation_pb2.ReplyText(
                                turn_index=state.index, delta=response.delta.text
                            )
                        )
                    elif kind == "sentence":
                        sentences.put_nowait(response.sentence)
                    elif kind == "emotion":
                        state.emotions.append(response.emotion.emotion)
                        self._emit(
                            emotion=conversation_pb2.Emotion(
                                turn_index=state.index,
                                emotion=response.emotion.emotion,
                                intensity=response.emotion.intensity,
                            )
                        )
                    elif kind == "action":
                        state.actions.append(response.action.name)
                        self._emit(
                            action=conversation_pb2.Action(
                                turn_index=state.index,
                                name=response.action.name,
                                parameters=dict(response.action.parameters),
                            )
                        )
                    elif kind == "summary":
                        state.first_token_s = (
                            asked - state.origin + response.summary.time_to_first_token_seconds
                        )
            sentences.put_nowait(None)
            if speaker is not None:
                await speaker
        finally:
            if speaker is not None and not speaker.done():
                speaker.cancel()
        await self._finish(state, state.reply_text)

    async def _speak(
        self, state: TurnState, persona: Persona, sentences: asyncio.Queue[dialogue_pb2.Sentence | None]
    ) -> None:
        """Synthesize each sentence as it comes, animate it, send audio and visemes together."""
        downstream, options = self.gateway.downstream, self.gateway.options
        voice = persona.voice
        config = voice_pb2.SynthesisConfig(
            voice=voice_pb2.VoiceSettings(
                voice_id=voice.voice_id,
                speaker_id=voice.speaker,
                speed=voice.speed,
                variation=voice.variation,
                volume=voice.volume,
            ),
            output_format=audio_pb2.AudioFormat(
                encoding=encoding_to_proto(self.settings.output_encoding),
                sample_rate_hz=self.settings.output_rate,
            ),
        )
        frame_rate = self.settings.frame_rate or persona.face.frame_rate
        while (sentence := await sentences.get()) is not None:
            await downstream.connected("voice")
            with downstream.calling("voice"):
                chunks = [
                    r.chunk
                    async for r in downstream.voice.Synthesize(
                        voice_pb2.SynthesizeRequest(text=sentence.text, config=config),
                        timeout=options.synthesis_timeout_s,
                    )
                ]
            for chunk in chunks:
                rate = chunk.format.sample_rate_hz
                await downstream.connected("face")
                with downstream.calling("face"):
                    animation = await downstream.face.Animate(
                        face_pb2.AnimateRequest(
                            phonemes=face_pb2.PhonemeTrack(sample_rate_hz=rate, phonemes=chunk.phonemes),
                            frame_rate=frame_rate,
                            frame_set=self.settings.frame_set,
                            emotion=state.emotions[-1] if state.emotions else "",
                        ),
                        timeout=options.animation_timeout_s,
                    )
                start = state.delivered_samples
                offset = start / rate
                for frame in animation.frames:
                    frame.time_seconds += offset  # frames on the turn's timeline, like start_sample
                events = list(animation.events) if self.settings.viseme_events else []
                for event in events:
                    event.start_seconds += offset
                if not state.first_audio_s:
                    state.first_audio_s = time.perf_counter() - state.origin
                self._emit(
                    audio=conversation_pb2.ReplyAudio(
                        turn_index=state.index,
                        sentence_index=sentence.index,
                        audio=chunk.audio,
                        format=chunk.format,
                        start_sample=start,
                        num_samples=chunk.num_samples,
                        text=chunk.text,
                        visemes=animation.frames,
                        viseme_events=events,
                    )
                )
                state.sentences.append(SpokenSentence(start, chunk.num_samples, chunk.text))
                state.delivered_samples += chunk.num_samples

    async def _finish(self, state: TurnState, npc_text: str) -> None:
        """Store the turn (or queue it), then acknowledge it with its latency breakdown."""
        persona = self.persona
        lines = [Turn("player", state.player_text)]
        if npc_text.strip():
            lines.append(Turn("npc", npc_text.strip(), interrupted=state.interrupted))
        affinity, trust = self.memory.affinity, self.memory.trust
        for emotion in state.emotions:
            delta = EMOTION_EFFECT.get(emotion, (0.0, 0.0))
            affinity, trust = affinity + delta[0], trust + delta[1]
        for _ in state.actions:
            affinity, trust = affinity + ACTION_EFFECT[0], trust + ACTION_EFFECT[1]
        record = TurnRecord(
            npc_id=self.settings.npc_id,
            player_id=self.settings.player_id,
            turns=lines,
            new_facts=new_facts(self.memory, state.player_text),
            affinity=max(-1.0, min(1.0, affinity)),
            trust=max(-1.0, min(1.0, trust)),
            relationship_known=self._memory_read,
        )
        # The session's own copy goes on while Redis is away.
        self.memory.turns += lines
        self.memory.player_facts += record.new_facts
        self.memory.affinity, self.memory.trust = record.affinity, record.trust
        await self.gateway.record(record, persona)
        total = time.perf_counter() - state.origin
        latency = conversation_pb2.LatencyBreakdown(
            transcript_seconds=state.transcript_s,
            first_token_seconds=state.first_token_s,
            first_audio_seconds=state.first_audio_s,
            total_seconds=total,
        )
        for stage, value in (
            ("transcript", state.transcript_s),
            ("first_token", state.first_token_s),
            ("first_audio", state.first_audio_s),
            ("total", total),
        ):
            if value:
                LATENCY.labels(stage).observe(value)
        self._emit(
            turn_end=conversation_pb2.TurnEnd(
                turn_index=state.index,
                player_text=state.player_text,
                reply_text=npc_text.strip(),
                interrupted=state.interrupted,
                latency=latency,
            )
        )
