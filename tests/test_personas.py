"""Persona files, as a game writer meets them: errors point at file:line:column, bad files never load."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from npcvoice.cli import SCHEMA_PATH, schema_text
from npcvoice.personas import PersonaError, PersonaStore, load_persona
from tests.conftest import PERSONA_DIR, REPO_ROOT

MINIMAL = """\
schema_version: 1
id: {id}
display_name: Old Wen
description: A ferryman who has crossed the river ten thousand times.
greeting: "Going across?"
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PersonaError) as caught:
        load_persona(path)
    return caught.value.lines()


def test_the_sample_personas_are_valid_and_differ_in_voice_lore_and_actions():
    personas = [load_persona(p) for p in sorted(PERSONA_DIR.glob("*.yaml"))]
    assert len(personas) == 3
    assert len({(p.voice.speed, p.voice.variation, p.voice.volume) for p in personas}) == 3
    assert len({tuple(e.text for e in p.lore) for p in personas}) == 3
    assert len({tuple(a.name for a in p.actions) for p in personas}) == 3


def test_an_unknown_key_is_reported_at_its_line_and_column(tmp_path):
    path = write(
        tmp_path, "wen", MINIMAL.format(id="wen") + "voice:\n  voice_id: en_US-joe-medium\n  sped: 1.2\n"
    )
    assert problems_of(path) == [
        f"{path}:8:3: voice.sped: unknown key "
        "(check the spelling; see persona.schema.json for the keys allowed)"
    ]


def test_every_error_in_a_file_is_reported_with_its_own_line(tmp_path):
    text = MINIMAL.format(id="wen") + textwrap.dedent("""\
        emotions: [neutral, smug]
        dialogue:
          temperature: 9
        actions:
          - name: Open Door
            description: opens it
        """)
    path = write(tmp_path, "wen", text)
    lines = problems_of(path)
    assert lines[0].startswith(f"{path}:6:") and "unknown emotion 'smug'" in lines[0]
    assert lines[1].startswith(f"{path}:8:16:") and "dialogue.temperature" in lines[1]
    assert lines[2] == (
        f"{path}:10:11: actions.0.name: 'Open Door' must be snake_case: "
        "lowercase letters, digits and underscores, starting with a letter"
    )
    assert len(lines) == 3


def test_a_missing_required_field_points_at_the_mapping_that_lacks_it(tmp_path):
    path = write(tmp_path, "wen", MINIMAL.format(id="wen").replace('greeting: "Going across?"\n', ""))
    assert problems_of(path) == [f"{path}:1:1: greeting: Field required"]


def test_yaml_syntax_errors_and_duplicate_keys_are_located(tmp_path):
    broken = write(tmp_path, "wen", MINIMAL.format(id="wen") + "personality: [calm\n")
    [syntax] = problems_of(broken)
    assert syntax.startswith(f"{broken}:") and "YAML syntax" in syntax
    doubled = write(tmp_path, "wen", MINIMAL.format(id="wen") + "greeting: Hello again\n")
    assert problems_of(doubled) == [f"{doubled}:6:1: greeting: key appears twice"]


def test_the_id_must_match_the_file_name_so_two_files_cannot_claim_one_npc(tmp_path):
    path = write(tmp_path, "ferryman", MINIMAL.format(id="wen"))
    assert problems_of(path) == [f"{path}:2:5: id: 'wen' must match the file name 'ferryman'"]


def test_summaries_cannot_start_before_the_recent_turns_run_out(tmp_path):
    path = write(
        tmp_path, "wen", MINIMAL.format(id="wen") + "memory:\n  recent_turns: 20\n  summarize_after: 10\n"
    )
    [problem] = problems_of(path)
    assert "summarize_after (10) must be at least recent_turns (20)" in problem


def test_validate_command_prints_every_error_and_fails(tmp_path):
    write(tmp_path, "wen", MINIMAL.format(id="wen") + "mood: grumpy\n")
    write(tmp_path, "ok", MINIMAL.format(id="ok"))
    result = subprocess.run(
        [sys.executable, "-m", "npcvoice", "validate", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, env=os.environ,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'wen.yaml'}:6:1: mood: unknown key "
        "(check the spelling; see persona.schema.json for the keys allowed)"
    ]
    assert "1 of 2 persona files valid" in result.stderr


def test_a_bad_persona_never_loads_and_a_bad_edit_keeps_the_last_good_one(tmp_path):
    good = write(tmp_path, "wen", MINIMAL.format(id="wen"))
    write(tmp_path, "broken", MINIMAL.format(id="broken") + "schema_version: 2\n")
    store = PersonaStore(tmp_path)
    assert [p.id for p in store.all()] == ["wen"]

    good.write_text(MINIMAL.format(id="wen").replace("Going across?", "Mind the oars."))
    os.utime(good, (1, 1))
    assert store.get("wen").greeting == "Mind the oars."  # type: ignore[union-attr]

    good.write_text(MINIMAL.format(id="wen") + "voice: loud\n")
    os.utime(good, (2, 2))
    assert store.get("wen").greeting == "Mind the oars."  # type: ignore[union-attr]

    good.unlink()
    assert store.get("wen") is None


def test_lore_comes_up_only_when_a_keyword_is_mentioned():
    hilda = load_persona(PERSONA_DIR / "blacksmith_hilda.yaml")
    assert [e.keywords[0] for e in hilda.lore_for("Tell me about the Vaelmoor traders")] == ["Vaelmoor"]
    assert hilda.lore_for("Nice weather today") == []
    assert hilda.lore_for("minecart") == []  # whole words only
    # a keyword's singular or plural calls its entry up too: the writer wrote "mine", the player says "mines"
    assert [e.keywords[0] for e in hilda.lore_for("Are the mines still open?")] == ["Kharzad"]
    assert [e.keywords[0] for e in hilda.lore_for("Have you ever fought dragons?")] == ["dragon"]


def test_the_committed_json_schema_is_current():
    assert (REPO_ROOT / SCHEMA_PATH).read_text() == schema_text(), "stale: run `npcvoice schema`"
