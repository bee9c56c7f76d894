"""Throwaway certificates for TLS tests, made with openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_certificate(
    directory: Path, name: str, ca: tuple[Path, Path] | None = None, san: str = "DNS:localhost,IP:127.0.0.1"
) -> tuple[Path, Path]:
    """A key and certificate for ``name`` (valid for ``san``), self-signed or signed by ``ca`` (its key,
    cert)."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    if ca is None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
            check=True, capture_output=True,
        )  # fmt: skip
        return key, cert
    csr = directory / f"{name}.csr"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", f"/CN={name}"], check=True, capture_output=True)  # fmt: skip
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
                    "-out", cert, "-days", "1"], check=True, capture_output=True)  # fmt: skip
    return key, cert
