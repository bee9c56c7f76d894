"""The WebSocket edge (npcvoice.edge) in front of a test's gateway, under uvicorn on loopback."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from npcvoice.edge.app import PATH, EdgeOptions, create_app
from npcvoice.runtime.asgi import start_asgi
from npcvoice.runtime.ports import free_port

PAGE = "http://127.0.0.1:8080"  # the one page origin the edge allows
MAX_FRAME = 64 * 1024


async def edge_for(gateway: Any) -> AsyncGenerator[str]:
    """Yields the edge's ``ws://`` URL for ``gateway``; stops it after."""
    port = free_port()
    options = EdgeOptions(gateway=gateway.host.address, origins=[PAGE], max_frame_bytes=MAX_FRAME)
    stop = await start_asgi(create_app(options), "127.0.0.1", port, ws_max_size=MAX_FRAME, log_config=None)
    try:
        yield f"ws://127.0.0.1:{port}{PATH}"
    finally:
        await stop()
