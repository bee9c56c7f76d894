"""Persona files as the page edits them: read, check and save, with the validator's own messages.

Saving writes only a persona that validates, and replaces the file in one step, so the running suite
(which reloads a file when it changes) never reads half a file, and an invalid edit leaves the NPC as it
was: the page shows the problems at their lines instead.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from npcvoice.personas.loader import PERSONA_SUFFIXES, PersonaError, load_persona
from npcvoice.personas.schema import ID_PATTERN
from npcvoice.runtime.errors import InvalidArgument, NotFound

MAX_PERSONA_CHARS = 200_000


class PersonaFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, npc_id: str) -> Path:
        # The id becomes a file name: the pattern keeps it inside the directory.
        if not re.match(ID_PATTERN, npc_id):
            raise InvalidArgument("npc_id", f"{npc_id!r} is not a persona id")
        for suffix in PERSONA_SUFFIXES:
            candidate = self.directory / f"{npc_id}{suffix}"
            if candidate.is_file():
                return candidate
        raise NotFound("persona file", npc_id)

    def read(self, npc_id: str) -> str:
        return self.path(npc_id).read_text(encoding="utf-8")

    def check(self, npc_id: str, text: str) -> list[dict[str, Any]]:
        """The validator's problems with ``text`` as the file of ``npc_id`` (none when it is valid)."""
        if len(text) > MAX_PERSONA_CHARS:
            raise InvalidArgument("text", f"at most {MAX_PERSONA_CHARS} characters")
        target = self.path(npc_id)
        # The validator reads a file, and checks the id against its name: the same name, elsewhere.
        with tempfile.TemporaryDirectory(prefix="npcvoice-playground-") as scratch:
            draft = Path(scratch) / target.name
            draft.write_text(text, encoding="utf-8")
            try:
                load_persona(draft)
            except PersonaError as error:
                return [asdict(problem) for problem in error.problems]
        return []

    def save(self, npc_id: str, text: str) -> list[dict[str, Any]]:
        """Write ``text`` as the persona if it validates; otherwise change nothing and return why."""
        problems = self.check(npc_id, text)
        if problems:
            return problems
        target = self.path(npc_id)
        # A name the persona loader skips (not .yaml), renamed over the file in one step.
        descriptor, temporary = tempfile.mkstemp(prefix=f".{npc_id}.", suffix=".saving", dir=self.directory)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        Path(temporary).replace(target)
        return []
