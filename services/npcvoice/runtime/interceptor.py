"""The one server interceptor: request ids, API-key auth, the concurrency limit, latency metrics and the
mapping of exceptions to gRPC statuses, applied around every RPC a service handles.

Health checks are exempt from auth and the concurrency limit, so orchestrators can always probe.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc

from npcvoice.runtime import errors
from npcvoice.runtime.logs import request_id_var
from npcvoice.runtime.metrics import RPC_IN_FLIGHT, RPC_LATENCY, RPC_REJECTED

log = logging.getLogger("npcvoice.rpc")

UNGUARDED_PREFIXES = ("/grpc.health.v1.Health/",)
REQUEST_ID_KEY = "x-request-id"
API_KEY_KEY = "x-api-key"

_STATUS_FOR_ERROR: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}
_DOWNSTREAM_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def status_for(error: errors.ServiceError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in _STATUS_FOR_ERROR:
            return _STATUS_FOR_ERROR[kind]
    return grpc.StatusCode.UNKNOWN


def _metadata_value(metadata: Sequence[tuple[str, Any]] | None, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return None


def _presented_key(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    authorization = _metadata_value(metadata, "authorization")
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return _metadata_value(metadata, API_KEY_KEY)


def api_key_problem(api_keys: Sequence[bytes], metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """What is wrong with the API key ``metadata`` (gRPC metadata or HTTP headers, lower-case names)
    carries, if ``api_keys`` are required; None when nothing is."""
    if not api_keys:
        return None
    presented = _presented_key(metadata)
    if presented is None:
        return "missing API key: send metadata 'authorization: Bearer <key>' or 'x-api-key: <key>'"
    if not any(hmac.compare_digest(presented.encode(), key) for key in api_keys):
        return "invalid API key"
    return None


class RuntimeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, *, api_keys: Sequence[str], max_concurrent_rpcs: int) -> None:
        self._service = service
        self._api_keys = [k.encode() for k in api_keys]
        self._max_concurrent = max_concurrent_rpcs
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(UNGUARDED_PREFIXES):
            return handler
        metadata = handler_call_details.invocation_metadata

        def guard(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return self._guard(method, metadata, context)

        return _wrap_handler(handler, guard)

    def _check_api_key(self, metadata: Sequence[tuple[str, Any]] | None) -> str | None:
        return api_key_problem(self._api_keys, metadata)

    @asynccontextmanager
    async def _guard(
        self,
        method: str,
        metadata: Sequence[tuple[str, Any]] | None,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[None]:
        request_id = _metadata_value(metadata, REQUEST_ID_KEY) or uuid.uuid4().hex[:16]
        # Each RPC runs in its own task, so the id set here never leaks into another call's logs.
        request_id_var.set(request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        admitted = False
        try:
            auth_problem = self._check_api_key(metadata)
            if auth_problem:
                code = grpc.StatusCode.UNAUTHENTICATED
                RPC_REJECTED.labels(self._service, "unauthenticated").inc()
                await context.abort(code, auth_problem)
            if self._in_flight >= self._max_concurrent:
                code = grpc.StatusCode.RESOURCE_EXHAUSTED
                RPC_REJECTED.labels(self._service, "concurrency").inc()
                await context.abort(
                    code, f"server busy: {self._max_concurrent} calls in flight (max_concurrent_rpcs)"
                )
            admitted = True
            self._in_flight += 1
            RPC_IN_FLIGHT.labels(self._service).inc()
            try:
                yield
            except errors.ServiceError as exc:
                code = status_for(exc)
                await context.abort(code, exc.message)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _DOWNSTREAM_UNAVAILABLE:
                    raise
                code = grpc.StatusCode.UNAVAILABLE
                log.warning("downstream call failed: %s %s", exc.code().name, exc.details())
                await context.abort(code, f"a service this one depends on failed: {exc.details()}")
            code = context.code() or grpc.StatusCode.OK
        except grpc.aio.AbortError:
            if code == grpc.StatusCode.OK:
                code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except NotImplementedError:
            code = grpc.StatusCode.UNIMPLEMENTED
            await context.abort(code, f"{method} is not implemented by this server yet")
        except (asyncio.CancelledError, GeneratorExit):
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", method)
            await context.abort(
                code, f"internal error in {method} (request id {request_id}); the server log has the details"
            )
        finally:
            if admitted:
                self._in_flight -= 1
                RPC_IN_FLIGHT.labels(self._service).dec()
            elapsed = time.perf_counter() - started
            code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            RPC_LATENCY.labels(self._service, method, code_name).observe(elapsed)
            log.info(
                "rpc %s %s %.1f ms",
                method,
                code_name,
                elapsed * 1000.0,
                extra={"method": method, "code": code_name, "duration_ms": round(elapsed * 1000.0, 2)},
            )


def _wrap_handler(handler: grpc.RpcMethodHandler, guard: Callable[[Any], Any]) -> grpc.RpcMethodHandler:
    """Run the handler's behaviour inside ``guard``, whichever of the four call shapes it has."""
    if handler.response_streaming:
        attribute = "stream_stream" if handler.request_streaming else "unary_stream"
    else:
        attribute = "stream_unary" if handler.request_streaming else "unary_unary"
    behaviour = getattr(handler, attribute)

    if inspect.isasyncgenfunction(behaviour):

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with guard(context):
                async for response in behaviour(request, context):
                    yield response

        return handler._replace(**{attribute: streaming})

    async def single(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with guard(context):
            return await behaviour(request, context)

    return handler._replace(**{attribute: single})
