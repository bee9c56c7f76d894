"""Do the lock files in locks/ still say what pyproject.toml asks for? `./dev lint` runs this before the
type checker, so a dependency added or narrowed in pyproject.toml without `./dev lock` fails at once, in
one line per disagreement, instead of as an import error somewhere in the suite.

    python -m npcvoice.devtools.locks            # exit status 1 and the disagreements, or nothing
    python -m npcvoice.devtools.locks --installed  # also: this environment holds the lock's versions
    python -m npcvoice.devtools.locks --extract gpu.txt onnxruntime-gpu  # one entry, to install alone

A lock (written by ``uv pip compile --universal --generate-hashes``) is read as ``name==version ; marker``
lines with their ``--hash`` continuations; a name may appear more than once under exclusive markers (torch's
CPU build on one platform, PyPI's elsewhere).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[3]

# Each lock and what it must satisfy: the package's own dependencies plus these extras of pyproject.toml.
PROJECT_LOCKS = {"npcvoice.txt": ("dev", "convert"), "runtime.txt": (), "gpu.txt": ("gpu",)}
# Locks made from a hand-written list (locks/<name>.in), not from pyproject.toml.
LISTED_LOCKS = {"no-deps.txt": "no-deps.in", "peer-pipecat.txt": "peer-pipecat.in"}
# What ./dev installs into .venv: these locks' versions are the environment's.
DEV_LOCKS = ("npcvoice.txt", "no-deps.txt")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...] = field(default=())

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        return self.marker is None or self.marker.evaluate(environment)


def _entries(text: str) -> list[list[str]]:
    """A lock's entries: each the ``name==version ; marker`` line and its ``--hash=`` parts, comments out."""
    entries: list[list[str]] = []
    for raw in text.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].strip()
        if not line:
            continue
        if raw[:1].isspace() and entries:
            entries[-1].append(line.removesuffix("\\").strip())
        else:
            entries.append([line.removesuffix("\\").strip()])
    return entries


def read_lock(text: str) -> dict[str, list[Pin]]:
    """The pins of a lock file by canonical name (several where markers split a package)."""
    pins: dict[str, list[Pin]] = {}
    for first, *rest in _entries(text):
        requirement = Requirement(first)
        (spec,) = requirement.specifier  # a lock pins each entry with exactly one ==
        name = canonicalize_name(requirement.name)
        hashes = tuple(part.removeprefix("--hash=") for part in rest if part.startswith("--hash="))
        pins.setdefault(name, []).append(Pin(name, Version(spec.version), requirement.marker, hashes))
    return pins


def extract(text: str, names: list[str]) -> str:
    """The entries of ``names`` from a lock, as a requirements file of their own (hashes kept): what
    scripts/install-gpu.sh reinstalls alone, without their dependencies."""
    wanted = {canonicalize_name(name) for name in names}
    chosen = [e for e in _entries(text) if canonicalize_name(Requirement(e[0]).name) in wanted]
    found = {canonicalize_name(Requirement(e[0]).name) for e in chosen}
    if found != wanted:
        raise SystemExit(f"not in the lock: {', '.join(sorted(wanted - found))}")
    return "".join(" \\\n    ".join(entry) + "\n" for entry in chosen)


def _problems_for(requirement: Requirement, pins: dict[str, list[Pin]], lock: str) -> list[str]:
    name = canonicalize_name(requirement.name)
    if name not in pins:
        return [f"{requirement}: not in locks/{lock}"]
    wrong = [p for p in pins[name] if not requirement.specifier.contains(p.version, prereleases=True)]
    return [f"{requirement}: locks/{lock} has {p.version}" for p in wrong]


def project_requirements(pyproject: dict[str, object], extras: tuple[str, ...]) -> list[Requirement]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return wanted


def disagreements(root: Path = REPO_ROOT) -> list[str]:
    """Every way the locks fail pyproject.toml, their own lists or each other (empty when they agree)."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    locks = {name: read_lock((root / "locks" / name).read_text()) for name in [*PROJECT_LOCKS, *LISTED_LOCKS]}
    problems: list[str] = []
    for lock, extras in PROJECT_LOCKS.items():
        for requirement in project_requirements(pyproject, extras):
            problems += _problems_for(requirement, locks[lock], lock)
    for lock, listed in LISTED_LOCKS.items():
        for line in (root / "locks" / listed).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                problems += _problems_for(Requirement(line), locks[lock], lock)
    # The service images must run what the suite tested: the same version of everything they share.
    for lock in ("runtime.txt", "gpu.txt"):
        for name, pins in locks[lock].items():
            tested = {p.version for p in locks["npcvoice.txt"].get(name, [])}
            problems += [
                f"{name}: locks/{lock} has {p.version}, locks/npcvoice.txt {sorted(map(str, tested))}"
                for p in pins
                if tested and p.version not in tested
            ]
    for lock, by_name in locks.items():
        unhashed = [pin for pins in by_name.values() for pin in pins if not pin.hashes]
        problems += [f"{pin.name}=={pin.version}: locks/{lock} has no hash" for pin in unhashed]
    return problems


def not_installed(root: Path = REPO_ROOT) -> list[str]:
    """The pins of ./dev's locks that apply to this Python but are not what it has installed."""
    problems = []
    for lock in DEV_LOCKS:
        for name, pins in read_lock((root / "locks" / lock).read_text()).items():
            for pin in filter(Pin.applies, pins):
                try:
                    have = Version(importlib.metadata.version(name))
                except importlib.metadata.PackageNotFoundError:
                    problems.append(f"{name}=={pin.version} (locks/{lock}): not installed")
                    continue
                if have != pin.version:
                    problems.append(f"{name}=={pin.version} (locks/{lock}): {have} is installed")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installed", action="store_true", help="also check this environment's versions")
    parser.add_argument(
        "--extract", nargs="+", metavar="LOCK NAME", help="print packages' entries of locks/LOCK and stop"
    )
    args = parser.parse_args(argv)
    if args.extract:
        lock, *names = args.extract
        print(extract((REPO_ROOT / "locks" / lock).read_text(), names), end="")
        return 0
    problems = disagreements()
    if problems:
        print("pyproject.toml and locks/ disagree (run ./dev lock, then ./dev test):", file=sys.stderr)
    if args.installed:
        missing = not_installed()
        if missing:
            print("this environment is not what locks/ says (./dev installs again when a lock changes):",
                  file=sys.stderr)  # fmt: skip
        problems += missing
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
