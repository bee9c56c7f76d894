"""What a failed call told its client, for tests of error statuses in every service."""

from __future__ import annotations

import grpc
import pytest


async def status_of(call) -> tuple[grpc.StatusCode, str]:
    """Status code and details of a call (unary or streaming) that is expected to fail."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    return caught.value.code(), caught.value.details() or ""
