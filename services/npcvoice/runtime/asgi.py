"""An ASGI app (the dialogue's OpenAI endpoint, the playground, the WebSocket edge) under uvicorn in the
running event loop, beside a gRPC server or in a test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def start_asgi(app: Any, host: str, port: int, **settings: Any) -> Callable[[], Awaitable[None]]:
    """Serve ``app`` on ``host:port`` (uvicorn ``settings`` besides); returns once it listens, with what
    stops it. An error starting it (the port is taken) is raised here."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, **{"log_level": "warning", **settings})
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # its own error
            raise RuntimeError(f"nothing listens on {host}:{port}")
        await asyncio.sleep(0.02)

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop
