"""Start, serve and stop one service: a grpc.aio server with the runtime interceptor, the standard health
service (a status per service name), reflection, TLS/mTLS, keepalive and size limits, a Prometheus
endpoint, and graceful shutdown on SIGTERM/SIGINT (health NOT_SERVING first, then stop with grace)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.interceptor import RuntimeInterceptor
from npcvoice.runtime.ports import listen_problem

log = logging.getLogger("npcvoice.server")

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

# What servicer methods receive as their context.
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Cleanup = Callable[[], Awaitable[None]]
# The standard health servicer; a service may report extra names on it (e.g. a degraded dependency).
Health: TypeAlias = health.aio.HealthServicer
# Adds the service's servicers to the server (loading models as needed) and returns its cleanup. It gets
# the server, its engine options, the health servicer and the server settings (for calls it makes to
# other services: runtime.channels).
Registrar = Callable[[grpc.aio.Server, dict[str, Any], Health, ServerSettings], Awaitable[Cleanup | None]]


class StartupError(RuntimeError):
    """The service cannot start as configured. The message is one line: the cause, then the fix."""


def port_problem(service: str, setting: str, host: str, port: int, problem: object) -> StartupError:
    flag = "--" + setting.replace("_", "-")
    env = f"NPCVOICE_{service.upper()}_{setting.upper()}"
    return StartupError(
        f"{problem}; stop what holds it, or give {service} another {setting} "
        f"({flag}, `{setting}:` in its section of the config file, or {env})"
    )


@dataclass(frozen=True)
class Registration:
    """What a service module hands the runtime."""

    grpc_service: str  # full proto name, also the health-check service name
    register: Registrar


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC sets SO_REUSEPORT by default, so a second server on a port in use would share it (and its
        # calls) with the first instead of failing: a leftover suite would answer for the new one.
        ("grpc.so_reuseport", 0),
    ]
    if settings.max_connection_age_s:
        options.append(("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)))
        if settings.max_connection_age_grace_s is not None:
            options.append(
                ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000))
            )
    return options


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class ServiceHost:
    """One running service. ``start`` loads the engine, binds and reports SERVING; ``stop`` drains and
    closes."""

    def __init__(
        self,
        name: str,
        registration: Registration,
        settings: ServerSettings,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.registration = registration
        self.settings = settings
        self.engine_options = dict(engine_options or {})
        self.interceptor = RuntimeInterceptor(
            name, api_keys=settings.api_keys, max_concurrent_rpcs=settings.max_concurrent_rpcs
        )
        self.health = health.aio.HealthServicer()
        self.port = 0
        self.started = False  # True once SERVING: a failure before that is a failure to start
        self._server: grpc.aio.Server | None = None
        self._cleanup: Cleanup | None = None
        self._metrics_server: Any = None

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> None:
        settings = self.settings
        self._check_ports_free()
        server = grpc.aio.server(interceptors=[self.interceptor], options=server_options(settings))
        self._server = server
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        # grpc.aio takes handlers only before start, so the engine loads before the port opens;
        # until then an orchestrator's health probe sees the port closed, i.e. not ready.
        self._cleanup = await self.registration.register(
            server, self.engine_options, self.health, self.settings
        )
        reflection.enable_server_reflection(
            (self.registration.grpc_service, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        credentials = server_credentials(settings)
        self.port = self._bind(server, credentials)
        # Before the gRPC server starts, so that a metrics port taken meanwhile leaves nothing running.
        self._start_metrics()
        await server.start()
        for service_name in ("", self.registration.grpc_service):
            await self.health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        self.started = True
        log.info(
            "%s is SERVING on %s (%s)",
            self.name,
            self.address,
            "tls" if credentials else "plaintext",
            extra={"port": self.port, "tls": credentials is not None},
        )

    def _check_ports_free(self) -> None:
        """Fail before the engine loads (seconds, for a model) when a configured port is taken."""
        host = self.settings.host
        for setting, port in (("port", self.settings.port), ("metrics_port", self.settings.metrics_port)):
            problem = listen_problem(host, port) if port else None
            if problem:
                raise port_problem(self.name, setting, host, port, problem)

    def _bind(self, server: grpc.aio.Server, credentials: grpc.ServerCredentials | None) -> int:
        host, port = self.settings.host, self.settings.port
        address = f"{host}:{port}"
        try:
            bound: int = (
                server.add_secure_port(address, credentials)
                if credentials
                else server.add_insecure_port(address)
            )
        except RuntimeError:  # grpc says only "Failed to bind"; the check names the reason if it can
            bound = 0
        if bound == 0:
            problem = listen_problem(host, port) or f"could not listen on {address}"
            raise port_problem(self.name, "port", host, port, problem)
        return bound

    def _start_metrics(self) -> None:
        settings = self.settings
        if not settings.metrics_port:
            return
        from prometheus_client import start_http_server

        try:
            self._metrics_server = start_http_server(settings.metrics_port, addr=settings.host)
        except OSError as exc:
            host, port = settings.host, settings.metrics_port
            problem = listen_problem(host, port) or f"cannot listen on {host}:{port}: {exc.strerror}"
            raise port_problem(self.name, "metrics_port", host, port, problem) from exc

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, refuse new calls, give in-flight calls ``grace`` seconds, then close."""
        if self._server is None:
            return
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info(
            "shutting down: draining in-flight calls for up to %.1f s",
            grace,
            extra={"in_flight": self.interceptor.in_flight},
        )
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
        if self._cleanup is not None:
            await self._cleanup()
        if self._metrics_server is not None:
            self._metrics_server[0].shutdown()
        self._server = None
        log.info("stopped")

    async def serve_until_signalled(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, requested.set)
        await self.start()
        await requested.wait()
        await self.stop()
