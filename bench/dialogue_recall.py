"""Recall: does the NPC answer a question about what the player told it? With and without the engine's
recall bonus, the same players, seeds and model, in one run.

    .venv/bin/python -m bench.dialogue_recall

Each player introduces themselves, says one more thing, then asks two questions about what they said
(the NPC's replies in between are a neutral "I see.", so that only recall differs). A reply passes if it
holds one of the expected words.
"""

from __future__ import annotations

from pathlib import Path

import npcvoice.dialogue.recall as recall
from bench.common import generate_blocking, machine, table
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.personas import PersonaStore
from npcvoice.turns import Turn, player_facts

PLAYERS = [
    ("blacksmith_hilda", ["Good morning! My name is Aric and I just arrived from Vaelmoor.",
                          "My sword is chipped. Can you repair it?"],
     [("Do you remember my name?", ["aric"]), ("And where did I say I came from?", ["vaelmoor"])]),
    ("guard_captain_vael", ["Good evening, captain. I am Mira, a cartographer from Emberfall.",
                            "When do the city gates close?"],
     [("What did I tell you my name was?", ["mira"]),
      ("And what do I do for a living?", ["cartographer", "map"])]),
    ("innkeeper_tobin", ["Hello! I'm Bram, a wool trader on my way to Vaelmoor.",
                         "I need a room for two nights."],
     [("Do you remember my name?", ["bram"]), ("What do I trade in?", ["wool"])]),
    ("blacksmith_hilda", ["Hi there. I'm Selene and I hunt wolves for a living.", "It's cold today."],
     [("What's my name again?", ["selene"]), ("What do I hunt?", ["wolves", "wolf"])]),
    ("innkeeper_tobin", ["Evening. My horse is called Thunder and I live in Riverrun.", "Any news?"],
     [("Where do I live?", ["riverrun"]), ("What's my horse called?", ["thunder"])]),
]  # fmt: skip
SEEDS = (1, 2)


def answered(engine: DialogueEngine) -> list[bool]:
    results = []
    for seed in SEEDS:
        for npc, said, questions in PLAYERS:
            history = [t for line in said for t in (Turn("player", line), Turn("npc", "I see."))]
            memory = MemoryView(recent_turns=history, player_facts=player_facts(history))
            for question, expected in questions:
                request = TurnRequest(npc, question, "", memory, SamplingOverrides(seed=seed))
                text = generate_blocking(engine, request).text.lower()
                results.append(any(word in text for word in expected))
    return results


def main() -> None:
    engine = DialogueEngine(DialogueOptions(), PersonaStore(Path("npc_personas")))
    bonus = recall.RECALL_BONUS
    rows: list[list[object]] = []
    for label, value in (("without recall (bonus 0)", 0.0), (f"with recall (bonus {bonus:g})", bonus)):
        recall.RECALL_BONUS = value
        results = answered(engine)
        rows.append([label, f"{sum(results)} of {len(results)}"])
    recall.RECALL_BONUS = bonus
    print(f"{machine()}; {len(PLAYERS)} players, {len(SEEDS)} seeds, bundled model\n")
    print(table(["engine", "questions answered"], rows))


if __name__ == "__main__":
    main()
