"""The dialogue service's OpenAI-compatible endpoint: any tool that speaks the chat-completions protocol (a
modding tool, Pipecat, a notebook, another npcvoice dialogue service) can use an npcvoice persona as its
model. ``POST /v1/chat/completions`` (streamed as server-sent events, or whole) and ``GET /v1/models``.

- ``model`` is a persona id (``GET /v1/models`` lists them). The persona is the system prompt: ``system``
  and ``developer`` messages are ignored, as a client's own instructions would put words in the NPC's mouth
  that its writer did not.
- The last message is the player's line (a ``user`` message); the earlier ``user`` and ``assistant``
  messages are the conversation so far, as the gateway's memory would give them.
- ``user`` names the conversation: its prompt stays in the model's cache between calls.
- An ``npcvoice`` object in the body (``extra_body`` in the ``openai`` client) carries the rest of a memory:
  ``player_name``, ``summary``, ``player_facts``, ``world``, ``affinity``, ``trust``.
- The reply's content is what the NPC says; its emotions and actions come in an ``npcvoice`` object of the
  response (of the last chunk when streamed).

Errors are OpenAI's shape: 400 naming the field, 401, 404 for an unknown persona, 429 when busy.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.reply import Action, Emotion, TextDelta
from npcvoice.dialogue.scheduler import DialogueScheduler
from npcvoice.dialogue.types import GenerationSummary, SamplingOverrides, TurnRequest
from npcvoice.personas.loader import PersonaStore
from npcvoice.runtime.errors import InvalidArgument, NotFound, ResourceExhausted, ServiceError
from npcvoice.runtime.interceptor import api_key_problem
from npcvoice.turns import Turn

MAX_BODY_BYTES = 1024 * 1024
_ROLES = {"user": "player", "assistant": "npc"}
_STATUS = {InvalidArgument: 400, NotFound: 404, ResourceExhausted: 429}


def _error(
    status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


def _text(content: Any, field: str) -> str:
    """A message's content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise InvalidArgument(field, "must be a string or a list of text parts")


def _number(body: dict[str, Any], name: str, kind: type = float, prefix: str = "") -> Any:
    value = body.get(name)
    if value is None:
        return None
    wrong = isinstance(value, bool) or not isinstance(value, int if kind is int else int | float)
    if wrong:
        raise InvalidArgument(prefix + name, f"must be {'an integer' if kind is int else 'a number'}")
    return kind(value)


def turn_request(body: Any) -> TurnRequest:
    """The chat-completions request ``body`` as a dialogue turn; INVALID_ARGUMENT naming the field."""
    if not isinstance(body, dict):
        raise InvalidArgument("body", "must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgument("model", "must name a persona (GET /v1/models lists them)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidArgument("messages", "must be a non-empty list")
    if body.get("n", 1) != 1:
        raise InvalidArgument("n", "must be 1")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidArgument(f"messages[{i}]", "must be an object with a role")
        role = message["role"]
        if role in ("system", "developer"):
            continue  # the persona is the system prompt
        if role not in _ROLES:
            raise InvalidArgument(f"messages[{i}].role", "must be system, developer, user or assistant")
        turns.append(Turn(_ROLES[role], _text(message.get("content"), f"messages[{i}].content")))  # type: ignore[arg-type]
    if not turns or turns[-1].role != "player":
        raise InvalidArgument("messages", "must end with a user message (the player's line)")
    extra = body.get("npcvoice") or {}
    if not isinstance(extra, dict):
        raise InvalidArgument("npcvoice", "must be an object")
    facts, world = extra.get("player_facts", []), extra.get("world", {})
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise InvalidArgument("npcvoice.player_facts", "must be a list of strings")
    if not isinstance(world, dict) or not all(isinstance(v, str) for v in world.values()):
        raise InvalidArgument("npcvoice.world", "must map names to strings")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise InvalidArgument("stop", "must be a string or a list of at most 4 strings")
    max_tokens = _number(body, "max_completion_tokens", int) or _number(body, "max_tokens", int)
    user = body.get("user", "")
    if not isinstance(user, str):
        raise InvalidArgument("user", "must be a string (it names the conversation)")
    return TurnRequest(
        persona_id=model,
        player_text=turns[-1].text,
        conversation_id=user,
        memory=MemoryView(
            recent_turns=turns[:-1],
            summary=str(extra.get("summary", "")),
            player_facts=list(facts),
            affinity=_number(extra, "affinity", prefix="npcvoice.") or 0.0,
            trust=_number(extra, "trust", prefix="npcvoice.") or 0.0,
            world=dict(world),
        ),
        sampling=SamplingOverrides(
            temperature=_number(body, "temperature"),
            top_p=_number(body, "top_p"),
            max_tokens=max_tokens,
            seed=_number(body, "seed", int),
            stop=tuple(stop),
        ),
        player_name=str(extra.get("player_name", "")),
    )


def create_app(
    scheduler: DialogueScheduler, personas: PersonaStore, api_keys: Sequence[str] = ()
) -> Starlette:
    keys = [key.encode() for key in api_keys]

    def refused(request: Request) -> Response | None:
        problem = api_key_problem(keys, [(k.lower(), v) for k, v in request.headers.items()])
        return _error(401, problem, kind="authentication_error") if problem else None

    async def models(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        listed = [
            {"id": p.id, "object": "model", "created": 0, "owned_by": "npcvoice"} for p in personas.all()
        ]
        return JSONResponse({"object": "list", "data": listed})

    async def completions(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
            turn = turn_request(body)
            outputs = scheduler.generate(turn)
            first = await anext(outputs)  # errors of the request (validation, unknown persona, busy) now
        except json.JSONDecodeError:
            return _error(400, "the body is not JSON")
        except InvalidArgument as error:
            return _error(400, error.message, error.field)
        except ServiceError as error:
            status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 500)
            return _error(status, error.message, "model" if status == 404 else None)
        reply = Reply(turn.persona_id, first, outputs)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(reply.chunks(usage), media_type="text/event-stream")
        try:
            return JSONResponse(await reply.whole())
        except ServiceError as error:
            return _error(500, error.message, kind="server_error")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


class Reply:
    """A reply being generated, written as the chat-completions protocol has it."""

    def __init__(self, model: str, first: Any, rest: AsyncIterator[Any]) -> None:
        self._model = model
        self._first, self._rest = first, rest
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.emotions: list[str] = []
        self.actions: list[dict[str, Any]] = []
        self.summary: GenerationSummary | None = None

    async def _texts(self) -> AsyncIterator[str]:
        """The reply's text as it is released (its emotions, actions and summary collected meanwhile)."""
        async with aclosing(self._rest) as rest:  # type: ignore[type-var]
            output = self._first
            while True:
                if isinstance(output, TextDelta):
                    yield output.text
                elif isinstance(output, Emotion):
                    self.emotions.append(output.emotion)
                elif isinstance(output, Action):
                    self.actions.append({"name": output.name, "parameters": output.parameters})
                elif isinstance(output, GenerationSummary):
                    self.summary = output
                try:
                    output = await anext(rest)
                except StopAsyncIteration:
                    return

    def _extras(self) -> dict[str, Any]:
        s = self.summary
        extras: dict[str, Any] = {"emotions": self.emotions, "actions": self.actions}
        if s is not None:
            extras |= {"answered_by": s.answered_by, "escalation": list(s.escalation)}
        return extras

    def _usage(self) -> dict[str, int]:
        s = self.summary
        prompt, completion = (s.prompt_tokens, s.completion_tokens) if s else (0, 0)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _finish(self) -> str:
        return self.summary.finish_reason if self.summary else "stop"

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **more: Any) -> str:
        """One server-sent event; with no ``delta``, a chunk without choices (the usage chunk)."""
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "choices": choices,
            **more,
        }
        return f"data: {json.dumps(chunk)}\n\n"

    async def chunks(self, usage: bool) -> AsyncIterator[str]:
        yield self._chunk({"role": "assistant", "content": ""})
        try:
            async for text in self._texts():
                yield self._chunk({"content": text})
        except ServiceError as error:  # after the response began: said in the stream, as OpenAI does
            yield f"data: {json.dumps({'error': {'message': error.message, 'type': 'server_error'}})}\n\n"
            return
        yield self._chunk({}, self._finish(), npcvoice=self._extras())
        if usage:
            yield self._chunk(None, usage=self._usage())
        yield "data: [DONE]\n\n"

    async def whole(self) -> dict[str, Any]:
        text = "".join([t async for t in self._texts()])
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self._model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": self._finish(),
                }
            ],
            "usage": self._usage(),
            "npcvoice": self._extras(),
        }
