"""The emotion calibration measured on the real tuned model, straight through the dialogue engine: prefilling
a persona's prompt ahead also measures the model's usual leaning among its emotions (content-free lines
appended one at a time, then rewound), and what it leaves in the cache is the fixed prompt alone, so a
conversation started from it writes what a cold start writes."""

from __future__ import annotations

from bench.common import generate_blocking
from npcvoice.dialogue.aids import TUNED_AIDS
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.types import GenerationSummary, SamplingOverrides, TurnRequest
from tests.conftest import PERSONA_DIR, REPO_ROOT

LINE = "Good morning! What brings you to the forge so early?"


def engine(aids: frozenset[str] = TUNED_AIDS) -> DialogueEngine:
    return DialogueEngine(
        DialogueOptions(models_dir=REPO_ROOT / ".models", persona_dir=PERSONA_DIR, aids=sorted(aids))
    )


def prefilled_ahead(dialogue: DialogueEngine, persona_id: str) -> None:
    job = dialogue.begin_warm(persona_id)
    assert job is not None
    while not job.step():
        pass


def reply(dialogue: DialogueEngine, conversation: str) -> GenerationSummary:
    request = TurnRequest("blacksmith_hilda", LINE, conversation, sampling=SamplingOverrides(seed=3))
    return generate_blocking(dialogue, request)  # stepped in this thread, as the service steps it


def test_prefilling_a_persona_ahead_measures_its_emotion_leaning_once():
    dialogue = engine()
    for persona_id in ("blacksmith_hilda", "guard_captain_vael", "innkeeper_tobin"):
        persona = dialogue.persona(persona_id)
        key = dialogue.warm_key(dialogue.local_model(persona), persona)
        assert key not in dialogue.emotion_priors
        prefilled_ahead(dialogue, persona_id)
        bonuses = dialogue.emotion_priors[key]
        assert len(bonuses) == len(persona.emotions)  # a way into each declared emotion
        # After content-free lines the model leans to the NPC's usual mood (its first emotion, the one of
        # the prompt's example exchange): that one gets the least taken off.
        usual = dialogue.vocabulary(dialogue.local_model(persona)).encode(f" {persona.emotions[0]}")[0]
        assert min(bonuses, key=lambda t: bonuses[t]) == usual, (persona_id, bonuses)
        # Measured once: the next prefill ahead (after a conversation took the cached prompt) keeps it.
        dialogue.cache.take(key)
        prefilled_ahead(dialogue, persona_id)
        assert dialogue.emotion_priors[key] is bonuses


def test_a_conversation_from_the_prompt_prefilled_ahead_writes_what_a_cold_start_writes():
    plain = TUNED_AIDS - {"emotion_calibration"}  # the same choice on both: only the prefix differs
    warmed, cold = engine(plain), engine(plain)
    prefilled_ahead(warmed, "blacksmith_hilda")
    assert warmed.emotion_priors  # measured, and the generator rewound to the fixed prompt
    from_warm, from_cold = reply(warmed, "from-warm"), reply(cold, "from-cold")
    assert from_warm.cached_prompt_tokens > 0 and from_cold.cached_prompt_tokens == 0
    assert from_warm.text == from_cold.text
