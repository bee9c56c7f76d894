"""The contracts' convention for client streams: the first message, and only the first, is a config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from npcvoice.runtime.errors import InvalidArgument

M = TypeVar("M", bound=Any)


async def open_stream(requests: AsyncIterator[M], config_field: str = "config") -> tuple[M, AsyncIterator[M]]:
    """The stream's config message, and the messages after it (none of which may be a config)."""
    first = await anext(aiter(requests), None)
    if first is None or not first.HasField(config_field):
        raise InvalidArgument(config_field, "the first message of the stream must be a config")
    return first, _after_config(requests, config_field)


async def _after_config(requests: AsyncIterator[M], config_field: str) -> AsyncIterator[M]:
    async for request in requests:
        if request.HasField(config_field):
            raise InvalidArgument(config_field, "only the first message of the stream may be a config")
        yield request
