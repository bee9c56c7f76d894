"""Every hop secured: the five real services with API keys (the README's configuration example, as written)
and with mutual TLS and an internal key that differs from the players' one (the README's security example,
as written) complete a voice turn; a gateway with the wrong internal key fails with a status that names the
hop."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from npcvoice.api.npc.audio.v1 import audio_pb2
from npcvoice.catalog import SERVICES
from npcvoice.runtime.channels import InternalCredentials, internal_channel
from npcvoice.runtime.config import load_service_config
from tests.conftest import REPO_ROOT, HostedService, start_service
from tests.support.certs import make_certificate
from tests.support.conversation import Conversation, config

DOWNSTREAM = ("speech", "dialogue", "voice", "face")
RATE = 16000


def readme_yaml(section: str) -> str:
    """The first YAML example under the README heading ``section``."""
    readme = (REPO_ROOT / "README.md").read_text()
    body = readme.split(f"\n## {section}\n", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", body, re.S)
    assert match, f"no YAML example under '## {section}'"
    return match.group(1)


def engine_options(name: str, test_persona_dir: Path, redis_url: str) -> dict[str, Any]:
    if name == "dialogue":
        return {"models_dir": str(REPO_ROOT / ".models"), "persona_dir": str(test_persona_dir), "device": "cpu",
                "prewarm": False}  # fmt: skip
    if name == "speech":
        return {"max_utterance_s": 10.0}
    if name == "conversation":
        return {"persona_dir": str(test_persona_dir), "redis_url": redis_url, "memory_timeout_s": 5.0}
    return {}


async def start_suite(
    settings: dict[str, dict[str, Any]],
    test_persona_dir: Path,
    redis_url: str,
    client_key: str,
    **client: Any,
) -> list[HostedService]:
    """The five services with these server settings (per service), and a client channel to the gateway."""
    started: list[HostedService] = []
    options = {name: engine_options(name, test_persona_dir, redis_url) for name in SERVICES}
    for name in DOWNSTREAM:
        service = await start_service(name, SERVICES[name].registration(), options[name], **settings[name])
        started.append(service)
        options["conversation"][f"{name}_address"] = f"localhost:{service.host.port}"
    gateway = await start_service(
        "conversation",
        SERVICES["conversation"].registration(),
        options["conversation"],
        **settings["conversation"],
    )
    await gateway.channel.close()  # the fixture's channel has no key: the game's own channel replaces it
    gateway.channel = internal_channel(
        f"localhost:{gateway.host.port}", InternalCredentials(client_key, **client)
    )
    return [gateway, *started]


async def stop_suite(services: list[HostedService]) -> None:
    for service in services:
        await service.channel.close()
        await service.host.stop(grace=0)


async def voice_turn(gateway: HostedService, speak: Any, player: str) -> Any:
    speech = np.concatenate([speak("Can you repair my sword?", RATE), np.zeros(RATE, np.float32)])
    audio_format = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE)
    conversation = Conversation(gateway, config(player, input_audio=audio_format))
    conversation.send_speech(speech, RATE)
    out = await conversation.spoken_turn()
    await conversation.close()
    return out


def settings_from_readme(section: str, directory: Path) -> dict[str, dict[str, Any]]:
    """Each service's server settings from the README's example under ``section``, loaded as
    `npcvoice up --config` would load it, from ``directory`` (the working directory: relative paths)."""
    path = directory / "suite.yaml"
    path.write_text(readme_yaml(section))
    settings = {}
    for name in SERVICES:
        loaded = load_service_config(name, default_port=0, environ={"NPCVOICE_CONFIG": str(path)})
        settings[name] = loaded.server.model_dump(exclude={"port"})
    return settings


@pytest.fixture
async def suite_from_readme(tmp_path, test_persona_dir, redis_server) -> AsyncIterator[list[HostedService]]:
    """The README's configuration example, as written."""
    settings = settings_from_readme("Configuration", tmp_path)
    client_key = settings["conversation"]["api_keys"][0]
    services = await start_suite(settings, test_persona_dir, redis_server.url, client_key)
    yield services
    await stop_suite(services)


async def test_the_readme_configuration_with_api_keys_completes_a_voice_turn(suite_from_readme, speak):
    gateway = suite_from_readme[0]
    assert all(service.host.settings.api_keys for service in suite_from_readme)  # every hop needs the key
    out = await voice_turn(gateway, speak, "player-keys")
    assert out.transcripts and out.audio and out.audio[0].visemes and out.end.reply_text


async def test_the_readme_security_example_with_mtls_and_an_internal_key_completes_a_voice_turn(
    tmp_path, test_persona_dir, redis_server, speak, monkeypatch
):
    certs = tmp_path / "certs"
    certs.mkdir()
    _, server_cert = make_certificate(certs, "server")  # localhost; it signs itself
    ca_key, ca_cert = make_certificate(certs, "clients-ca")
    make_certificate(certs, "gateway", ca=(ca_key, ca_cert))
    monkeypatch.chdir(tmp_path)  # the example's paths are relative: certs/...
    settings = settings_from_readme("Security", tmp_path)
    assert settings["speech"]["tls_client_ca_file"] and not settings["conversation"]["tls_client_ca_file"]
    players_key = settings["conversation"]["api_keys"][0]
    assert players_key not in settings["dialogue"]["api_keys"]  # the inside has a key of its own
    services = await start_suite(
        settings, test_persona_dir, redis_server.url, players_key, ca_file=server_cert
    )
    try:
        out = await voice_turn(services[0], speak, "player-mtls")
        assert out.transcripts and out.audio and out.end.reply_text
    finally:
        await stop_suite(services)


async def test_a_wrong_internal_key_fails_the_turn_with_a_status_naming_the_hop(
    suite_from_readme, test_persona_dir, redis_server
):
    _, *downstream = suite_from_readme
    options = engine_options("conversation", test_persona_dir, redis_server.url)
    for service in downstream:
        options[f"{service.host.name}_address"] = service.host.address
    gateway = await start_service(
        "conversation", SERVICES["conversation"].registration(), options, internal_api_key="wrong"
    )
    try:
        conversation = Conversation(gateway, config("player-wrong-key"))
        conversation.send(text="Hello there!")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await conversation.turn()
        details = caught.value.details() or ""
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (
            "dialogue service at 127.0.0.1:" in details and "refused the gateway: UNAUTHENTICATED" in details
        )
        assert "internal_api_key" in details  # and says what to set
    finally:
        await gateway.channel.close()
        await gateway.host.stop(grace=0)
