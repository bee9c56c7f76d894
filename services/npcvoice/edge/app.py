"""``/v1/converse``: the gateway's ``Converse`` stream over a WebSocket, for engines and pages that cannot
speak gRPC (Unity's IL2CPP and WebGL builds, browsers). It carries the same messages, one per frame:

- **Frames.** Binary frames hold one serialized ``ConverseRequest`` (client to edge) or
  ``ConverseResponse`` (edge to client): subprotocol ``npcvoice.v1.proto``, the default. With the
  subprotocol ``npcvoice.v1.json`` they are text frames holding the same messages in protobuf's JSON
  mapping (field names as in the .proto, bytes as base64, enums by name, 64-bit integers as strings;
  responses carry every field, zeros and empty strings too). The playground's page speaks this.
- **End of input.** An empty frame (a ``ConverseRequest`` with nothing set: zero bytes, or ``{}`` as JSON)
  says the client has nothing more to send, as gRPC's half-close does: the gateway finishes the turn in
  progress, its responses still arrive, and the edge then closes with 1000. (Closing the socket ends
  the input too, but the turn's responses then have nowhere to go.)
- **Keys.** The suite's API keys, as ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` on the upgrade
  request, or, for clients that cannot set headers (a browser), a first text frame ``{"api_key": "<key>"}``.
  The edge passes the key on; the gateway checks it (a wrong or missing one closes with 4016).
- **Origins.** An upgrade request from a page (it has an ``Origin`` header) whose origin is not in
  ``origins`` is refused (HTTP 403): another site's page cannot talk to the NPCs with what the browser holds.
- **Close codes.** 1000 the conversation ended; 1003 a text frame in the binary protocol (other than the
  key); 1007 a frame that is not a ``ConverseRequest``; 1009 a frame over ``max_frame_bytes``; 1011 the edge
  failed; 4000 + the gRPC status code for the gateway's error, its message the reason (4003
  INVALID_ARGUMENT, 4005 NOT_FOUND, 4008 RESOURCE_EXHAUSTED, 4014 UNAVAILABLE: the gateway is down or
  closed, 4016 UNAUTHENTICATED).
- **Back-pressure.** At most ``queue`` requests wait for the gateway; past that the edge stops reading the
  socket, and TCP pushes back on the client. What the gateway sends waits for the socket to take it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.runtime.channels import InternalCredentials, internal_channel
from npcvoice.runtime.streams import responses_of

PATH = "/v1/converse"
PROTO, JSON = "npcvoice.v1.proto", "npcvoice.v1.json"
NORMAL, UNSUPPORTED, BAD_DATA, POLICY, TOO_BIG, INTERNAL = 1000, 1003, 1007, 1008, 1009, 1011
GRPC_BASE = 4000  # + the gRPC status code
MAX_REASON_BYTES = 123  # a close frame's reason (RFC 6455)


class EdgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway: str = Field("127.0.0.1:50050", description="The conversation gateway's gRPC address.")
    origins: list[str] = Field(
        default_factory=list,
        description="Pages (scheme://host:port) allowed to connect; a client without an Origin header "
        "(a game) always may.",
    )
    max_frame_bytes: int = Field(1024 * 1024, ge=1024, description="Largest frame a client may send.")
    queue: int = Field(
        32, ge=1, description="Requests waiting for the gateway before the edge stops reading."
    )
    gateway_tls_ca_file: str = Field("", description="CA of the gateway's certificate; turns TLS on.")
    gateway_tls_server_name: str = Field(
        "", description="The name in the gateway's certificate, if not its host."
    )


def create_app(options: EdgeOptions) -> Starlette:
    ca_file = Path(options.gateway_tls_ca_file) if options.gateway_tls_ca_file else None
    credentials = InternalCredentials(ca_file=ca_file, server_name=options.gateway_tls_server_name)
    channel: grpc.aio.Channel | None = None

    def stub() -> conversation_pb2_grpc.ConversationServiceStub:
        nonlocal channel
        if channel is None:  # made in the server's event loop, on the first conversation
            channel = internal_channel(options.gateway, credentials)
        return conversation_pb2_grpc.ConversationServiceStub(channel)

    async def converse(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if origin is not None and origin not in options.origins:
            await websocket.close(POLICY)  # before accepting: the client sees HTTP 403
            return
        await relay(websocket, stub(), options.queue)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")  # the edge itself; the gateway's health is its own

    return Starlette(routes=[WebSocketRoute(PATH, converse), Route("/healthz", healthz)])


async def relay(
    websocket: WebSocket, stub: conversation_pb2_grpc.ConversationServiceStub, queue: int, key: str = ""
) -> None:
    """Accepts ``websocket`` (its origin already checked) in the subprotocol it offers and relays its
    conversation to the gateway until either side ends it. ``key``: the API key to call the gateway with when
    the client sends none (a server that holds the key for its pages: the playground)."""
    offered = websocket.scope.get("subprotocols") or []
    mode = JSON if JSON in offered else PROTO
    await websocket.accept(subprotocol=mode if mode in offered else None)
    await Relay(websocket, stub, mode, queue, key).run()


class Relay:
    """One conversation: the client's frames to the gateway's stream, and its responses back."""

    def __init__(
        self,
        websocket: WebSocket,
        stub: conversation_pb2_grpc.ConversationServiceStub,
        mode: str,
        queue: int,
        key: str = "",
    ) -> None:
        self._websocket, self._stub, self._mode, self._key = websocket, stub, mode, key
        self._requests: asyncio.Queue[conversation_pb2.ConverseRequest | None] = asyncio.Queue(queue)
        self._closed = False

    async def _outgoing(self) -> Any:
        while (request := await self._requests.get()) is not None:
            yield request

    async def run(self) -> None:
        headers = self._websocket.headers
        key = headers.get("x-api-key") or _bearer(headers.get("authorization", "")) or self._key
        first: conversation_pb2.ConverseRequest | None = None
        if not key:  # a client that cannot set headers may send its key first
            try:
                key, first = await self._key_frame()
            except _Refused as refused:
                await self._close(refused.code, refused.reason)
                return
            except WebSocketDisconnect:
                return
        if first is not None:
            self._requests.put_nowait(first)
        metadata = [("authorization", f"Bearer {key}")] if key else []
        call = self._stub.Converse(self._outgoing(), metadata=metadata)
        reader = asyncio.create_task(self._read(call))
        try:
            async for response in responses_of(call):
                await self._send(response)
            await self._close(NORMAL, "the conversation ended")
        except grpc.aio.AioRpcError as error:
            code = error.code()
            await self._close(GRPC_BASE + code.value[0], error.details() or code.name)
        except asyncio.CancelledError:
            if not self._closed:  # not the reader stopping the call after a bad frame
                raise
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away while a response was on its way
        except Exception:
            await self._close(INTERNAL, "the edge failed")
            raise
        finally:
            reader.cancel()
            call.cancel()

    async def _key_frame(self) -> tuple[str, conversation_pb2.ConverseRequest | None]:
        """The key a first text frame ``{"api_key": ...}`` carries; or no key and that first frame, as
        the first request."""
        message = await self._websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is not None:
            with contextlib.suppress(ValueError):
                document = json.loads(text)
                if isinstance(document, dict) and set(document) == {"api_key"}:
                    return str(document["api_key"]), None
        return "", self._request(message)

    async def _read(self, call: Any) -> None:
        try:
            while True:
                message = await self._websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                request = self._request(message)
                if not request.ByteSize():
                    break  # end of input
                await self._requests.put(request)  # waits while the queue is full
            await self._requests.put(None)  # the client is done: end the stream, as a game would
        except _Refused as refused:
            await self._close(refused.code, refused.reason)
            call.cancel()

    def _request(self, message: Mapping[str, Any]) -> conversation_pb2.ConverseRequest:
        request = conversation_pb2.ConverseRequest()
        if self._mode == PROTO:
            if message.get("bytes") is None:
                raise _Refused(UNSUPPORTED, f"{PROTO} takes binary frames (a serialized ConverseRequest)")
            try:
                request.ParseFromString(message["bytes"])
            except Exception as error:  # protobuf's DecodeError
                raise _Refused(BAD_DATA, "not a ConverseRequest") from error
            return request
        if message.get("text") is None:
            raise _Refused(UNSUPPORTED, f"{JSON} takes text frames (a ConverseRequest as JSON)")
        try:
            json_format.Parse(message["text"], request)
        except json_format.ParseError as error:
            raise _Refused(BAD_DATA, f"not a ConverseRequest: {error}") from error
        return request

    async def _send(self, response: conversation_pb2.ConverseResponse) -> None:
        if self._mode == PROTO:
            await self._websocket.send_bytes(response.SerializeToString())
        else:
            text = json_format.MessageToJson(  # every field, zeros too: a turn_index of 0 is there to read
                response,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
                indent=None,
            )
            await self._websocket.send_text(text)

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self._websocket.close(code, reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore"))


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _bearer(value: str) -> str:
    return value[7:].strip() if value.lower().startswith("bearer ") else ""
