"""The package's modules import each other without a cycle (type-only imports included): each can be read,
tested and changed from the bottom up. A cycle hid in the dialogue service (engine -> generation -> jobs ->
reuse -> engine, prompt -> types -> reply -> secrets -> prompt) until the engine's parts became a protocol."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[1] / "services"


def imports() -> dict[str, set[str]]:
    modules = {}
    for path in SERVICES.rglob("*.py"):
        if "api" in path.relative_to(SERVICES).parts[:2]:
            continue  # generated code
        name = ".".join(path.relative_to(SERVICES).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {module for module in found if module in modules and module != name}
    return graph


def test_no_module_of_the_package_imports_itself_through_others():
    graph = imports()
    assert graph.get("npcvoice.dialogue.engine")  # it was read: the engine imports its parts
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None
