"""One ``Converse`` stream: a player talking to one NPC, or to a scene of several (``scene``).

The session reads the client's messages (typed lines, audio, playback positions, end of speech) and
writes events to one output queue. Audio goes to the listener (``listening``), whose final transcripts
start turns; typed lines start them at once. A turn (``turn``) runs as a task. If the player speaks (or
types) while the NPC is still replying, the turn is cancelled at once and memory keeps only what the
player heard, marked as interrupted; so too when the reply was sent in full but, by the client's playback
position, still plays (``_cut_short``). If the player goes on talking right after a final transcript, before
anything of the reply reached them, the final was only part of their line: the reply is dropped unsaid
and the next final continues the same line.

A reply may start before the final transcript: when the speech service's words are settled (transcribed
from the final's audio as soon as the player's silence begins), a draft turn answers them with everything
it would send held back. The final either says the same words (ignoring case and punctuation), and the
draft is released at once, or it does not (or the player goes on talking), and the draft is dropped: none
of it was sent or stored.

In a scene, each player line goes to one NPC (``Scene.addressee``), one voice at a time: a line
interrupts whoever speaks. What was said is stored in the memory of every NPC in earshot, as heard (an
event: "The player said to Hilda: ..."). An NPC may say something to another, who answers from its own
persona and memory (an exchange): each line is written while the one before it plays, and held until that
one has been heard.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.conversation import convert
from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.listening import Listener
from npcvoice.conversation.metrics import DRAFTS
from npcvoice.conversation.options import SessionConfig
from npcvoice.conversation.recording import SessionMemory
from npcvoice.conversation.scene import MAX_EXCHANGE_LINES, Scene, SceneChange, Speak
from npcvoice.conversation.turn import TurnPipeline, TurnState, heard_text
from npcvoice.runtime.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from npcvoice.turns import Turn, overheard
from npcvoice.world import GameEvent

log = logging.getLogger("npcvoice.conversation")
MAX_AUDIO_CHUNK_BYTES = 1 << 20
MIN_PREFILL_WORDS = 2  # fewer words heard so far are not worth a prefill while the player speaks
SPEAKER_GAP_S = 0.25  # between one NPC's line and the next one's, in an exchange

# What goes on the session's output queue: an event for the client, an error that ends the stream, or
# None when the conversation is over (see runtime.streams.read_in_background).
Outgoing = conversation_pb2.ConverseResponse | BaseException | None


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same, ignoring case and punctuation."""

    def words(text: str) -> list[str]:
        return re.sub(r"[^\w\s']|(?<!\w)'|'(?!\w)", " ", text.lower()).split()

    return words(a) == words(b)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a turn and wait until it has ended. A cancellation that arrives while the Redis client is
    reading can be swallowed (the turn would then go on to reply in full), so it is repeated until the
    task is done."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)


@dataclass
class Part:
    """One NPC of the conversation: its memory of the player, and the pipeline its turns run in."""

    memory: SessionMemory
    turns: TurnPipeline


class Session:
    def __init__(self, gateway: Gateway, config: SessionConfig) -> None:
        self.gateway = gateway
        self.config = config
        self.out: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.world = dict(config.context)  # what the game says about the world now
        npc_ids = list(config.scene_npc_ids) or [config.npc_id]
        self.parts = {npc_id: self._part(npc_id) for npc_id in npc_ids}
        self.scene = Scene(npc_ids, config.npc_id, {n: n for n in npc_ids})  # names: in start()
        self.listener = Listener(
            gateway,
            config,
            on_speech=self._speech_started,
            on_interim=self._interim,
            on_final=self._heard,
            on_error=self.out.put_nowait,
        )
        self._turn_index = 0
        self._turn: asyncio.Task[None] | None = None
        self._state: TurnState | None = None
        self._playback: dict[int, tuple[int, float]] = {}  # turn index: (played samples, when reported)
        self._continued = ""  # the player's line so far, when they went on talking after its final
        self._heard_line = ""  # the speech service's last line, which its next final may continue
        self._prefilled = ""  # the line so far last sent to be prefilled
        self._draft: tuple[TurnState, asyncio.Task[None]] | None = None  # a reply held until the final
        self._exchange: asyncio.Task[None] | None = None  # NPCs talking to each other
        self._queued: tuple[TurnState, asyncio.Task[None]] | None = None  # its next line, held

    def _part(self, npc_id: str) -> Part:
        memory = SessionMemory(self.gateway, npc_id, self.config.player_id)
        config = replace(self.config, npc_id=npc_id)
        turns = TurnPipeline(self.gateway, config, memory, self.out.put_nowait, self.world, self._overheard)
        return Part(memory, turns)

    async def _members(self, npc_ids: list[str], field: str) -> list[conversation_pb2.SceneMember]:
        members = []
        for npc_id in npc_ids:
            persona = self.gateway.persona(npc_id, field)
            self.scene.members[npc_id] = persona.display_name
            memory = await self.parts[npc_id].memory.refresh()
            members.append(convert.scene_member(persona, len(memory.turns)))
        return members

    async def start(self) -> conversation_pb2.ConverseResponse:
        field = "config.scene_npc_ids" if self.config.scene_npc_ids else "config.npc_id"
        members = await self._members(list(self.parts), field)
        persona = self.gateway.persona(self.config.npc_id, "config.npc_id")
        first = next(m for m in members if m.npc_id == persona.id)
        return convert.session_started(
            persona, first.remembered_turns, members if self.scene.is_scene else None
        )

    async def read(self, requests: AsyncIterator[conversation_pb2.ConverseRequest]) -> None:
        """Handle the client's messages until it closes its side; then finish the turn in progress. (The
        servicer reads in the background: an error raised here ends the stream with its status.)"""
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "text":
                await self._typed(request.text)
            elif kind == "audio":
                self._audio(request.audio)
            elif kind == "end_of_speech":
                self.listener.end_of_speech()
            elif kind == "playback":
                played = (request.playback.played_samples, time.perf_counter())
                self._playback[request.playback.turn_index] = played
            elif kind == "context":
                update = convert.context_update(self.world, request.context)
                self.world.clear()
                self.world.update(update)
            elif kind == "event":
                npc_id = self.scene.member(request.event.npc_id, "event.npc_id")
                await self._event(convert.event_from_proto(request.event), npc_id)
            elif kind == "speak":
                await self._speak(self._checked_speak(request.speak))
            elif kind == "scene":
                await self._change_scene(convert.scene_update(request.scene))
        self.listener.end_of_speech()
        await self.listener.finished()
        await self._drop_draft()  # (a final would have released or dropped it)
        if self._continued:  # the player went on, but nothing more was heard: answer what they said
            self._start_turn(self._continued, time.perf_counter(), 0.0)
            self._continued = ""
        if self._exchange is not None:
            await asyncio.wait([self._exchange])  # NPCs talking to each other finish their exchange
        if self._turn is not None:
            await asyncio.wait([self._turn])  # (a turn that failed has already put its outcome on the queue)

    async def _typed(self, text: str) -> None:
        if not text.strip():
            raise InvalidArgument("text", "must not be empty")
        limit = self.gateway.options.max_text_chars
        if len(text) > limit:
            raise InvalidArgument("text", f"at most {limit} characters, got {len(text)}")
        await self.interrupt()
        line, self._continued = " ".join(filter(None, [self._continued, text.strip()])), ""
        self._start_turn(line, time.perf_counter(), 0.0)

    async def _event(self, event: GameEvent, npc_id: str) -> None:
        """The NPC remembers what happened; if its persona has a trigger that speaks, it reacts aloud."""
        trigger = self.gateway.persona(npc_id, "event.npc_id").trigger_for(event.name)
        affinity, trust = (trigger.affinity, trigger.trust) if trigger else (0.0, 0.0)
        await self.parts[npc_id].memory.remember_event(event, affinity, trust)
        if trigger is not None and trigger.say:
            await self._speak(Speak(f"{event.told} {trigger.say}", npc_id))

    def _checked_speak(self, speak: conversation_pb2.NpcSpeak) -> Speak:
        instruction = convert.speak_instruction(speak)
        npc_id = self.scene.member(speak.npc_id, "speak.npc_id")
        if not speak.to_npc_id:
            if speak.lines > 1:
                raise InvalidArgument("speak.lines", "more than one line needs speak.to_npc_id")
            return Speak(instruction, npc_id)
        to_npc_id = self.scene.member(speak.to_npc_id, "speak.to_npc_id")
        if to_npc_id == npc_id:
            raise InvalidArgument("speak.to_npc_id", "must be another NPC than the one speaking")
        if not 0 <= speak.lines <= MAX_EXCHANGE_LINES:
            raise InvalidArgument("speak.lines", f"from 0 (2) to {MAX_EXCHANGE_LINES}, got {speak.lines}")
        return Speak(instruction, npc_id, to_npc_id, speak.lines or 2)

    async def _speak(self, speak: Speak) -> None:
        """An NPC speaks without the player having said anything (it replaces a reply going on): to the
        player, or to another NPC of the scene, who answers (an exchange, as a task of its own)."""
        await self.interrupt()
        if speak.to_npc_id:
            self._exchange = asyncio.create_task(self._talk(speak))
        else:
            self._start_turn("", time.perf_counter(), 0.0, speak.instruction, speak.npc_id)

    async def _talk(self, speak: Speak) -> None:
        """NPCs talking to each other, ``speak.lines`` lines taking turns. Each line after the first is
        written as soon as the one before it is stored (its listener has heard it), and held until that
        one has played; a line that fails or is interrupted ends the exchange."""
        speaker, listener = speak.npc_id, speak.to_npc_id
        cue = f"Say to {self.scene.members[listener]}: {speak.instruction}"
        before: TurnState | None = None
        for _ in range(speak.lines):
            state = TurnState(self._turn_index, "", time.perf_counter(), cue=cue, npc_id=speaker,
                              to_npc_id=listener)  # fmt: skip
            if before is not None and self.config.voice_reply:
                state.held, state.queued = [], True
                state.release = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._run(state))
            if before is not None and state.queued:
                self._queued = (state, task)
                await self._played_out(before)
                self._queued = None
                state.rebase(time.perf_counter(), time.perf_counter())
                self._take(state, task)
                state.let_go(self.out.put_nowait, time.perf_counter())
            else:
                self._take(state, task)
            await asyncio.wait([task])
            if task.cancelled() or task.exception() is not None or state.interrupted:
                return
            before = state
            speaker, listener = listener, speaker
            said, name = state.reply_text.strip(), self.scene.members[listener]
            cue = f'{name} says to you: "{said}" Answer {name}.'  # as the player's line is put to it

    async def _played_out(self, state: TurnState) -> None:
        """Until the client has played ``state``'s audio: its playback position says so, or the time since
        its first audio does (plus a short gap between speakers)."""
        while state.audio_s:
            due = state.first_audio_at + state.audio_s + SPEAKER_GAP_S
            played = self._played(state.index, 0) >= state.delivered_samples
            now = time.perf_counter()
            if played or now >= due:
                return
            await asyncio.sleep(min(0.05, due - now))

    async def _run(self, state: TurnState) -> None:
        await self.parts[state.npc_id].turns.run(state)

    async def _overheard(self, state: TurnState, reply: str) -> None:
        """What ``state``'s NPC was told and said, stored as heard by every other NPC in earshot."""
        for npc_id in self.scene.hearers(state.npc_id):
            lines = self._heard_by(npc_id, state, reply)
            if lines and npc_id in self.parts:
                stored = await self.parts[npc_id].memory.overhear(lines)
                if reply:
                    state.overheard[npc_id] = stored[-1]

    def _heard_by(self, npc_id: str, state: TurnState, reply: str) -> list[str]:
        """What the NPC ``npc_id`` remembers of a turn of another in its earshot: the player's line, and
        ``reply`` (the last line, when there is one)."""
        speaker = self.scene.members.get(state.npc_id, state.npc_id)
        if state.to_npc_id:
            to = "you" if npc_id == state.to_npc_id else self.scene.members.get(state.to_npc_id, "")
            return [overheard(speaker, to, reply)] if reply else []
        lines = [overheard("", speaker, state.player_text, player=True)] if state.player_text else []
        if reply:
            lines.append(f'{speaker} {"answered" if state.player_text else "said"}: "{reply}"')
        return lines

    async def _change_scene(self, change: SceneChange) -> None:
        """NPCs join or leave (one leaving while it speaks, or in an exchange going on, stops it as heard),
        the game names who the player talks to, or who is in earshot; the client gets the scene as it is."""
        names = {n: self.gateway.persona(n, "scene.join_npc_ids").display_name for n in change.join}
        if set(change.leave) & self._talking():
            await self.interrupt()
        self.scene.change(change, names)
        for npc_id in change.leave:
            self.parts.pop(npc_id).turns.stop_prefill()
        for npc_id in change.join:
            self.parts[npc_id] = self._part(npc_id)
        members = await self._members(list(self.scene.members), "scene.join_npc_ids")
        self.out.put_nowait(
            convert.scene_changed(members, self.scene.addressed, sorted(self.scene.out_of_earshot))
        )

    def _talking(self) -> set[str]:
        """The NPCs of the turn going on and of the exchange going on, if any."""
        states = [self._queued[0]] if self._queued else []
        if self._turn is not None and not self._turn.done() and self._state is not None:
            states.append(self._state)
        return {n for s in states for n in (s.npc_id, s.to_npc_id) if n}

    def _audio(self, chunk: bytes) -> None:
        if self.config.input_encoding is None:
            raise FailedPrecondition(
                "audio: set config.input_audio (encoding and sample rate) before sending audio"
            )
        if len(chunk) > MAX_AUDIO_CHUNK_BYTES:
            raise InvalidArgument(
                "audio", f"at most {MAX_AUDIO_CHUNK_BYTES} bytes per message, got {len(chunk)}"
            )
        self.listener.audio(chunk)

    def _interim(self, text: str, line_text: str, settled: bool) -> None:
        if self.config.interim_transcripts:
            self.out.put_nowait(convert.transcript(self._turn_index, text, is_final=False))
        if settled:
            self._begin_draft(self._line(text, line_text)[0])
            return
        if self._draft is not None:
            return  # (the draft prefilled its line already)
        # Dialogue prefills the line so far while the player goes on; its last word is left out, being
        # the one the next hearing most often changes (it may have been cut mid-word).
        words = text.split()[:-1]
        line = " ".join(filter(None, [self._continued, *words]))
        if len(words) >= MIN_PREFILL_WORDS and line != self._prefilled:
            self._prefilled = line
            self.parts[self.scene.addressee(line)].turns.prefill(line)

    async def _heard(self, text: str, line_text: str, speech_end: float, transcript_s: float) -> None:
        """A final transcript (possibly empty: noise): the player's line, which replaces any reply still
        going on, and continues the line they went on talking after. When the speech service heard the
        continuation and its start as one (``line_text``), its hearing of the whole replaces the parts."""
        line, self._heard_line = self._line(text, line_text)
        self._prefilled = self._continued = ""
        draft, self._draft = self._draft, None
        if draft is not None and line and same_words(draft[0].player_text, line) and not draft[1].done():
            await self.interrupt()
            self._release(*draft, speech_end, transcript_s)
            return
        await self._drop_draft(draft)
        if not line:
            return
        await self.interrupt()
        self._start_turn(line, speech_end, transcript_s)

    def _line(self, text: str, line_text: str) -> tuple[str, str]:
        """The player's line a transcript makes (with what they said before a pause it continues), and
        what the next transcript may continue."""
        before = self._continued
        if line_text and self._heard_line and before.endswith(self._heard_line):
            before, text = before.removesuffix(self._heard_line).strip(), line_text
        return " ".join(filter(None, [before, text])), line_text or text

    def _begin_draft(self, line: str) -> None:
        """Answer the player's settled words now, everything held until the final transcript."""
        if not self.gateway.options.draft_replies or not line:
            return
        if self._draft is not None:
            if same_words(self._draft[0].player_text, line):
                return
            self._draft[1].cancel()  # newer words (its cancellation is complete before a final comes)
            DRAFTS.labels("dropped").inc()
            self._draft = None
        if self._turn is not None and not self._turn.done():
            return  # a reply still going on is the final's to interrupt
        state = TurnState(self._turn_index, line, time.perf_counter(), npc_id=self.scene.addressee(line),
                          held=[], release=asyncio.get_running_loop().create_future())  # fmt: skip
        task = asyncio.create_task(self._run(state))
        task.add_done_callback(_draft_ended)
        self._draft = (state, task)

    def _release(
        self, state: TurnState, task: asyncio.Task[None], speech_end: float, transcript_s: float
    ) -> None:
        """The final says what the draft answered: send what it holds at once, and let it finish."""
        DRAFTS.labels("used").inc()
        state.transcript_s = transcript_s
        state.rebase(speech_end, time.perf_counter())
        self._take(state, task)
        self.scene.last = state.npc_id
        state.let_go(self.out.put_nowait, time.perf_counter())

    async def _drop_draft(self, draft: tuple[TurnState, asyncio.Task[None]] | None = None) -> None:
        """Stop a draft: nothing of it was sent, and nothing is stored."""
        draft = draft or self._draft
        if draft is None:
            return
        if self._draft is draft:
            self._draft = None
        DRAFTS.labels("dropped").inc()
        await stop(draft[1])

    async def _speech_started(self) -> None:
        """The player talks: barge-in, or, if nothing of the reply has reached them yet, more of the same
        line (they had only paused): the reply to the part is dropped unsaid, and its line is kept. The
        client hears of it first, so that it can stop the reply audio it is still playing."""
        self.out.put_nowait(convert.player_speaking(self._turn_index))
        await self._drop_draft()  # the player goes on: their words were not settled after all
        task, state = self._turn, self._state
        if task is None or state is None or task.done() or state.first_audio_s or not state.transcript_s:
            await self.interrupt()
            return
        await stop(task)
        self._continued = state.player_text
        self.out.put_nowait(convert.spoken_by(convert.interruption(state.index, "", 0), state.npc_id))
        latency = {"transcript": state.transcript_s, "first_token": 0.0, "first_audio": 0.0,
                   "total": time.perf_counter() - state.origin}  # fmt: skip
        end = convert.turn_end(state.index, state.player_text, "", True, latency, state.cue, continued=True)
        self.out.put_nowait(convert.spoken_by(end, state.npc_id))

    def _start_turn(
        self, player_text: str, origin: float, transcript_s: float, cue: str = "", npc_id: str = ""
    ) -> None:
        """A turn of ``npc_id`` (the player's line's addressee when not given)."""
        npc_id = npc_id or self.scene.addressee(player_text)
        if player_text:
            self.scene.last = npc_id
        state = TurnState(self._turn_index, player_text, origin, transcript_s, cue=cue, npc_id=npc_id)
        self._take(state, asyncio.create_task(self._run(state)))

    def _take(self, state: TurnState, task: asyncio.Task[None]) -> None:
        """``state``'s turn (run by ``task``) is the conversation's turn now: its index is taken and its
        final transcript, if the player spoke, goes to the client before anything of the reply."""
        self._turn_index += 1
        if state.transcript_s:
            self.out.put_nowait(convert.transcript(state.index, state.player_text, is_final=True))
        self._state, self._turn = state, task
        task.add_done_callback(functools.partial(self._turn_ended, state))

    def _turn_ended(self, state: TurnState, task: asyncio.Task[None]) -> None:
        """A failed turn ends the stream with its error. A turn refused for lack of capacity (the dialogue
        service at its limit, memory away too long) ends only itself, unsaid and unremembered: the game
        can act on it (show the NPC busy, send the line again) and the conversation goes on."""
        error = None if task.cancelled() else task.exception()
        if isinstance(error, ResourceExhausted):
            retry_after_s = self.gateway.options.busy_retry_after_s
            refused = convert.turn_refused(state.index, state.player_text, error.message, retry_after_s)
            self.out.put_nowait(convert.spoken_by(refused, state.npc_id))
        elif error is not None:
            self.out.put_nowait(error)

    async def interrupt_quietly(self) -> None:
        """The client went away: stop the reply and the speech stream without sending anything."""
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        if self._draft is not None:
            self._draft[1].cancel()
        for task in (self._exchange, self._queued[1] if self._queued else None):
            if task is not None:
                task.cancel()
        for part in self.parts.values():
            part.turns.stop_prefill()
        self.listener.cancel()

    def _played(self, turn_index: int, default: int) -> int:
        """The samples of the turn's reply the client last said it had played (``default``: no word)."""
        reported = self._playback.get(turn_index)
        return reported[0] if reported else default

    async def interrupt(self) -> None:
        """Stop the reply in progress (barge-in); memory keeps what the player heard of it. A draft goes
        (a typed line, an event or a speak-first instruction comes before the player's settled words), and
        so does an exchange between NPCs: its line not yet heard is dropped unsaid."""
        await self._drop_draft()
        await self._stop_exchange()
        task, state = self._turn, self._state
        if task is None or state is None:
            return
        if task.done() or state.finishing:  # sent in full: stored, or being stored
            await asyncio.wait([task])
            await self._cut_short(state)
            return
        state.interrupted = True
        await stop(task)
        heard_samples = self._played(state.index, state.delivered_samples)
        heard = heard_text(state.sentences, heard_samples) if self.config.voice_reply else state.reply_text
        cut = convert.interruption(state.index, heard, heard_samples)
        self.out.put_nowait(convert.spoken_by(cut, state.npc_id))
        part = self.parts.get(state.npc_id)
        if part is not None:
            await part.turns.finish(state, heard)

    async def _cut_short(self, state: TurnState) -> None:
        """A reply sent in full (on a fast machine, most are, well before they have played) that the player
        talks over while it still plays: the client's last playback position says how much was heard, and
        playing no faster than real time it cannot have reached the end since. Then it is interrupted as a
        reply in progress would be (``Interruption``, after its ``TurnEnd``), and memory keeps what was
        heard, and so do the other NPCs in earshot. A client that reports no playback heard all it was
        sent."""
        reported = self._playback.get(state.index)
        part = self.parts.get(state.npc_id)
        if state.interrupted or state.stored is None or not state.audio_s or reported is None or part is None:
            return
        heard_samples, reported_at = reported
        samples_per_s = state.delivered_samples / state.audio_s
        if heard_samples + (time.perf_counter() - reported_at) * samples_per_s >= state.delivered_samples:
            return  # played out by now
        said, state.interrupted = state.stored, True
        heard = heard_text(state.sentences, heard_samples)
        self.out.put_nowait(
            convert.spoken_by(convert.interruption(state.index, heard, heard_samples), state.npc_id)
        )
        said_heard = Turn("npc", heard, interrupted=True, time=said.time)
        await part.memory.replace(said, said_heard if heard else None)
        for npc_id, told in state.overheard.items():
            listener = self.parts.get(npc_id)
            lines = self._heard_by(npc_id, state, heard) if heard else []
            amended = Turn("event", lines[-1], time=told.time) if lines else None
            if listener is not None:
                await listener.memory.replace(told, amended)

    async def _stop_exchange(self) -> None:
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            await stop(exchange)
        queued, self._queued = self._queued, None
        if queued is not None:
            await stop(queued[1])  # held, never heard: nothing of it is stored


def _draft_ended(task: asyncio.Task[None]) -> None:
    """A draft that failed (the dialogue service busy, say) only loses its head start: the final is
    answered as usual."""
    if not task.cancelled() and task.exception() is not None:
        log.info("a reply drafted on settled words failed (the final is answered anew): %s", task.exception())
