"""Each service's own process environment: what `npcvoice up` (and `./dev install-gpu`'s check) give it.

Every service is its own process, so each can have its own native libraries. On a GPU the dialogue and
voice services run onnxruntime-gpu, built for CUDA 13, while the speech service's CTranslate2 wheels are
built for CUDA 12 and load cuBLAS 12 and cuDNN 9 for CUDA 12 by name at run time. The pip packages
nvidia-cublas-cu12 and nvidia-cudnn-cu12 (the ``gpu`` extra) bring those; only the speech process gets
their folders first on its library path, so the others keep finding the CUDA 13 libraries.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

# The pip packages' modules whose lib/ folder CTranslate2 needs (nvidia-cublas-cu12, nvidia-cudnn-cu12).
CUDA12_MODULES = ("nvidia.cublas", "nvidia.cudnn")
CUDA12_SERVICES = frozenset({"speech"})


def cuda12_library_dirs() -> list[str]:
    """The lib/ folders of the CUDA 12 cuBLAS and cuDNN pip packages installed here (none on a CPU
    install)."""
    found: list[str] = []
    for module in CUDA12_MODULES:
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # no "nvidia" namespace at all
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            lib = Path(location) / "lib"
            if lib.is_dir() and str(lib) not in found:
                found.append(str(lib))
    return found


def service_environment(
    name: str, base: Mapping[str, str] | None = None, cuda12_dirs: list[str] | None = None
) -> dict[str, str]:
    """The environment service ``name`` runs with: ``base`` (this process's), and for a service on CUDA 12
    libraries, their folders ahead of the rest of its library path."""
    env = dict(os.environ if base is None else base)
    dirs = cuda12_library_dirs() if cuda12_dirs is None else cuda12_dirs
    if name in CUDA12_SERVICES and dirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*dirs, *filter(None, [env.get("LD_LIBRARY_PATH", "")])])
    return env
