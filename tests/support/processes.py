"""Services run as their own processes, so that a test can kill them."""

from __future__ import annotations

import subprocess
import sys

from npcvoice.runtime.health_client import wait_until_serving
from tests.conftest import REPO_ROOT


def serve(name: str, port: int, options: dict[str, object], *flags: str) -> subprocess.Popen[bytes]:
    """``npcvoice serve NAME`` as its own process (so it can be killed), SERVING when this returns;
    ``flags`` are more server flags (``--metrics-port``...)."""
    option_flags = [arg for key, value in options.items() for arg in ("--option", f"{key}={value}")]
    process = subprocess.Popen(
        [sys.executable, "-m", "npcvoice", "serve", name, "--port", str(port), "--log-level", "warning",
         *flags, *option_flags],
        cwd=REPO_ROOT,
    )  # fmt: skip
    wait_until_serving(f"127.0.0.1:{port}", process, name=name, timeout_s=60)
    return process
