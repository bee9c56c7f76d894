"""Configuration comes from a YAML file, the environment and flags, in that order of precedence, and TLS
and mTLS work when configured."""

from __future__ import annotations

import argparse
import subprocess

import grpc
import pytest

from npcvoice.runtime.config import ConfigError, add_server_flags, load_service_config
from tests.support import probe
from tests.support.certs import make_certificate


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_flags(parser)
    return parser.parse_args(argv)


def test_flags_beat_environment_which_beats_the_file_which_beats_defaults(tmp_path):
    config = tmp_path / "suite.yaml"
    config.write_text(
        "defaults:\n  max_concurrent_rpcs: 8\n  api_keys: [from-file]\n"
        "speech:\n  port: 7001\n  metrics_port: 7101\n  engine:\n    beam_size: 5\n"
    )
    environ = {"NPCVOICE_SPEECH_METRICS_PORT": "7202", "NPCVOICE_API_KEYS": "env-1, env-2"}
    loaded = load_service_config(
        "speech", default_port=50051, args=parse(["--config", str(config), "--option", "beam_size=2"]),
        environ=environ,
    )  # fmt: skip
    assert loaded.server.port == 7001  # file
    assert loaded.server.metrics_port == 7202  # environment over file
    assert loaded.server.api_keys == ["env-1", "env-2"]
    assert loaded.server.max_concurrent_rpcs == 8
    assert loaded.engine == {"beam_size": 2}  # flag over file
    other = load_service_config(
        "voice", default_port=50053, args=parse(["--config", str(config)]), environ={}
    )
    assert other.server.port == 50053 and other.server.max_concurrent_rpcs == 8


def test_a_bad_setting_is_named_in_the_error():
    with pytest.raises(ConfigError, match="max_concurrent_rpcs"):
        load_service_config("face", default_port=1, args=parse(["--max-concurrent-rpcs", "0"]), environ={})
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file must be given together"):
        load_service_config("face", default_port=1, args=parse(["--tls-cert-file", "x.pem"]), environ={})


async def test_tls_and_mutual_tls(hosted, tmp_path):
    server_key, server_cert = make_certificate(tmp_path, "server")
    ca_key, ca_cert = make_certificate(tmp_path, "client-ca")
    client_key, client_cert = make_certificate(tmp_path, "client", ca=(ca_key, ca_cert))
    service = await hosted(
        "probe", probe.REGISTRATION,
        tls_cert_file=server_cert, tls_key_file=server_key, tls_client_ca_file=ca_cert,
    )  # fmt: skip
    address = f"localhost:{service.host.port}"

    trusted = grpc.ssl_channel_credentials(
        root_certificates=server_cert.read_bytes(),
        private_key=client_key.read_bytes(),
        certificate_chain=client_cert.read_bytes(),
    )
    async with grpc.aio.secure_channel(address, trusted) as channel:
        assert await channel.unary_unary(probe.method("Echo"))(b"over tls", timeout=5) == b"over tls"

    no_client_cert = grpc.ssl_channel_credentials(root_certificates=server_cert.read_bytes())
    async with grpc.aio.secure_channel(address, no_client_cert) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(probe.method("Echo"))(b"x", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary(probe.method("Echo"))(b"plaintext", timeout=5)


def test_a_bad_engine_option_stops_the_service_with_a_clear_message():
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "npcvoice", "serve", "voice", "--port", "0", "--log-format", "text",
         "--option", "workers=0", "--option", "colour=blue"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "bad engine option: workers: Input should be greater than or equal to 1" in result.stderr
    assert "colour: Extra inputs are not permitted" in result.stderr
    assert "Traceback" not in result.stderr


def test_engine_options_come_from_the_environment_between_the_file_and_the_flags(tmp_path):
    config = tmp_path / "suite.yaml"
    config.write_text("dialogue:\n  engine:\n    device: cpu\n    workers: 2\n    prewarm: true\n")
    environ = {
        "NPCVOICE_DIALOGUE_WORKERS": "3",
        "NPCVOICE_DIALOGUE_PREWARM": "false",
        "NPCVOICE_DIALOGUE_PORT": "7002",  # a server setting, not an engine option
        "NPCVOICE_VOICE_DEVICE": "cuda",  # another service's
    }
    loaded = load_service_config(
        "dialogue", default_port=50052, args=parse(["--config", str(config), "--option", "workers=4"]),
        environ=environ,
    )  # fmt: skip
    assert loaded.server.port == 7002
    assert loaded.engine == {"device": "cpu", "workers": 4, "prewarm": False}
    voice = load_service_config("voice", default_port=50053, args=parse([]), environ=environ)
    assert voice.engine == {"device": "cuda"}
