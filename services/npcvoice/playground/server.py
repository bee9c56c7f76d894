"""The playground's ASGI app: the page, a small JSON API over persona files, memory and test scripts, and
the suite's public WebSocket endpoint for the conversation (``/v1/converse``, npcvoice.edge: the page
speaks its JSON subprotocol, as a web game would), calling the gateway with the playground's key.

The app only adapts: persona files are personas.py's, scripts evals.py's, protobuf convert.py's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.client import NpcClient
from npcvoice.edge import app as edge
from npcvoice.personas.schema import json_schema
from npcvoice.playground import convert, evals
from npcvoice.playground.options import PlaygroundOptions
from npcvoice.playground.personas import PersonaFiles
from npcvoice.runtime.asgi import start_asgi
from npcvoice.runtime.errors import InvalidArgument, NotFound, ServiceError

log = logging.getLogger("npcvoice.playground")

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1024 * 1024
EDGE_QUEUE = 32  # requests of a conversation waiting for the gateway (the edge's default)
# gRPC statuses as the HTTP statuses the page shows; anything else is the gateway failing (502).
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 502,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def _hostname(host: str) -> str:
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


class SameOrigin:
    """Refuses requests that change something (and WebSockets) sent by another site's page: the
    playground edits files on this machine, and a page elsewhere in the same browser could reach it.
    Served on loopback, it also answers only to loopback names: a site whose name was made to point at
    127.0.0.1 (DNS rebinding) would otherwise be its own origin."""

    def __init__(self, app: ASGIApp, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    def refused(self, scope: Scope) -> str | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin, host = headers.get("origin"), headers.get("host", "")
        if self.loopback_only and _hostname(host) not in LOOPBACK_NAMES:
            return f"host {host!r} refused: the playground answers to 127.0.0.1 or localhost"
        changes = scope["type"] == "websocket" or scope.get("method") not in ("GET", "HEAD")
        if changes and origin is not None and origin.split("://", 1)[-1] != host:
            return "cross-origin request refused"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self.refused(scope) if scope["type"] in ("http", "websocket") else None
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await JSONResponse({"error": problem}, 403)(scope, receive, send)


class Playground:
    """What the routes share: the options, the persona files and one client of the gateway."""

    def __init__(self, options: PlaygroundOptions) -> None:
        self.options = options
        self.personas = PersonaFiles(options.persona_dir)
        self._client: NpcClient | None = None
        self.metadata = [("x-api-key", options.api_key)] if options.api_key else []

    @property
    def client(self) -> NpcClient:
        # Made on first use, inside the server's event loop (a grpc.aio channel belongs to its loop).
        if self._client is None:
            self._client = NpcClient(self.options.gateway, self.options.api_key or None)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.client.stub, method)(request, metadata=self.metadata)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgument("body", f"at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidArgument("body", f"not JSON: {error}") from error


def _text(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise InvalidArgument("text", "send {'text': the persona's YAML}")
    return str(body["text"])


def routes(playground: Playground) -> list[Any]:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def settings(request: Request) -> Response:
        options = playground.options
        return JSONResponse({"player_id": options.player_id, "gateway": options.gateway})

    async def npcs(request: Request) -> Response:
        listed = await playground.call("ListNpcs", conversation_pb2.ListNpcsRequest())
        return JSONResponse({"npcs": [convert.to_dict(npc) for npc in listed.npcs]})

    async def schema(request: Request) -> Response:
        return JSONResponse(json_schema())

    async def persona(request: Request) -> Response:
        npc_id = request.path_params["npc_id"]
        if request.method == "GET":
            return JSONResponse({"npc_id": npc_id, "text": playground.personas.read(npc_id)})
        problems = playground.personas.save(npc_id, _text(await _body(request)))
        return JSONResponse({"saved": not problems, "problems": problems}, 200 if not problems else 422)

    async def check(request: Request) -> Response:
        npc_id = request.path_params["npc_id"]
        return JSONResponse({"problems": playground.personas.check(npc_id, _text(await _body(request)))})

    async def memory(request: Request) -> Response:
        npc_id, player_id = request.path_params["npc_id"], request.path_params["player_id"]
        if request.method == "DELETE":
            reset = conversation_pb2.ResetMemoryRequest(npc_id=npc_id, player_id=player_id)
            await playground.call("ResetMemory", reset)
        elif request.method == "PUT":
            snapshot = convert.snapshot_from_dict(await _body(request))
            snapshot.npc_id, snapshot.player_id = npc_id, player_id  # imported as this NPC's, this player's
            await playground.call("ImportMemory", conversation_pb2.ImportMemoryRequest(snapshot=snapshot))
        export = conversation_pb2.ExportMemoryRequest(npc_id=npc_id, player_id=player_id)
        exported = await playground.call("ExportMemory", export)
        return JSONResponse(convert.snapshot_to_dict(exported.snapshot))

    async def scripts(request: Request) -> Response:
        npc_id = request.path_params["npc_id"]
        if request.method == "GET":
            found, errors = evals.scripts_for(playground.options.scripts_dir, npc_id)
            return JSONResponse({"scripts": [path.name for path, _ in found], "errors": errors})
        results = await evals.run_scripts(playground.options.scripts_dir, npc_id, playground.client)
        return JSONResponse(results)

    async def converse(websocket: WebSocket) -> None:  # (SameOrigin has refused other sites' pages)
        await edge.relay(websocket, playground.client.stub, EDGE_QUEUE, playground.options.api_key or "")

    return [
        Route("/", index),
        Route("/api/settings", settings),
        Route("/api/npcs", npcs),
        Route("/api/schema", schema),
        Route("/api/personas/{npc_id}", persona, methods=["GET", "PUT"]),
        Route("/api/personas/{npc_id}/check", check, methods=["POST"]),
        Route("/api/memory/{npc_id}/{player_id}", memory, methods=["GET", "PUT", "DELETE"]),
        Route("/api/scripts/{npc_id}", scripts, methods=["GET", "POST"]),
        WebSocketRoute(edge.PATH, converse),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]


def _error_handlers() -> dict[Any, Callable[[Request, Any], Awaitable[Response]]]:
    async def service_error(request: Request, error: Any) -> Response:
        status = 404 if isinstance(error, NotFound) else 400
        return JSONResponse({"error": error.message}, status)

    async def gateway_error(request: Request, error: Any) -> Response:
        code = error.code()
        status = HTTP_STATUS.get(code, 502)
        return JSONResponse({"error": f"gateway: {code.name}: {error.details()}"}, status)

    return {ServiceError: service_error, grpc.aio.AioRpcError: gateway_error}


def create_app(options: PlaygroundOptions) -> Starlette:
    playground = Playground(options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await playground.close()

    return Starlette(
        routes=routes(playground),
        middleware=[Middleware(SameOrigin, loopback_only=options.host in LOOPBACK_NAMES)],
        exception_handlers=_error_handlers(),
        lifespan=lifespan,
    )


@asynccontextmanager
async def serving(options: PlaygroundOptions, **uvicorn_settings: Any) -> AsyncIterator[str]:
    """The playground under uvicorn in the running event loop (tests, benchmarks); yields its address."""
    stop = await start_asgi(create_app(options), options.host, options.port, **uvicorn_settings)
    try:
        yield f"http://{options.host}:{options.port}"
    finally:
        await stop()
