"""Every protobuf ↔ domain conversion of the gateway: the client's config and the events it receives,
save-game snapshots, and the requests the gateway sends to the speech, dialogue, voice and face services.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.api.npc.dialogue.v1 import dialogue_pb2
from npcvoice.api.npc.face.v1 import face_pb2
from npcvoice.api.npc.speech.v1 import speech_pb2
from npcvoice.api.npc.voice.v1 import voice_pb2
from npcvoice.audio import check_sample_rate
from npcvoice.catalog import FRAME_RATES
from npcvoice.conversation.memory import Memory, check_id, check_memory
from npcvoice.conversation.options import SessionConfig
from npcvoice.conversation.scene import MAX_SCENE_NPCS, SceneChange
from npcvoice.converters import encoding_from_proto, encoding_to_proto, input_format
from npcvoice.personas import Persona
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.turns import Turn
from npcvoice.world import MAX_EVENT_CHARS, GameEvent, check_event, updated

MAX_PLAYER_NAME_CHARS = 80
_DIALOGUE_ROLES = {
    "player": dialogue_pb2.ROLE_PLAYER,
    "npc": dialogue_pb2.ROLE_NPC,
    "event": dialogue_pb2.ROLE_EVENT,
}

Response = conversation_pb2.ConverseResponse

# --- what the client sends and is sent -------------------------------------------------------------------


def config_from_proto(config: conversation_pb2.ConverseConfig) -> SessionConfig:
    scene = scene_ids(config.scene_npc_ids, "config.scene_npc_ids")
    if scene and config.npc_id and config.npc_id not in scene:
        raise InvalidArgument("config.npc_id", "must be empty or one of config.scene_npc_ids")
    npc_id = config.npc_id or (scene[0] if scene else "")
    check_id(npc_id, "config.npc_id")
    check_id(config.player_id, "config.player_id")
    if len(config.player_name) > MAX_PLAYER_NAME_CHARS:
        raise InvalidArgument("config.player_name", f"at most {MAX_PLAYER_NAME_CHARS} characters")
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
    return SessionConfig(
        npc_id=npc_id,
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
        seed=config.seed if config.HasField("seed") else None,
        context=updated({}, dict(config.context.values), "config.context.values"),
        scene_npc_ids=scene,
    )


def scene_ids(ids: Sequence[str], field: str) -> tuple[str, ...]:
    """Persona ids for a scene: valid ids, each once, at most MAX_SCENE_NPCS."""
    if len(ids) > MAX_SCENE_NPCS:
        raise InvalidArgument(field, f"at most {MAX_SCENE_NPCS} NPCs in a scene, got {len(ids)}")
    for npc_id in ids:
        check_id(npc_id, field)
    if len(set(ids)) != len(ids):
        raise InvalidArgument(field, "names an NPC twice")
    return tuple(ids)


def scene_update(update: conversation_pb2.SceneUpdate) -> SceneChange:
    return SceneChange(
        join=scene_ids(update.join_npc_ids, "scene.join_npc_ids"),
        leave=scene_ids(update.leave_npc_ids, "scene.leave_npc_ids"),
        addressed=update.addressed_npc_id if update.HasField("addressed_npc_id") else None,
        out_of_earshot=(
            scene_ids(update.earshot.out_of_earshot_npc_ids, "scene.earshot.out_of_earshot_npc_ids")
            if update.HasField("earshot")
            else None
        ),
    )


def scene_member(persona: Persona, remembered_turns: int) -> conversation_pb2.SceneMember:
    return conversation_pb2.SceneMember(
        npc_id=persona.id,
        display_name=persona.display_name,
        greeting=persona.greeting,
        remembered_turns=remembered_turns,
    )


def scene_changed(
    members: list[conversation_pb2.SceneMember], addressed: str, out_of_earshot: Sequence[str]
) -> Response:
    return Response(
        scene=conversation_pb2.SceneChanged(
            members=members, addressed_npc_id=addressed, out_of_earshot_npc_ids=list(out_of_earshot)
        )
    )


def spoken_by(response: Response, npc_id: str) -> Response:
    """The event, marked as the NPC ``npc_id``'s (every event a turn sends names the NPC speaking)."""
    kind = response.WhichOneof("event")
    event = getattr(response, kind) if kind else None
    if event is not None and "npc_id" in event.DESCRIPTOR.fields_by_name:
        event.npc_id = npc_id
    return response


def context_update(context: dict[str, str], update: conversation_pb2.WorldContext) -> dict[str, str]:
    return updated(context, dict(update.values), "context.values")


def event_from_proto(event: conversation_pb2.GameEvent) -> GameEvent:
    return check_event(GameEvent(event.name, event.description.strip(), dict(event.parameters)))


def speak_instruction(speak: conversation_pb2.NpcSpeak) -> str:
    instruction = speak.instruction.strip()
    if not instruction:
        raise InvalidArgument("speak.instruction", "must not be empty")
    if len(instruction) > MAX_EVENT_CHARS:
        raise InvalidArgument("speak.instruction", f"at most {MAX_EVENT_CHARS} characters")
    return instruction


def session_started(
    persona: Persona, remembered_turns: int, scene: list[conversation_pb2.SceneMember] | None = None
) -> Response:
    return Response(
        started=conversation_pb2.SessionStarted(
            npc_id=persona.id,
            display_name=persona.display_name,
            greeting=persona.greeting,
            remembered_turns=remembered_turns,
            scene=scene or [],
        )
    )


def transcript(turn_index: int, text: str, is_final: bool) -> Response:
    return Response(
        transcript=conversation_pb2.PlayerTranscript(turn_index=turn_index, text=text, is_final=is_final)
    )


def reply_text(turn_index: int, delta: str) -> Response:
    return Response(reply_text=conversation_pb2.ReplyText(turn_index=turn_index, delta=delta))


def emotion(turn_index: int, event: dialogue_pb2.EmotionEvent) -> Response:
    return Response(
        emotion=conversation_pb2.Emotion(
            turn_index=turn_index, emotion=event.emotion, intensity=event.intensity
        )
    )


def action(turn_index: int, event: dialogue_pb2.ActionEvent) -> Response:
    return Response(
        action=conversation_pb2.Action(
            turn_index=turn_index, name=event.name, parameters=dict(event.parameters)
        )
    )


def reply_audio(
    turn_index: int,
    sentence_index: int,
    chunk: voice_pb2.AudioChunk,
    start_sample: int,
    animation: face_pb2.AnimateResponse,
    with_events: bool,
) -> Response:
    """A sentence's audio with the viseme frames (and events) for exactly its samples, moved onto the
    turn's timeline like ``start_sample``."""
    offset = start_sample / chunk.format.sample_rate_hz
    for frame in animation.frames:
        frame.time_seconds += offset
    events = list(animation.events) if with_events else []
    for event in events:
        event.start_seconds += offset
    return Response(
        audio=conversation_pb2.ReplyAudio(
            turn_index=turn_index,
            sentence_index=sentence_index,
            audio=chunk.audio,
            format=chunk.format,
            start_sample=start_sample,
            num_samples=chunk.num_samples,
            text=chunk.text,
            visemes=animation.frames,
            viseme_events=events,
        )
    )


def player_speaking(turn_index: int) -> Response:
    return Response(speaking=conversation_pb2.PlayerSpeaking(turn_index=turn_index))


def interruption(turn_index: int, heard_text: str, heard_samples: int) -> Response:
    return Response(
        interruption=conversation_pb2.Interruption(
            turn_index=turn_index, heard_text=heard_text, heard_samples=heard_samples
        )
    )


def turn_refused(turn_index: int, player_text: str, reason: str, retry_after_s: float) -> Response:
    refused = conversation_pb2.TurnRefused(
        turn_index=turn_index, player_text=player_text, reason=reason, retry_after_seconds=retry_after_s
    )
    return Response(refused=refused)


def turn_end(
    turn_index: int,
    player_text: str,
    reply: str,
    interrupted: bool,
    latency: dict[str, float],
    cue: str,
    continued: bool = False,
    drafted: bool = False,
    answered_by: str = "",
    escalation: tuple[str, ...] = (),
) -> Response:
    return Response(
        turn_end=conversation_pb2.TurnEnd(
            turn_index=turn_index,
            player_text=player_text,
            reply_text=reply,
            interrupted=interrupted,
            latency=conversation_pb2.LatencyBreakdown(
                transcript_seconds=latency["transcript"],
                first_token_seconds=latency["first_token"],
                first_audio_seconds=latency["first_audio"],
                total_seconds=latency["total"],
                first_clause_seconds=latency.get("first_clause", 0.0),
            ),
            cue=cue,
            continued=continued,
            drafted=drafted,
            answered_by=answered_by,
            escalation=list(escalation),
        )
    )


def npc_info(persona: Persona) -> conversation_pb2.NpcInfo:
    return conversation_pb2.NpcInfo(
        npc_id=persona.id,
        display_name=persona.display_name,
        description=persona.description,
        voice_id=persona.voice.voice_id,
    )


# --- save games ------------------------------------------------------------------------------------------


def memory_to_proto(memory: Memory) -> conversation_pb2.MemorySnapshot:
    return conversation_pb2.MemorySnapshot(
        version=memory.version,
        npc_id=memory.npc_id,
        player_id=memory.player_id,
        turns=[
            conversation_pb2.MemoryTurn(role=t.role, text=t.text, interrupted=t.interrupted, time=t.time)
            for t in memory.turns
        ],
        summary=memory.summary,
        player_facts=list(memory.player_facts),
        affinity=memory.affinity,
        trust=memory.trust,
    )


def memory_from_proto(snapshot: conversation_pb2.MemorySnapshot) -> Memory:
    turns = [
        Turn(role=t.role, text=t.text, interrupted=t.interrupted, time=t.time)  # type: ignore[arg-type]
        for t in snapshot.turns
    ]
    return check_memory(
        Memory(
            npc_id=snapshot.npc_id,
            player_id=snapshot.player_id,
            turns=turns,
            summary=snapshot.summary,
            player_facts=list(snapshot.player_facts),
            affinity=snapshot.affinity,
            trust=snapshot.trust,
            version=snapshot.version,
        )
    )


# --- requests to the services the gateway composes -------------------------------------------------------


def speech_config(
    persona: Persona, config: SessionConfig, interims: bool
) -> speech_pb2.StreamingRecognitionConfig:
    """``interims``: whether the speech service sends interim transcripts (for the client, or for the
    gateway's own prefill while the player speaks)."""
    return speech_pb2.StreamingRecognitionConfig(
        recognition=speech_pb2.RecognitionConfig(
            audio_format=audio_pb2.AudioFormat(
                encoding=encoding_to_proto(config.input_encoding or "pcm16"), sample_rate_hz=config.input_rate
            ),
            language=persona.speech.language,
            hotwords=list(persona.speech.hotwords),
        ),
        interim_results=interims,
    )


def dialogue_turns(turns: list[Turn]) -> list[dialogue_pb2.Turn]:
    return [
        dialogue_pb2.Turn(role=_DIALOGUE_ROLES[t.role], text=t.text, interrupted=t.interrupted) for t in turns
    ]


def generate_request(
    persona: Persona,
    config: SessionConfig,
    player_text: str,
    memory: Memory,
    recent: list[Turn],
    world: Mapping[str, str],
    cue: str = "",
) -> dialogue_pb2.GenerateRequest:
    """The dialogue's request for a turn: the player's line (or, when the NPC speaks first, the cue), the
    memory, and the world context keys the persona pays attention to."""
    return dialogue_pb2.GenerateRequest(
        persona_id=persona.id,
        conversation_id=f"{persona.id}:{config.player_id}",
        player_text=player_text,
        player_name=config.player_name,
        first_clause=config.voice_reply,  # speech starts on the first clause
        sampling=dialogue_pb2.Sampling(seed=config.seed) if config.seed is not None else None,
        world=persona.attended(world),
        cue=cue,
        memory=dialogue_pb2.Memory(
            recent_turns=dialogue_turns(recent),
            summary=memory.summary,
            player_facts=memory.player_facts[-persona.memory.max_facts :],
            relationship=dialogue_pb2.Relationship(affinity=memory.affinity, trust=memory.trust),
        ),
    )


def summarize_request(persona: Persona, previous: str, turns: list[Turn]) -> dialogue_pb2.SummarizeRequest:
    return dialogue_pb2.SummarizeRequest(
        persona_id=persona.id, previous_summary=previous, turns=dialogue_turns(turns)
    )


def synthesis_config(persona: Persona, config: SessionConfig) -> voice_pb2.SynthesisConfig:
    voice = persona.voice
    return voice_pb2.SynthesisConfig(
        voice=voice_pb2.VoiceSettings(
            voice_id=voice.voice_id,
            speaker_id=voice.speaker,
            speed=voice.speed,
            variation=voice.variation,
            volume=voice.volume,
            pitch_semitones=voice.pitch,
        ),
        output_format=audio_pb2.AudioFormat(
            encoding=encoding_to_proto(config.output_encoding), sample_rate_hz=config.output_rate
        ),
    )


def synthesize_request(text: str, config: voice_pb2.SynthesisConfig) -> voice_pb2.SynthesizeRequest:
    return voice_pb2.SynthesizeRequest(text=text, config=config)


def animate_request(
    chunk: voice_pb2.AudioChunk, frame_rate: int, frame_set: int, emotion: str
) -> face_pb2.AnimateRequest:
    return face_pb2.AnimateRequest(
        phonemes=face_pb2.PhonemeTrack(sample_rate_hz=chunk.format.sample_rate_hz, phonemes=chunk.phonemes),
        frame_rate=frame_rate,
        frame_set=frame_set,  # type: ignore[arg-type]
        emotion=emotion,
    )
