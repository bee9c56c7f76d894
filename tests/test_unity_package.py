"""clients/csharp is a Unity package a studio can add from git: Unity ignores any file of an immutable
(git) package without a .meta beside it, and two assets with one GUID clash, so a source file added
without its .meta would silently vanish from a game's build."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "clients" / "csharp"


def assets() -> list[Path]:
    """What Unity imports: everything but .meta files and folders ending in ~ (Samples~)."""
    return sorted(
        path
        for path in PACKAGE.rglob("*")
        if path.suffix != ".meta" and not any(part.endswith("~") for part in path.relative_to(PACKAGE).parts)
    )


def test_every_asset_of_the_package_has_a_meta_with_its_own_guid():
    guids: dict[str, str] = {}
    for path in assets():
        meta = path.with_name(path.name + ".meta")
        assert meta.is_file(), f"{path.relative_to(PACKAGE)} has no .meta: Unity would ignore it"
        found = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), re.M)
        assert found, f"{meta.name} has no guid"
        assert found.group(1) not in guids, f"{path.name} and {guids.get(found.group(1))} share a guid"
        guids[found.group(1)] = path.name
    assert {"package.json", "Conversation.cs", "NpcVoice.asmdef"} <= set(guids.values())
    metas = {p.with_suffix("") for p in PACKAGE.rglob("*.meta") if "~" not in str(p.relative_to(PACKAGE))}
    assert metas == set(assets()), "a .meta left behind by a removed file"


def test_the_manifest_names_the_package_and_samples_that_exist():
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert re.fullmatch(r"com(\.[a-z0-9-]+)+", manifest["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    for sample in manifest["samples"]:
        assert (PACKAGE / sample["path"]).is_dir() and "~/" in sample["path"]  # Unity imports it on request
    assembly = json.loads((PACKAGE / "Runtime" / "NpcVoice.asmdef").read_text())
    assert assembly["noEngineReferences"]  # the library runs outside Unity too (CI runs it with Mono)
