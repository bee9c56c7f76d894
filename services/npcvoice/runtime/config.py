"""Service configuration, layered: built-in defaults < YAML file < environment < command-line flags.

The YAML file may hold a ``defaults`` section applied to every service and one section per service
(``speech:``, ``dialogue:``...), each with server settings and an ``engine:`` mapping of the service's own
options. Environment variables are ``NPCVOICE_<SETTING>`` for every service or
``NPCVOICE_<SERVICE>_<SETTING>`` for one (lists are comma-separated), e.g. ``NPCVOICE_API_KEYS=k1,k2`` or
``NPCVOICE_SPEECH_PORT=6001``. Engine options take the same form, for one service:
``NPCVOICE_<SERVICE>_<OPTION>``, the value parsed as a YAML scalar like ``--option`` (e.g.
``NPCVOICE_DIALOGUE_DEVICE=cuda``, ``NPCVOICE_VOICE_VOICE_DIRS=[/srv/voices]``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "NPCVOICE_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


class ServerSettings(BaseModel):
    """What every service's gRPC server can be told. Defaults suit local development."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 in containers.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port; 0 turns it off.")
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest message sent or received.")
    max_concurrent_rpcs: int = Field(
        64, ge=1, description="Calls served at once; more get RESOURCE_EXHAUSTED."
    )
    keepalive_time_s: float = Field(30.0, gt=0, description="Ping an idle connection this often.")
    keepalive_timeout_s: float = Field(10.0, gt=0, description="Drop a connection whose ping is unanswered.")
    shutdown_grace_s: float = Field(10.0, ge=0, description="On SIGTERM, in-flight calls get this long.")
    max_connection_age_s: float = Field(
        0.0,
        ge=0,
        description="Ask each client to reconnect after this long (an HTTP/2 GOAWAY: its new calls go on a "
        "new connection, calls in flight finish), so that a client of a headless Service resolves the name "
        "again and new replicas get calls; 0: never (one machine, nothing to find).",
    )
    max_connection_age_grace_s: float | None = Field(
        None,
        ge=0,
        description="After max_connection_age_s, how long calls in flight may still take before the "
        "connection is closed under them; unset: as long as they take (a speech stream lasts a talk).",
    )
    api_keys: list[str] = Field(default_factory=list, description="If set, calls must carry one of these.")
    tls_cert_file: Path | None = Field(None, description="Server certificate (PEM); enables TLS.")
    tls_key_file: Path | None = Field(None, description="Server private key (PEM).")
    tls_client_ca_file: Path | None = Field(None, description="CA for client certificates; enables mTLS.")
    internal_api_key: str = Field(
        "",
        description="Key this service sends when it calls another service of the suite (the gateway's "
        "calls to speech, dialogue, voice, face); empty: its own first api_key.",
    )
    internal_tls_ca_file: Path | None = Field(
        None, description="CA of the other services' certificates; enables TLS on calls to them."
    )
    internal_tls_cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for calls to services that require mTLS."
    )
    internal_tls_key_file: Path | None = Field(None, description="Private key of internal_tls_cert_file.")
    internal_tls_server_name: str = Field(
        "", description="Name the other services' certificates carry, when it is not their address's host."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _tls_pairs(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        if (self.internal_tls_cert_file is None) != (self.internal_tls_key_file is None):
            raise ValueError("internal_tls_cert_file and internal_tls_key_file must be given together")
        if self.internal_tls_cert_file is not None and self.internal_tls_ca_file is None:
            raise ValueError("internal_tls_cert_file (mTLS to other services) needs internal_tls_ca_file")
        return self


class ServiceConfig(BaseModel):
    """One service process's configuration: its server settings and its engine's options."""

    model_config = ConfigDict(extra="forbid")

    server: ServerSettings
    engine: dict[str, Any] = Field(default_factory=dict)


_LIST_FIELDS = {name for name, f in ServerSettings.model_fields.items() if f.annotation == list[str]}


def _env_layers(service: str, environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Server settings and engine options from the environment. A ``NPCVOICE_<SERVICE>_<NAME>`` that is
    not a server setting is an engine option of that service (the engine's own model rejects a typo)."""
    server: dict[str, Any] = {}
    for name in ServerSettings.model_fields:
        for key in (f"{ENV_PREFIX}{name.upper()}", f"{ENV_PREFIX}{service.upper()}_{name.upper()}"):
            if key in environ:
                raw = environ[key]
                server[name] = (
                    [v.strip() for v in raw.split(",") if v.strip()] if name in _LIST_FIELDS else raw
                )
    engine: dict[str, Any] = {}
    prefix = f"{ENV_PREFIX}{service.upper()}_"
    for key, raw in environ.items():
        name = key[len(prefix) :].lower() if key.startswith(prefix) else ""
        if name and name not in ServerSettings.model_fields:
            engine[name] = _option_value(raw)
    return server, engine


def _yaml_layers(path: Path, service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (defaults, speech, dialogue, ...)")
    defaults = dict(document.get("defaults") or {})
    section = dict(document.get(service) or {})
    engine = dict(defaults.pop("engine", {}) or {}) | dict(section.pop("engine", {}) or {})
    return defaults | section, engine


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for every server setting; unset flags leave lower layers alone."""
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    for name, field in ServerSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if name in _LIST_FIELDS:
            parser.add_argument(flag, action="append", dest=name, help=field.description)
        else:
            parser.add_argument(flag, dest=name, help=field.description)
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine option (repeatable); values are parsed as YAML scalars",
    )


def load_service_config(
    service: str,
    *,
    default_port: int,
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """Merge the layers for ``service`` and validate them, or raise ConfigError naming what is wrong."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {"port": default_port}
    engine: dict[str, Any] = {}
    config_file = getattr(args, "config", None) or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        server_layer, engine = _yaml_layers(Path(config_file), service)
        merged |= server_layer
    server_env, engine_env = _env_layers(service, environ)
    merged |= server_env
    engine |= engine_env
    if args is not None:
        merged |= {
            name: getattr(args, name)
            for name in ServerSettings.model_fields
            if getattr(args, name, None) is not None
        }
        engine |= _parse_options(getattr(args, "option", []))
    try:
        return ServiceConfig(server=ServerSettings(**merged), engine=engine)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{service} configuration: {problems}") from exc


def _parse_options(options: Sequence[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {option!r}: expected KEY=VALUE")
        parsed[key.strip()] = _option_value(value)
    return parsed


def _option_value(raw: str) -> Any:
    """An engine option's value from a flag or the environment: a YAML scalar (or flow list)."""
    return yaml.safe_load(raw) if raw else ""
