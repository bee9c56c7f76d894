"""How often a player's question brings the lore entry that answers it into the NPC's prompt, and how often
a line that asks for no lore brings one in anyway: by the writer's keywords alone (``Persona.lore_for``)
and with the nearest entry by words when no keyword is in the line (``dialogue.lore.called_up``, as
served), each with the keywords as written and with fewer (each entry's first three, or first one: a
writer in a hurry). On lines written apart from the personas' keywords (bench/data/lore_questions.yaml:
writers who saw only each entry's text, set a for choosing, set b only measured). Pure text, no dialogue
model: it runs in a second.

    .venv/bin/python -m bench.lore_search [--misses]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import yaml

from bench.common import REPO_ROOT, table
from npcvoice.dialogue.lore import called_up
from npcvoice.personas.schema import LoreEntry, Persona

LINES = REPO_ROOT / "bench" / "data" / "lore_questions.yaml"
PERSONA_DIRS = (REPO_ROOT / "bench" / "unseen" / "personas", REPO_ROOT / "npc_personas")


def persona(persona_id: str, keywords: int | None = None) -> Persona:
    """A bench persona, each entry's keywords cut to the first ``keywords`` (all: None)."""
    path = next(d / f"{persona_id}.yaml" for d in PERSONA_DIRS if (d / f"{persona_id}.yaml").exists())
    data = yaml.safe_load(path.read_text())
    for entry in data.get("lore", []):
        entry["keywords"] = entry["keywords"][:keywords]
    return Persona.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="print the lines it gets wrong, as served")
    args = parser.parse_args()
    written = yaml.safe_load(LINES.read_text())
    finders: list[tuple[str, Callable[[Persona, str], list[LoreEntry]]]] = [
        ("keywords", lambda p, line: p.lore_for(line)),
        ("keywords, else nearest (served)", called_up),
    ]
    rows: list[list[object]] = []
    for name in sorted(written):
        for keywords in (None, 3, 1):
            for by, find in finders:
                right = asked = other = said = 0
                for part in written[name]:
                    npc = persona(part["persona"], keywords)
                    for question in part["questions"]:
                        entries = find(npc, question["say"])
                        asked += 1
                        hit = npc.lore[question["entry"] - 1] in entries
                        right += hit
                        if args.misses and not hit and find is called_up and keywords == 3:
                            print(f"  missed ({part['persona']} {question['entry']}): {question['say']}")
                    for line in part["others"]:
                        said += 1
                        taken = bool(find(npc, line["say"]))
                        other += taken
                        if args.misses and taken and find is called_up and keywords == 3:
                            print(f"  taken ({part['persona']}): {line['say']}")
                rows.append(
                    [name, "all" if keywords is None else f"first {keywords}", by,
                     f"{right} / {asked}", f"{other} / {said}"]
                )  # fmt: skip
    headers = ["set", "keywords", "found by", "questions: the answering entry in", "other lines: an entry in"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
