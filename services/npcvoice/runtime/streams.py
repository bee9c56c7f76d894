"""Helpers for client streams.

The contracts' convention: the first message of a client stream, and only the first, is a config
(``open_stream``). A bidirectional call that must keep reading the client while it answers reads in a
background task (``read_in_background``). A client reads a streaming call's responses with
``responses_of``, which keeps the status the server ended it with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import grpc

from npcvoice.runtime.errors import InvalidArgument

M = TypeVar("M", bound=Any)
T = TypeVar("T")


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


@contextlib.asynccontextmanager
async def read_in_background(
    read: Coroutine[Any, Any, None], queue: asyncio.Queue[T | BaseException | None]
) -> AsyncIterator[AsyncIterator[T]]:
    """Run ``read`` in a task while the block sends what it puts on ``queue``.

    ``read`` consumes the client's requests and puts its results on ``queue``. When it returns, None
    marks the end of the queue; if it raises, the exception goes on the queue instead (so ``read`` need
    neither catch its errors nor mark its end, though doing so is harmless). Other tasks may put results,
    or an exception, on the same queue. The block iterates over the queue's items up to the end, and an
    exception found there is raised in the block. Leaving the block (at the end, on an error or because
    the client went away) cancels the reader and waits for it, so that the request stream is no longer
    being read when gRPC closes it.

    A servicer that answers a client stream as it reads it::

        first, requests = await open_stream(request_iterator)
        session = Session(settings_from_proto(first.config))  # session.out: the queue
        async with read_in_background(session.read(requests), session.out) as events:
            async for event in events:
                yield event_to_proto(event)
    """
    reader = asyncio.ensure_future(read)
    reader.add_done_callback(lambda task: _mark_end(task, queue))
    try:
        yield _until_end(queue)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


def _mark_end(reader: asyncio.Future[None], queue: asyncio.Queue[Any]) -> None:
    if not reader.cancelled():
        queue.put_nowait(reader.exception())  # None when the reader finished


async def _until_end(queue: asyncio.Queue[T | BaseException | None]) -> AsyncIterator[T]:
    while (item := await queue.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


# grpc aio's own wording when it fails a call itself (a request's write failed in Core).
CORE_INTERNAL = "Internal error from Core"


async def responses_of(call: Any) -> AsyncIterator[Any]:
    """The responses of the client ``call`` (a grpc aio streaming call); when it ends in an error, the
    status the server sent.

    grpc aio loses that status in one race: a bidirectional call whose request was being written as the
    server ended the call (an interceptor refusing the API key, a config refused after the first request)
    gets its status replaced by INTERNAL "Internal error from Core" when the write then fails. With a
    client writing as it starts, most refused calls came back so (measured: grpc 1.85, 285 of 300). The
    status the server sent is the first one the call is given, so it is kept as it is set."""
    first: list[tuple[Any, str]] = []

    def keep(done: Any) -> None:
        if not first:
            code, details = _settled(done.code()), _settled(done.details())
            if code is not None:
                first.append((code, details or ""))

    call.add_done_callback(keep)
    try:
        async for response in call:
            yield response
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.INTERNAL or error.details() != CORE_INTERNAL or not first:
            raise
        code, details = first[0]
        if code is grpc.StatusCode.INTERNAL:
            raise
        raise grpc.aio.AioRpcError(
            code, error.initial_metadata(), error.trailing_metadata(), details, error.debug_error_string()
        ) from error


def _settled(accessor: Coroutine[Any, Any, T]) -> T | None:
    """What a done call's accessor (``code()``, ``details()``) returns, read at once: on a done call these
    coroutines return without waiting (None if one ever waits)."""
    try:
        accessor.send(None)
    except StopIteration as returned:
        return returned.value  # type: ignore[no-any-return]
    accessor.close()
    return None
