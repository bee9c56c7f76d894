"""Protobuf ↔ domain conversion of the dialogue service: all the servicer reads from or writes to the wire."""

from __future__ import annotations

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import Action, Emotion, ReplyEvent, Sentence, TextDelta
from npcvoice.dialogue.types import (
    FINISH_LENGTH,
    GenerationSummary,
    ReplyOutput,
    SamplingOverrides,
    SummaryRequest,
    TurnRequest,
)
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.turns import Role, Turn

MAX_SUMMARIZE_TURNS = 200


_ROLES: dict[int, Role] = {
    dialogue_pb2.ROLE_PLAYER: "player",
    dialogue_pb2.ROLE_NPC: "npc",
    dialogue_pb2.ROLE_EVENT: "event",
}


def _role(value: int, field: str) -> Role:
    if value not in _ROLES:
        raise InvalidArgument(field, "must be ROLE_PLAYER, ROLE_NPC or ROLE_EVENT")
    return _ROLES[value]


def turns_from_proto(turns: list[dialogue_pb2.Turn], field: str) -> list[Turn]:
    return [Turn(_role(t.role, f"{field}[{i}].role"), t.text, t.interrupted) for i, t in enumerate(turns)]


def request_from_proto(request: dialogue_pb2.GenerateRequest) -> TurnRequest:
    memory, sampling = request.memory, request.sampling

    return TurnRequest(
        persona_id=request.persona_id,
        player_text=request.player_text,
        conversation_id=request.conversation_id,
        memory=MemoryView(
            recent_turns=turns_from_proto(list(memory.recent_turns), "memory.recent_turns"),
            summary=memory.summary,
            player_facts=list(memory.player_facts),
            affinity=memory.relationship.affinity,
            trust=memory.relationship.trust,
            world=dict(request.world),
        ),
        sampling=SamplingOverrides(
            temperature=sampling.temperature if sampling.HasField("temperature") else None,
            top_p=sampling.top_p if sampling.HasField("top_p") else None,
            top_k=sampling.top_k if sampling.HasField("top_k") else None,
            repetition_penalty=sampling.repetition_penalty
            if sampling.HasField("repetition_penalty")
            else None,
            max_tokens=sampling.max_tokens if sampling.HasField("max_tokens") else None,
            seed=sampling.seed if sampling.HasField("seed") else None,
            stop=tuple(sampling.stop),
        ),
        player_name=request.player_name,
        first_clause=request.first_clause,
        cue=request.cue,
        prefill_only=request.prefill_only,
    )


def summary_request_from_proto(request: dialogue_pb2.SummarizeRequest) -> SummaryRequest:
    # The count is checked before any turn is read, so a request with too many turns hears that first,
    # whatever its turns hold.
    if not request.turns:
        raise InvalidArgument("turns", "must hold at least one turn")
    if len(request.turns) > MAX_SUMMARIZE_TURNS:
        raise InvalidArgument("turns", f"at most {MAX_SUMMARIZE_TURNS} turns")
    turns = turns_from_proto(list(request.turns), "turns")
    return SummaryRequest(request.persona_id, request.previous_summary, turns)


def summary_response_to_proto(summary: str, player_facts: list[str]) -> dialogue_pb2.SummarizeResponse:
    return dialogue_pb2.SummarizeResponse(summary=summary, player_facts=player_facts)


def output_to_proto(output: ReplyOutput) -> dialogue_pb2.GenerateResponse:
    if isinstance(output, GenerationSummary):
        return summary_to_proto(output)
    return event_to_proto(output)


def event_to_proto(event: ReplyEvent) -> dialogue_pb2.GenerateResponse:
    if isinstance(event, TextDelta):
        return dialogue_pb2.GenerateResponse(delta=dialogue_pb2.TextDelta(text=event.text))
    if isinstance(event, Sentence):
        return dialogue_pb2.GenerateResponse(
            sentence=dialogue_pb2.Sentence(index=event.index, text=event.text)
        )
    if isinstance(event, Emotion):
        return dialogue_pb2.GenerateResponse(
            emotion=dialogue_pb2.EmotionEvent(emotion=event.emotion, intensity=event.intensity)
        )
    assert isinstance(event, Action)
    return dialogue_pb2.GenerateResponse(
        action=dialogue_pb2.ActionEvent(name=event.name, parameters=event.parameters)
    )


def summary_to_proto(summary: GenerationSummary) -> dialogue_pb2.GenerateResponse:
    return dialogue_pb2.GenerateResponse(
        summary=dialogue_pb2.GenerationSummary(
            text=summary.text,
            finish_reason=dialogue_pb2.FINISH_REASON_LENGTH
            if summary.finish_reason == FINISH_LENGTH
            else dialogue_pb2.FINISH_REASON_STOP,
            prompt_tokens=summary.prompt_tokens,
            cached_prompt_tokens=summary.cached_prompt_tokens,
            completion_tokens=summary.completion_tokens,
            time_to_first_token_seconds=summary.time_to_first_token_s,
            total_seconds=summary.total_s,
            decode_tokens_per_second=summary.decode_tokens_per_s,
            dropped_events=summary.dropped_events,
            execution_provider=summary.execution_provider,
            answered_by=summary.answered_by,
            escalation=list(summary.escalation),
            remote_tokens=summary.remote_tokens,
            remote_failure=summary.remote_failure,
            confidence=summary.confidence,
        )
    )
