"""Load persona YAML files with errors a writer can act on: ``file:line:column: message`` for each one.

A persona that fails validation never loads. The store keeps the last good version of each persona, so an
invalid edit to a running NPC logs its errors and the NPC carries on as it was.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from npcvoice.personas.schema import ID_PATTERN, NAME_PATTERN, Persona

log = logging.getLogger("npcvoice.personas")

PERSONA_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    column: int  # 1-based
    message: str


class PersonaError(Exception):
    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}:{p.line}:{p.column}: {p.message}" for p in self.problems]


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _duplicate_keys(node: yaml.Node) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value in seen:
                problems.append(Problem(*_position(key), f"{key.value}: key appears twice"))
            seen.add(key.value)
            problems += _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems += _duplicate_keys(item)
    return problems


def _locate(root: yaml.Node, loc: tuple[int | str, ...], error_type: str) -> tuple[int, int]:
    """Find where in the file a pydantic error location points."""
    node = root
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                return _position(node)  # a missing key: point at the mapping that lacks it
            key, value = match
            if last and error_type == "extra_forbidden":
                return _position(key)
            node = value
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return _position(node)


_PATTERN_RULES = {
    NAME_PATTERN: "snake_case: lowercase letters, digits and underscores, starting with a letter",
    ID_PATTERN: "lowercase letters, digits, '-' and '_', at most 64 characters",
}


def _describe(error: Any) -> str:
    path = ".".join(str(p) for p in error["loc"]) or "(file)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see persona.schema.json for the keys allowed)"
    elif error["type"] == "string_pattern_mismatch":
        rule = _PATTERN_RULES.get(error["ctx"]["pattern"])
        if rule:
            message = f"{error['input']!r} must be {rule}"
    return f"{path}: {message}"


def load_persona(path: Path) -> Persona:
    """Parse and validate one persona file, or raise PersonaError listing every problem with its place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(path, [Problem(1, 1, f"cannot read file: {exc}")]) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PersonaError(path, [Problem(line, column, f"YAML syntax: {exc.problem or exc}")]) from exc
    if root is None or not isinstance(data, dict):
        raise PersonaError(
            path, [Problem(1, 1, "expected a mapping of persona fields (id, display_name, ...)")]
        )

    problems = _duplicate_keys(root)
    persona: Persona | None = None
    try:
        persona = Persona.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(Problem(*_locate(root, tuple(error["loc"]), error["type"]), _describe(error)))
    if persona is not None and persona.id != path.stem:
        id_node = next((v for k, v in root.value if k.value == "id"), root)
        problems.append(
            Problem(*_position(id_node), f"id: {persona.id!r} must match the file name {path.stem!r}")
        )
    if problems:
        raise PersonaError(path, sorted(problems, key=lambda p: (p.line, p.column)))
    assert persona is not None
    return persona


def persona_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).iterdir() if p.suffix in PERSONA_SUFFIXES and p.is_file())


class PersonaStore:
    """The personas in a directory, reloaded when a file changes; an invalid edit keeps the last good one."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[float, Persona | None]] = {}  # path -> (mtime, last good persona)
        self._by_id: dict[str, Persona] = {}
        self.refresh()

    def refresh(self) -> None:
        """Pick up added, edited and removed files. Cheap: it stats files and parses only changed ones."""
        with self._lock:
            seen: set[str] = set()
            by_id: dict[str, Persona] = {}
            for path in persona_files(self.directory):
                key = str(path)
                seen.add(key)
                mtime = path.stat().st_mtime
                cached = self._loaded.get(key)
                persona = cached[1] if cached else None
                if cached is None or cached[0] != mtime:
                    try:
                        persona = load_persona(path)
                        if cached is not None:
                            log.info("reloaded persona %s from %s", persona.id, path)
                    except PersonaError as exc:
                        state = "keeping the last good version" if persona else "not loaded"
                        log.error("invalid persona file (%s):\n%s", state, exc)
                    self._loaded[key] = (mtime, persona)
                if persona is not None:
                    by_id[persona.id] = persona
            for gone in set(self._loaded) - seen:
                del self._loaded[gone]
            self._by_id = by_id

    def get(self, persona_id: str) -> Persona | None:
        self.refresh()
        return self._by_id.get(persona_id)

    def all(self) -> list[Persona]:
        self.refresh()
        return sorted(self._by_id.values(), key=lambda p: p.id)
