"""The conversation test scripts of one persona, run by the eval runner, as rows for the page's table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from npcvoice.client import NpcClient
from npcvoice.evaluation.runner import LineResult, run_script
from npcvoice.evaluation.script import Script, ScriptError, load_script


def scripts_for(directory: Path, npc_id: str) -> tuple[list[tuple[Path, Script]], list[str]]:
    """The scripts in ``directory`` that talk to ``npc_id`` (alone or in a scene), and the errors of those
    that cannot be read."""
    scripts: list[tuple[Path, Script]] = []
    errors: list[str] = []
    if not directory.is_dir():
        return scripts, errors
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")):
        try:
            script = load_script(path)
        except ScriptError as error:
            errors.append(str(error))
            continue
        if npc_id in script.npcs:
            scripts.append((path, script))
    return scripts, errors


def result_row(result: LineResult) -> dict[str, Any]:
    return {
        **result.said(),
        "tag": result.line.tag,
        "passed": result.passed,
        "failed": [f"{c.name}: {c.detail}" if c.detail else c.name for c in result.checks if not c.passed],
    }


async def run_scripts(directory: Path, npc_id: str, client: NpcClient) -> dict[str, Any]:
    """Run every script of ``npc_id`` (each resets its own player's memory first) and tabulate them."""
    scripts, errors = scripts_for(directory, npc_id)
    runs = []
    for path, script in scripts:
        rows = [result_row(result) for result in await run_script(script, client)]
        passed = sum(row["passed"] for row in rows)
        runs.append({"script": path.name, "passed": passed, "total": len(rows), "lines": rows})
    return {"npc_id": npc_id, "scripts": runs, "errors": errors}
