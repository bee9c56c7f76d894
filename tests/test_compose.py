"""docker-compose.yml, the launcher and the service catalog agree on ports and health-check names.

Docker cannot run on the development and CI machines, so this reads the compose file instead of running it.
"""

from __future__ import annotations

from typing import Any

import yaml

from npcvoice.catalog import EDGE_PORT, SERVICES
from npcvoice.runtime.config import ServiceConfig
from tests.conftest import REPO_ROOT
from tests.support.deployment import effective_config

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _variants(name: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in COMPOSE.items() if key in (name, f"{name}-gpu")}


def _effective_config(key: str) -> ServiceConfig:
    """What the service in compose entry ``key`` runs with."""
    return effective_config(COMPOSE[key]["command"], COMPOSE[key]["environment"])


def test_every_catalog_service_is_composed_on_its_port_with_its_health_check():
    for name, entry in SERVICES.items():
        variants = _variants(name)
        assert name in variants, f"{name} missing from docker-compose.yml"
        for key, service in variants.items():
            command = service["command"]
            assert command[:2] == ["serve", name], key
            assert _flag(command, "--port") == str(entry.port), key
            assert _flag(command, "--metrics-port") == str(entry.metrics_port), key
            assert f"{entry.port}:{entry.port}" in service["ports"], key
            probe = service["healthcheck"]["test"]
            assert probe[:3] == ["CMD", "npcvoice", "health"], key
            assert probe[3] == f"127.0.0.1:{entry.port}", key
            assert _flag(probe, "--service") == entry.grpc_service, key
            assert service["environment"]["NPCVOICE_HOST"] == "0.0.0.0", key
            assert (REPO_ROOT / service["build"]["dockerfile"]).exists(), key


def test_the_gateway_waits_for_healthy_dependencies_and_is_pointed_at_them():
    gateway = COMPOSE["conversation"]
    depends = gateway["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    for name in ("speech", "dialogue", "voice", "face"):
        for key in _variants(name):
            assert depends[key]["condition"] == "service_healthy", key
    options = _effective_config("conversation").engine
    for name in ("speech", "dialogue", "voice", "face"):
        assert options[f"{name}_address"] == f"{name}:{SERVICES[name].port}"
    assert options["redis_url"] == "redis://redis:6379/0"
    spool = options["spool_file"]  # turns held while Redis is away outlive the container
    assert any(volume.endswith(":" + spool.rsplit("/", 1)[0]) for volume in gateway["volumes"])
    assert "appendonly" in " ".join(COMPOSE["redis"]["command"])


def test_cpu_is_the_default_and_the_gpu_profile_reserves_nvidia_devices():
    env_file = (REPO_ROOT / ".env").read_text()
    assert "COMPOSE_PROFILES=cpu" in env_file
    gpu_services = [key for key, service in COMPOSE.items() if "gpu" in service.get("profiles", [])]
    assert sorted(gpu_services) == ["dialogue-gpu", "speech-gpu", "voice-gpu"]
    for key in gpu_services:
        devices = COMPOSE[key]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        cpu_twin = key.removesuffix("-gpu")
        assert COMPOSE[cpu_twin]["profiles"] == ["cpu"]
        assert cpu_twin in COMPOSE[key]["networks"]["default"]["aliases"]
        assert _effective_config(key).engine["device"] == "cuda"
        # only speech (CTranslate2, CUDA 12) gets the CUDA 12 libraries of the pip packages on its path
        library_path = COMPOSE[key]["environment"].get("LD_LIBRARY_PATH", "")
        assert ("nvidia/cublas/lib" in library_path) == (key == "speech-gpu"), key


def test_the_websocket_edge_is_composed_in_front_of_the_gateway():
    edge = COMPOSE["edge"]
    command = edge["command"]
    assert (
        command[0] == "edge"
        and _flag(command, "--gateway") == f"conversation:{SERVICES['conversation'].port}"
    )
    assert _flag(command, "--port") == str(EDGE_PORT) and f"{EDGE_PORT}:{EDGE_PORT}" in edge["ports"]
    assert "/healthz" in " ".join(edge["healthcheck"]["test"])
    assert edge["depends_on"]["conversation"]["condition"] == "service_healthy"
