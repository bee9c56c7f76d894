"""What ``npcvoice eval`` prints: a table per script, a summary over all of them, and the difference
between a run and a recorded transcript."""

from __future__ import annotations

import difflib
import textwrap
from collections import Counter
from typing import Any

from npcvoice.evaluation.runner import LineResult

ALWAYS = ("says something", "no repeat", "no loop", "no prompt text")


def script_table(name: str, results: list[LineResult]) -> str:
    rows = [f"== {name}", f"{'#':>3}  {'tag':<10} {'result':<6} exchange"]
    for index, result in enumerate(results, 1):
        tags = "".join(f" [{e}]" for e in result.emotions) + "".join(f" {{{a}}}" for a in result.actions)
        verdict = "pass" if result.passed else "FAIL"
        rows.append(f"{index:>3}  {result.line.tag or '-':<10} {verdict:<6} > {result.line.shown}")
        for text in textwrap.wrap(f"< {result.reply}{tags}", 96) or ["< (nothing)"]:
            rows.append(f"{'':<22}{text}")
        rows += [f"{'':<22}! {c.name}: {c.detail}" for c in result.checks if not c.passed]
    return "\n".join(rows)


def summary(runs: dict[str, list[LineResult]]) -> str:
    results = [result for run in runs.values() for result in run]
    failed = Counter(c.name for r in results for c in r.checks if not c.passed)
    asked_action = [r for r in results if r.line.expect.action]
    acted = [r for r in asked_action if r.line.expect.action in r.actions]
    by_tag: dict[str, list[LineResult]] = {}
    for result in results:
        by_tag.setdefault(result.line.tag or "-", []).append(result)
    lines = [
        "== summary",
        f"lines passed          {sum(r.passed for r in results)} of {len(results)}",
        *(f"{name + ' failed':<22}{failed[name]}" for name in ALWAYS),
        f"replies with emotion  {_share(sum(bool(r.emotions) for r in results), len(results))}",
        f"actions asked, taken  {_share(len(acted), len(asked_action))}",
    ]
    lines += [
        f"tag {tag:<18}{_share(sum(r.passed for r in rs), len(rs))} passed"
        for tag, rs in sorted(by_tag.items())
    ]
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.0f} %)" if whole else "-"


def transcript(runs: dict[str, list[LineResult]]) -> dict[str, Any]:
    return {name: [result.said() for result in results] for name, results in runs.items()}


def differences(recorded: dict[str, Any], runs: dict[str, list[LineResult]]) -> list[str]:
    """Where this run said or did something else than the recorded transcript, as unified diffs."""
    found: list[str] = []
    for name, results in runs.items():
        before = [_lines(entry) for entry in recorded.get(name, [])]
        now = [_lines(result.said()) for result in results]
        if before != now:
            found.append(
                "\n".join(
                    difflib.unified_diff(
                        [line for entry in before for line in entry],
                        [line for entry in now for line in entry],
                        f"{name} (recorded)",
                        f"{name} (now)",
                        lineterm="",
                    )
                )
            )
    return found


def _lines(entry: dict[str, Any]) -> list[str]:
    return [
        f"> {entry['say']}",
        f"< {entry['reply']}",
        f"  emotions {entry['emotions']} actions {entry['actions']}",
    ]
