"""Channels from one service of the suite to another (the gateway to speech, dialogue, voice and face):
the internal hop carries an API key and, when configured, TLS or mutual TLS, so that a suite secured with
``api_keys`` and certificates still talks to itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.interceptor import API_KEY_KEY


@dataclass(frozen=True)
class InternalCredentials:
    """What a service presents when it calls another service of the suite."""

    api_key: str = ""
    ca_file: Path | None = None  # the CA that signed the other services' certificates; turns TLS on
    cert_file: Path | None = None  # this service's client certificate, for services that require mTLS
    key_file: Path | None = None
    server_name: str = ""  # the name to expect in the other services' certificates, if not their host

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> InternalCredentials:
        """The ``internal_*`` settings; with no internal key, the service's own first API key (a suite
        that shares one key, as in ``defaults: api_keys: [...]``, needs nothing more)."""
        return cls(
            api_key=settings.internal_api_key or (settings.api_keys[0] if settings.api_keys else ""),
            ca_file=settings.internal_tls_ca_file,
            cert_file=settings.internal_tls_cert_file,
            key_file=settings.internal_tls_key_file,
            server_name=settings.internal_tls_server_name,
        )

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    def describe(self) -> str:
        """For the start-up log: how the hop is protected (never the key itself)."""
        transport = ("mTLS" if self.cert_file else "TLS") if self.tls else "plaintext"
        return f"{transport}, {'with' if self.api_key else 'no'} API key"


def internal_channel(
    address: str, credentials: InternalCredentials, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    interceptors = _key_interceptors(credentials.api_key)
    if not credentials.tls:
        return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)
    assert credentials.ca_file is not None
    ssl = grpc.ssl_channel_credentials(
        root_certificates=credentials.ca_file.read_bytes(),
        private_key=credentials.key_file.read_bytes() if credentials.key_file else None,
        certificate_chain=credentials.cert_file.read_bytes() if credentials.cert_file else None,
    )
    if credentials.server_name:
        options = [*options, ("grpc.ssl_target_name_override", credentials.server_name)]
    return grpc.aio.secure_channel(address, ssl, options=list(options), interceptors=interceptors)


class _ApiKey:
    """Adds the key to a call's metadata."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def _with_key(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), (API_KEY_KEY, self._api_key))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under the first call shape it implements, so each shape needs its own.
class _UnaryUnaryKey(_ApiKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_key(details), request)


class _UnaryStreamKey(_ApiKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_key(details), request)


class _StreamUnaryKey(_ApiKey, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_key(details), requests)


class _StreamStreamKey(_ApiKey, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._with_key(details), requests)


def _key_interceptors(api_key: str) -> list[Any]:
    if not api_key:
        return []
    return [kind(api_key) for kind in (_UnaryUnaryKey, _UnaryStreamKey, _StreamUnaryKey, _StreamStreamKey)]
