"""Locked installs: locks/ says exactly what ./dev, the Dockerfiles and CI install, and `./dev lint` fails
the moment pyproject.toml and the locks disagree (npcvoice.devtools.locks)."""

from __future__ import annotations

import shutil
from pathlib import Path

from npcvoice.devtools.locks import disagreements, not_installed, read_lock

REPO = Path(__file__).resolve().parents[1]


def test_the_locks_agree_with_pyproject_and_this_environment_is_what_they_say() -> None:
    assert disagreements(REPO) == []
    assert not_installed(REPO) == []


def _copy(tmp_path: Path) -> Path:
    (tmp_path / "locks").mkdir()
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for lock in (REPO / "locks").iterdir():
        shutil.copy(lock, tmp_path / "locks")
    return tmp_path


def test_a_dependency_added_or_narrowed_without_relocking_is_named_with_its_lock(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert '"redis>=5",' in text
    pyproject.write_text(text.replace('"redis>=5",', '"redis>=99",\n    "left-pad-nowhere>=1",'))
    problems = disagreements(root)
    for lock in ("npcvoice.txt", "runtime.txt", "gpu.txt"):
        assert any(p.startswith("redis>=99: locks/" + lock + " has ") for p in problems), problems
        assert f"left-pad-nowhere>=1: not in locks/{lock}" in problems


def test_an_image_lock_that_drifts_from_the_tested_versions_or_loses_its_hashes_is_caught(
    tmp_path: Path,
) -> None:
    root = _copy(tmp_path)
    runtime = root / "locks" / "runtime.txt"
    version = read_lock(runtime.read_text())["grpcio"][0].version
    text = runtime.read_text().replace(f"\ngrpcio=={version} ", "\ngrpcio==1.0.0 ")
    runtime.write_text(text)
    assert any(p.startswith("grpcio: locks/runtime.txt has 1.0.0") for p in disagreements(root))

    no_deps = root / "locks" / "no-deps.txt"
    no_deps.write_text("\n".join(line for line in no_deps.read_text().splitlines() if "--hash" not in line))
    assert any(p.endswith("locks/no-deps.txt has no hash") for p in disagreements(root))


def test_a_package_split_by_markers_has_exactly_one_pin_for_this_python() -> None:
    pins = read_lock((REPO / "locks" / "npcvoice.txt").read_text())["torch"]
    assert len(pins) >= 2 and all(p.marker is not None for p in pins)  # the CPU build here, PyPI's elsewhere
    assert sum(p.applies() for p in pins) == 1
