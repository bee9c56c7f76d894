"""A test-only service with RPCs that succeed, fail and take their time, served through the real runtime.

It exists to test what the runtime does around any handler (errors, auth, limits, shutdown); it is not a
stand-in for one of the suite's services. Run as a script it serves until SIGTERM, for shutdown tests.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from npcvoice.runtime import errors
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.logs import configure_logging
from npcvoice.runtime.server import Cleanup, Health, Registration, ServiceHost

PROBE_SERVICE = "npcvoice.test.Probe"


async def echo(request: bytes, context: Any) -> bytes:
    return request


_running = {"Slow": 0}


async def slow(request: bytes, context: Any) -> bytes:
    _running["Slow"] += 1
    try:
        await asyncio.sleep(float(request.decode() or "1"))
    finally:
        _running["Slow"] -= 1
    return b"finished"


async def running(request: bytes, context: Any) -> bytes:
    """How many Slow calls are in progress (so a test waits for one to start instead of sleeping)."""
    return str(_running["Slow"]).encode()


async def explode(request: bytes, context: Any) -> bytes:
    raise KeyError("secret internal detail")


async def reject(request: bytes, context: Any) -> bytes:
    raise errors.InvalidArgument("text", "must be at most 10 characters, got 42")


async def explode_while_streaming(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise RuntimeError("secret internal detail")


async def echo_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


async def reject_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    """Refuses the stream once its first message has come, while its client may still be writing."""
    await anext(aiter(requests))
    raise errors.InvalidArgument("config", "the first message of the stream must be a config")
    yield b""  # an async generator: it never gets here


def _unary(behaviour: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(behaviour)


async def register(
    server: grpc.aio.Server, options: dict[str, Any], health: Health, settings: ServerSettings
) -> Cleanup | None:
    handlers = {
        "Echo": _unary(echo),
        "Slow": _unary(slow),
        "Running": _unary(running),
        "Explode": _unary(explode),
        "Reject": _unary(reject),
        "ExplodeWhileStreaming": grpc.unary_stream_rpc_method_handler(explode_while_streaming),
        "EchoStream": grpc.stream_stream_rpc_method_handler(echo_stream),
        "RejectStream": grpc.stream_stream_rpc_method_handler(reject_stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(PROBE_SERVICE, handlers),))
    return None


REGISTRATION = Registration(grpc_service=PROBE_SERVICE, register=register)


def method(name: str) -> str:
    return f"/{PROBE_SERVICE}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging("probe", "info", "json")
    settings = ServerSettings(port=args.port, shutdown_grace_s=args.grace)
    asyncio.run(ServiceHost("probe", REGISTRATION, settings).serve_until_signalled())


if __name__ == "__main__":
    main()
