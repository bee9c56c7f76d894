"""bench.blind: what a reader is shown (no model named, every model's play of a conversation to the same
reader, the context the game set on a line) and the tally of their verdicts per model. The replies here
are made up: this tests the packing and counting, not a model."""

from __future__ import annotations

import json
from pathlib import Path

from bench.blind import from_eval, pack, tally
from tests.conftest import REPO_ROOT

UNSEEN = REPO_ROOT / "bench" / "unseen"


def recorded(script: Path, reply: str) -> dict[str, list[dict[str, object]]]:
    from npcvoice.evaluation.script import load_script

    lines = load_script(script).lines
    return {str(script): [{"say": line.shown, "reply": f"{reply} {i}", "emotions": ["neutral"], "actions": []}
                          for i, line in enumerate(lines)]}  # fmt: skip


def test_readers_see_no_model_and_each_judges_every_models_play_of_their_conversations(tmp_path):
    scripts = sorted((UNSEEN / "scripts").glob("*.yaml"))[:3]
    played = []
    for model, reply in (("model-alpha", "Aye"), ("model-beta", "Nay")):
        for script in scripts:
            played += from_eval(model, recorded(script, reply), UNSEEN / "personas")
    key = pack(played, tmp_path, readers=2, seed=3)

    assert len(key) == 6
    shown = "".join(p.read_text() for p in tmp_path.glob("reader-*.md"))
    assert "model-alpha" not in shown and "model-beta" not in shown
    assert "(the game sets: weather=" in shown  # a line's world context is shown with it
    readers_of: dict[str, set[int]] = {}
    for what in key.values():
        readers_of.setdefault(what["conversation"], set()).add(what["reader"])
    assert all(len(readers) == 1 for readers in readers_of.values())
    for packet, what in key.items():  # each packet is in its reader's file, under its own persona
        text = (tmp_path / f"reader-{what['reader']}.md").read_text()
        assert f"Packet {packet}: a conversation with the NPC of {UNSEEN / 'personas'}" in text


def test_the_tally_counts_each_models_passes_by_tag_and_names_what_was_not_judged(tmp_path):
    script = UNSEEN / "scripts" / "lockkeeper_brannoc.yaml"
    played = [*from_eval("alpha", recorded(script, "Aye"), UNSEEN / "personas"),
              *from_eval("beta", recorded(script, "Nay"), UNSEEN / "personas")]  # fmt: skip
    key = pack(played, tmp_path, readers=1, seed=1)
    verdicts = []
    for packet, what in key.items():
        for index, said in enumerate(what["lines"], 1):
            if what["model"] == "beta" and index == 16:
                continue  # left unjudged
            good = what["model"] == "alpha" or said["tag"] != "lore"
            verdicts.append(
                {"packet": packet, "line": index, "pass": good, "flags": [] if good else ["wrong_fact"]}
            )
    (tmp_path / "verdicts-1.jsonl").write_text("\n".join(json.dumps(v) for v in verdicts) + "\n")

    header, rows, missing = tally(tmp_path)
    assert header == ["tag / flag", "alpha", "beta"]
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["lore"] == ["4/4", "0/4"]
    assert by_name["all"] == ["16/16", "11/15"]
    assert by_name["wrong_fact"] == [0, 4]
    assert len(missing) == 1 and "line 16" in missing[0]


def test_a_npc_mind_transcript_is_one_play_per_model_and_conversation_under_the_corpus_persona():
    from bench.blind import from_npc_mind

    entries = [
        {"model": model, "npc": "ferrywoman_odile", "conversation": 4, "skill": skill, "line": "Hello?",
         "reply": "Crossing's two pennies.", "emotions": ["neutral"], "actions": []}
        for model in ("base", "tuned") for skill in ("smalltalk", "lore")
    ]  # fmt: skip
    played = from_npc_mind(entries, Path("training/personas"))
    assert [(p.model, p.conversation, [s.tag for s in p.lines]) for p in played] == [
        ("base", "ferrywoman_odile-4", ["smalltalk", "lore"]),
        ("tuned", "ferrywoman_odile-4", ["smalltalk", "lore"]),
    ]
    assert played[0].persona == str(Path("training/personas/ferrywoman_odile.yaml"))
