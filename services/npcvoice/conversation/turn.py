"""One turn of the NPC: the player's line goes to dialogue, each sentence of the reply to voice as soon as
it is complete, each audio chunk's phoneme timings to face, and the audio goes out with the viseme frames
for exactly its samples. The turn ends by storing what was said and sending ``TurnEnd`` with its latency
breakdown. A turn is a task: barge-in cancels it, and the session then finishes it with what was heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.api.npc.dialogue.v1 import dialogue_pb2
from npcvoice.conversation import convert
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.metrics import LATENCY
from npcvoice.conversation.options import SessionConfig
from npcvoice.conversation.recording import SessionMemory
from npcvoice.personas import Persona
from npcvoice.turns import Turn

Emit = Callable[[conversation_pb2.ConverseResponse], None]
# Called with a turn and what of its reply was said, once it is stored and before its TurnEnd goes out (a
# scene stores it in the memory of the NPCs who overheard it).
Stored = Callable[["TurnState", str], Awaitable[None]]
log = logging.getLogger("npcvoice.conversation")


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
    answered_by: str = ""  # the dialogue model that wrote the reply (see TurnEnd)
    escalation: tuple[str, ...] = ()
    first_clause_s: float = 0.0
    first_audio_s: float = 0.0
    interrupted: bool = False
    cue: str = ""  # when the NPC speaks first (player_text empty): what prompts it
    npc_id: str = ""  # the NPC answering (in a scene, one of several)
    to_npc_id: str = ""  # in a scene, the NPC this line is said to (an exchange); "": the player
    first_audio_at: float = 0.0  # when the first audio went to the client (perf_counter)
    audio_s: float = 0.0  # the reply's audio so far, in seconds
    # A draft (a reply begun on the player's settled words, before their final transcript): what it would
    # send is held here, and it is stored only once ``release`` is set; see ``Session``.
    held: list[conversation_pb2.ConverseResponse] | None = None
    release: asyncio.Future[None] | None = None
    queued: bool = False  # held instead until the NPC speaking before it has been heard (a scene)
    finishing: bool = False  # said in full and being stored: past interrupting (but see Session._cut_short)
    stored: Turn | None = None  # the NPC's line as memory stored it
    overheard: dict[str, Turn] = field(default_factory=dict)  # that line as each NPC in earshot stored it

    @property
    def drafted(self) -> bool:
        return self.release is not None and not self.queued

    def let_go(self, emit: Callable[[conversation_pb2.ConverseResponse], None], now: float) -> None:
        """Send what was held, and let the turn go on unheld (and be stored)."""
        held, self.held = self.held or [], None
        if self.first_audio_at:
            self.first_audio_at = max(self.first_audio_at, now)  # the client hears it from now
        for message in held:
            emit(message)
        assert self.release is not None
        self.release.set_result(None)

    def rebase(self, origin: float, now: float) -> None:
        """A released draft: its stages so far are timed as the player got them (``now``, from the
        ``origin`` the final transcript gave), not as the draft reached them."""
        for stage in ("first_token_s", "first_clause_s", "first_audio_s"):
            if value := getattr(self, stage):
                setattr(self, stage, max(self.origin + value, now) - origin)
        self.origin = origin


def _prefill_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info(
            "prefilling while the player speaks failed (the reply prefills it all): %s", task.exception()
        )


class TurnPipeline:
    """Runs a conversation's turns: dialogue → voice → face, then memory and ``TurnEnd``."""

    def __init__(
        self,
        gateway: Gateway,
        config: SessionConfig,
        memory: SessionMemory,
        emit: Emit,
        world: Mapping[str, str],
        stored: Stored | None = None,
    ) -> None:
        self._gateway = gateway
        self._config = config
        self._memory = memory
        self._emit = emit
        self._stored = stored
        self._world = world  # the session's world context, as the game keeps updating it
        self._prefilling: asyncio.Task[None] | None = None  # the prefill while the player speaks

    async def run(self, state: TurnState) -> None:
        self._gateway.replay.check_room()  # back-pressure while Redis is away too long
        self.stop_prefill()  # dialogue takes over what it prefilled so far
        persona, request = await self._request(state.player_text, state.cue)
        sentences: asyncio.Queue[dialogue_pb2.Sentence | None] = asyncio.Queue()
        speaker = (
            asyncio.create_task(self._speak(state, persona, sentences)) if self._config.voice_reply else None
        )
        try:
            await self._think(state, request, sentences)
            sentences.put_nowait(None)
            if speaker is not None:
                await speaker
        finally:
            if speaker is not None and not speaker.done():
                speaker.cancel()
        if state.release is not None:
            await state.release  # a draft: nothing is stored before the final says the same
        await self.finish(state, state.reply_text)

    def _send(self, state: TurnState, message: conversation_pb2.ConverseResponse) -> None:
        convert.spoken_by(message, self._config.npc_id)
        if state.held is not None:
            state.held.append(message)
        else:
            self._emit(message)

    async def _request(self, player_text: str, cue: str = "") -> tuple[Persona, dialogue_pb2.GenerateRequest]:
        """The dialogue's request for ``player_text`` now, with this turn's snapshot of the persona."""
        persona = self._gateway.persona(self._config.npc_id, "config.npc_id")
        memory = await self._memory.refresh()
        recent = recent_window(memory.turns, persona.memory.recent_turns)
        request = convert.generate_request(
            persona, self._config, player_text, memory, recent, self._world, cue
        )
        return persona, request

    def prefill(self, line_so_far: str) -> None:
        """The player is still speaking: have dialogue prefill the prompt their line will have, with the
        words heard so far, so that the reply to the final line prefills only where it differs. At most
        one at a time: a newer line replaces the one in flight; the turn's reply stops it. It generates
        nothing and writes no memory; a failure only loses the head start."""
        if self._gateway.options.prefill_while_speaking:
            self._prefill(line_so_far)

    def prefill_next(self) -> None:
        """The turn is stored and the player has not spoken yet: prefill the prompt the next line will have,
        up to that line. Most turns this is the last few tokens; when the window of recent turns has moved
        (every few turns), it is the whole history, prefilled while the NPC's reply still plays."""
        if self._gateway.options.prefill_after_turn:
            self._prefill("")

    def _prefill(self, line_so_far: str) -> None:
        self.stop_prefill()

        async def ask() -> None:
            _, request = await self._request(line_so_far)
            request.prefill_only = True
            async for _ in self._gateway.downstream.generate(request):
                pass

        self._prefilling = asyncio.create_task(ask())
        self._prefilling.add_done_callback(_prefill_failed)

    def stop_prefill(self) -> None:
        if self._prefilling is not None and not self._prefilling.done():
            self._prefilling.cancel()
        self._prefilling = None

    async def _think(
        self,
        state: TurnState,
        request: dialogue_pb2.GenerateRequest,
        sentences: asyncio.Queue[dialogue_pb2.Sentence | None],
    ) -> None:
        """Stream the reply: text to the client, sentences to the speaker, emotions and actions in order."""
        asked = time.perf_counter()
        async for response in self._gateway.downstream.generate(request):
            kind = response.WhichOneof("event")
            if kind == "delta":
                state.reply_text += response.delta.text
                if not self._config.voice_reply and not state.first_audio_s:
                    state.first_audio_s = time.perf_counter() - state.origin  # first reply text
                self._send(state, convert.reply_text(state.index, response.delta.text))
            elif kind == "sentence":
                if not state.first_clause_s:
                    state.first_clause_s = time.perf_counter() - state.origin
                sentences.put_nowait(response.sentence)
            elif kind == "emotion":
                state.emotions.append(response.emotion.emotion)
                self._send(state, convert.emotion(state.index, response.emotion))
            elif kind == "action":
                state.actions.append(response.action.name)
                self._send(state, convert.action(state.index, response.action))
            elif kind == "summary":
                state.first_token_s = asked - state.origin + response.summary.time_to_first_token_seconds
                state.answered_by = response.summary.answered_by
                state.escalation = tuple(response.summary.escalation)

    async def _speak(
        self, state: TurnState, persona: Persona, sentences: asyncio.Queue[dialogue_pb2.Sentence | None]
    ) -> None:
        """Synthesize each sentence as it comes, animate it, send audio and visemes together."""
        downstream, config = self._gateway.downstream, self._config
        synthesis = convert.synthesis_config(persona, config)
        frame_rate = config.frame_rate or persona.face.frame_rate
        while (sentence := await sentences.get()) is not None:
            chunks = await downstream.synthesize(convert.synthesize_request(sentence.text, synthesis))
            for chunk in chunks:
                emotion = state.emotions[-1] if state.emotions else ""
                animation = await downstream.animate(
                    convert.animate_request(chunk, frame_rate, config.frame_set, emotion)
                )
                start = state.delivered_samples
                if not state.first_audio_s:
                    state.first_audio_at = time.perf_counter()
                    state.first_audio_s = state.first_audio_at - state.origin
                self._send(
                    state,
                    convert.reply_audio(
                        state.index, sentence.index, chunk, start, animation, config.viseme_events
                    ),
                )
                state.sentences.append(SpokenSentence(start, chunk.num_samples, chunk.text))
                state.delivered_samples += chunk.num_samples
                state.audio_s += chunk.num_samples / chunk.format.sample_rate_hz

    async def finish(self, state: TurnState, npc_text: str) -> None:
        """Store the turn (or queue it), then acknowledge it with its latency breakdown. From here on the
        turn is past interrupting: a line that comes meanwhile waits for it to end."""
        state.finishing = True
        reply = npc_text.strip()
        state.stored = await self._memory.remember(
            state.player_text, reply, state.interrupted, state.emotions, state.actions
        )
        if self._stored is not None:
            await self._stored(state, reply)
        latency = {
            "transcript": state.transcript_s,
            "first_token": state.first_token_s,
            "first_clause": state.first_clause_s,
            "first_audio": state.first_audio_s,
            "total": time.perf_counter() - state.origin,
        }
        for stage, value in latency.items():
            if value:
                LATENCY.labels(stage).observe(value)
        end = convert.turn_end(state.index, state.player_text, reply, state.interrupted, latency, state.cue,
                               drafted=state.drafted, answered_by=state.answered_by,
                               escalation=state.escalation)  # fmt: skip
        end.turn_end.to_npc_id = state.to_npc_id
        self._emit(convert.spoken_by(end, self._config.npc_id))
        if not state.interrupted:  # (interrupted: the player speaks, and their line is prefilled)
            self.prefill_next()
