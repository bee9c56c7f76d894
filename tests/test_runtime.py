"""The shared runtime, as any service's client sees it: statuses, auth, limits, request ids and metrics.

The RPCs come from tests/support/probe.py, a test-only service hosted by the real runtime over real gRPC.
"""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npcvoice.runtime.channels import InternalCredentials, internal_channel
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.ports import free_port
from npcvoice.runtime.streams import responses_of
from tests.support import probe
from tests.support.certs import make_certificate
from tests.support.waiting import eventually


async def test_a_handler_exception_becomes_internal_with_a_message_and_no_traceback(hosted):
    service = await hosted("probe", probe.REGISTRATION)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.unary(probe.method("Explode"))(b"x")
    error = caught.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "internal error in /npcvoice.test.Probe/Explode" in error.details()
    assert "request id" in error.details()
    assert "Traceback" not in error.details()
    assert "secret internal detail" not in error.details()


async def test_an_exception_midway_through_a_stream_becomes_internal(hosted):
    service = await hosted("probe", probe.REGISTRATION)
    call = service.unary_stream(probe.method("ExplodeWhileStreaming"))(b"x")
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in call:
            received.append(message)
    assert received == [b"first"]
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in caught.value.details()


async def test_a_domain_error_becomes_its_status_with_the_field_and_limit(hosted):
    service = await hosted("probe", probe.REGISTRATION)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.unary(probe.method("Reject"))(b"x")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "text: must be at most 10 characters, got 42"


async def test_auth_rejects_a_missing_or_wrong_key_and_accepts_a_right_one(hosted):
    service = await hosted("probe", probe.REGISTRATION, api_keys=["k-right", "k-other"])
    echo = service.unary(probe.method("Echo"))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await echo(b"hi")
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing API key" in missing.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await echo(b"hi", metadata=(("authorization", "Bearer k-wrong"),))
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.value.details() == "invalid API key"
    assert await echo(b"hi", metadata=(("authorization", "Bearer k-right"),)) == b"hi"
    assert await echo(b"hi", metadata=(("x-api-key", "k-other"),)) == b"hi"


async def test_health_checks_need_no_key_so_orchestrators_can_probe(hosted):
    service = await hosted("probe", probe.REGISTRATION, api_keys=["k"])
    stub = health_pb2_grpc.HealthStub(service.channel)
    for name in ("", probe.PROBE_SERVICE):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_calls_over_the_concurrency_limit_get_resource_exhausted(hosted):
    service = await hosted("probe", probe.REGISTRATION, max_concurrent_rpcs=1)
    first = asyncio.ensure_future(service.unary(probe.method("Slow"))(b"0.5"))
    await eventually(lambda: service.host.interceptor.in_flight == 1, 5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.unary(probe.method("Echo"))(b"hi")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_concurrent_rpcs" in caught.value.details()
    assert await first == b"finished"
    assert await service.unary(probe.method("Echo"))(b"again") == b"again"


async def test_the_request_id_a_client_sends_comes_back_and_one_is_made_otherwise(hosted):
    service = await hosted("probe", probe.REGISTRATION)
    call = service.unary(probe.method("Echo"))(b"hi", metadata=(("x-request-id", "turn-42"),))
    await call
    assert dict(await call.trailing_metadata())["x-request-id"] == "turn-42"
    call = service.unary(probe.method("Echo"))(b"hi")
    await call
    assert len(dict(await call.trailing_metadata())["x-request-id"]) == 16


async def test_oversized_messages_are_refused_with_resource_exhausted(hosted):
    service = await hosted("probe", probe.REGISTRATION, max_message_bytes=4096)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.unary(probe.method("Echo"))(b"x" * 10_000)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_metrics_endpoint_reports_per_rpc_latency(hosted):
    metrics_port = free_port()
    service = await hosted("probe", probe.REGISTRATION, metrics_port=metrics_port)
    await service.unary(probe.method("Echo"))(b"hi")
    with pytest.raises(grpc.aio.AioRpcError):
        await service.unary(probe.method("Reject"))(b"x")
    page = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    )
    echo_line = (
        'npcvoice_rpc_duration_seconds_count{code="OK",method="/npcvoice.test.Probe/Echo",service="probe"}'
    )
    reject_line = (
        'npcvoice_rpc_duration_seconds_count{code="INVALID_ARGUMENT",'
        'method="/npcvoice.test.Probe/Reject",service="probe"}'
    )
    assert echo_line in page
    assert reject_line in page


async def test_an_internal_channel_carries_the_key_and_the_client_certificate_on_every_call_shape(
    hosted, tmp_path
):
    server_key, server_cert = make_certificate(tmp_path, "server")
    ca_key, ca_cert = make_certificate(tmp_path, "client-ca")
    client_key, client_cert = make_certificate(tmp_path, "client", ca=(ca_key, ca_cert))
    service = await hosted(
        "probe", probe.REGISTRATION, api_keys=["inner-key"],
        tls_cert_file=server_cert, tls_key_file=server_key, tls_client_ca_file=ca_cert,
    )  # fmt: skip
    address = f"localhost:{service.host.port}"
    caller = ServerSettings(
        api_keys=["client-facing-key"], internal_api_key="inner-key", internal_tls_ca_file=server_cert,
        internal_tls_cert_file=client_cert, internal_tls_key_file=client_key,
    )  # fmt: skip
    async with internal_channel(address, InternalCredentials.from_settings(caller)) as channel:
        assert await channel.unary_unary(probe.method("Echo"))(b"inside", timeout=5) == b"inside"
        stream = channel.unary_stream(probe.method("ExplodeWhileStreaming"))(b"", timeout=5)
        assert await anext(aiter(stream)) == b"first"  # a streaming call is let in too
        stream.cancel()

    wrong_key = InternalCredentials.from_settings(caller.model_copy(update={"internal_api_key": "guess"}))
    async with internal_channel(address, wrong_key) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(probe.method("Echo"))(b"x", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("method", "key", "status"),
    [
        ("EchoStream", "k-wrong", grpc.StatusCode.UNAUTHENTICATED),
        ("RejectStream", "k-right", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_a_stream_refused_while_its_client_writes_ends_with_the_status_the_server_sent(
    hosted, method, key, status
):
    # grpc aio alone turns most of these into INTERNAL "Internal error from Core" (a request's write fails
    # as the server ends the call); the suite's clients (the edge, the gateway, npcvoice.client) read their
    # streams through responses_of, which keeps what the server said.
    service = await hosted("probe", probe.REGISTRATION, api_keys=["k-right"])
    stream = service.channel.stream_stream(probe.method(method))

    async def outgoing():  # the client writes as fast as it can, as a game streaming audio does
        for _ in range(40):
            yield b"x" * 200

    for _ in range(30):
        call = stream(outgoing(), metadata=(("authorization", f"Bearer {key}"),))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in responses_of(call):
                pass
        assert caught.value.code() == status, caught.value.details()


def test_without_an_internal_key_a_service_calls_with_its_own_first_key():
    settings = ServerSettings(api_keys=["change-me", "other"])
    assert InternalCredentials.from_settings(settings).api_key == "change-me"
    assert InternalCredentials.from_settings(ServerSettings()).api_key == ""
