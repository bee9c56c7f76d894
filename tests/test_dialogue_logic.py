"""The dialogue engine's model-free parts: sampling, stop sequences, the KV-cache budget, secrets, facts.

These run without the model; the cache test uses plain objects in place of generators (it tests only
the bookkeeping around them).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from npcvoice.dialogue.cache import Conversation, ConversationCache, common_prefix
from npcvoice.dialogue.prompt import MemoryView, build_messages, fixed_messages
from npcvoice.dialogue.reply import ReplyFilter
from npcvoice.dialogue.sampling import Sampler, SamplingSettings, StopMatcher, check_sampling
from npcvoice.dialogue.secrets import code_words
from npcvoice.personas.loader import load_persona
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.turns import Turn, player_facts
from tests.conftest import PERSONA_DIR, REPO_ROOT

HILDA = load_persona(PERSONA_DIR / "blacksmith_hilda.yaml")
FIXED = len(fixed_messages(HILDA))  # the messages every prompt starts with, before the past turns
VAULT = load_persona(REPO_ROOT / "tests" / "personas" / "vault_keeper_test.yaml")


def logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=1000).astype(np.float32)


def test_the_same_seed_picks_the_same_tokens_and_another_seed_does_not():
    def tokens(seed: int) -> list[int]:
        sampler = Sampler(SamplingSettings(temperature=1.0, top_p=1.0, top_k=0, seed=seed))
        return [sampler.pick(logits(i), []) for i in range(30)]

    assert tokens(7) == tokens(7)
    assert tokens(7) != tokens(8)


def test_top_k_one_and_temperature_zero_are_greedy():
    scores = logits()
    best = int(np.argmax(scores))
    assert Sampler(SamplingSettings(temperature=0.0)).pick(scores, []) == best
    assert {Sampler(SamplingSettings(top_k=1, seed=s)).pick(scores, []) for s in range(10)} == {best}


def test_repetition_penalty_steers_away_from_tokens_already_said():
    scores = np.zeros(10, np.float32)
    scores[3], scores[4] = 2.0, 1.9
    sampler = Sampler(SamplingSettings(temperature=0.0, repetition_penalty=1.2))
    assert sampler.pick(scores, []) == 3
    assert sampler.pick(scores, [3]) == 4


def test_top_p_keeps_only_the_likeliest_tokens():
    scores = np.full(100, -10.0, np.float32)
    scores[[5, 6]] = [5.0, 4.0]
    sampler = Sampler(SamplingSettings(temperature=1.0, top_p=0.5, top_k=0, seed=1))
    assert {sampler.pick(scores, []) for _ in range(50)} == {5}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SamplingSettings(temperature=2.5), "sampling.temperature: must be between 0 and 2"),
        (SamplingSettings(top_p=0.0), "sampling.top_p: must be above 0 and at most 1"),
        (SamplingSettings(max_tokens=0), "sampling.max_tokens: must be between 1 and 512"),
        (SamplingSettings(stop=("x" * 65,)), "sampling.stop: each stop sequence must be 1 to 64 characters"),
    ],
)
def test_out_of_range_sampling_names_the_field_and_limit(settings, message):
    with pytest.raises(InvalidArgument) as caught:
        check_sampling(settings, 512)
    assert caught.value.message == message


def test_stop_sequences_cut_the_reply_even_across_pieces_and_hold_back_a_possible_start():
    stop = StopMatcher(["END!"])
    assert stop.feed("Hello E") == "Hello "  # "E" may begin "END!"
    assert stop.feed("N") == ""
    assert stop.feed("D! more") == ""
    assert stop.stopped
    assert stop.feed("anything") == ""
    other = StopMatcher(["END!"])
    assert other.feed("Hello E") + other.feed("ntering.") + other.flush() == "Hello Entering."


def entry(key: str, nbytes: int) -> Conversation:
    return Conversation(key=key, model_id="m", generator=object(), max_length=1, nbytes=nbytes)


def test_the_cache_evicts_least_recently_used_idle_conversations_to_its_budget():
    cache = ConversationCache(budget_bytes=300)
    for key in "abc":
        cache.put(entry(key, 100))
    cache.get("a")  # a is now the most recently used
    busy = cache.get("b")
    assert busy is not None
    busy.busy.acquire()  # b is in use
    cache.put(entry("d", 100))
    assert "c" not in cache  # the oldest idle one
    assert {"a", "b", "d"} == {k for k in "abcd" if k in cache}
    assert cache.total_bytes == 300
    assert cache.take("b") is None  # in use: not handed out


def test_common_prefix_counts_matching_leading_tokens():
    assert common_prefix([1, 2, 3, 4], [1, 2, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_past_turns_are_written_as_first_sent_and_lore_already_given_is_not_repeated():
    lore_line = "Tell me about the dragon."
    rendered = {
        ("player", lore_line): "(You know: the old forge burned.)\nTell me about the dragon.",
        ("npc", "It burned."): "[emotion: sadness] It burned.",
    }
    memory = MemoryView(recent_turns=[Turn("player", lore_line), Turn("npc", "It burned.")])
    messages = build_messages(HILDA, memory, "And the dragon now?", lambda m: 0, 1000, rendered=rendered)
    assert messages[FIXED]["content"] == rendered[("player", lore_line)]
    assert messages[FIXED + 1]["content"] == "[emotion: sadness] It burned."
    dragon = next(e.text for e in HILDA.lore if "dragon" in e.keywords)
    assert dragon in messages[-1]["content"]  # the earlier message did not carry it: added now
    rendered[("player", lore_line)] = f"(You know: {dragon})\n{lore_line}"
    messages = build_messages(HILDA, memory, "And the dragon now?", lambda m: 0, 1000, rendered=rendered)
    assert dragon not in messages[-1]["content"]


def test_a_code_word_from_the_description_is_never_said_even_alone():
    assert code_words(VAULT) == {"zephyr", "canary", "7731"}
    assert code_words(HILDA) == set()
    reply = ReplyFilter(VAULT)
    reply.feed("Fine. ZEPHYR-CANARY-7731. Anything else? ")
    assert reply.text == "Fine. Anything else?"
    assert reply.dropped_sentences == 1


def test_a_reply_cut_at_its_length_limit_drops_its_unfinished_last_sentence():
    reply = ReplyFilter(HILDA)
    reply.feed("Steel is honest. It bends before it breaks, and it")
    reply.finish(complete_only=True)
    assert reply.text == "Steel is honest."
    alone = ReplyFilter(HILDA)
    alone.feed("Steel is honest and it")
    alone.finish(complete_only=True)
    assert alone.text == "Steel is honest and it"  # better something than silence


def test_player_facts_are_their_first_person_statements():
    turns = [
        Turn("player", "Hello. My name is Ada. Where is the mine?"),
        Turn("npc", "I am Hilda."),
        Turn("player", "I live in Vaelmoor, sadly. Am I late?"),
    ]
    assert player_facts(turns) == ["My name is Ada.", "I live in Vaelmoor, sadly."]
    # however they put it: a fact kept is what a memory question can still be answered from once its
    # line has left the prompt's window of recent turns
    told = [
        "Afternoon! My name's Brin Callard.",
        "My son Darro is apprenticed to a shipwright in Velloran.",
        "My father turns seventy on Sunday.",
    ]
    assert player_facts([Turn("player", line) for line in told]) == [
        "My name's Brin Callard.", *told[1:],
    ]  # fmt: skip


def test_a_growing_conversation_moves_the_prompt_start_only_every_few_turns():
    def words(messages) -> int:
        return sum(len(m["content"].split()) for m in messages)

    core = words([{"role": "system", "content": HILDA.description}]) + 200
    history: list[Turn] = []
    rendered: dict[tuple[str, str], str] = {}
    starts = []
    for n in range(30):
        line = f"question number {n} about the forge and the mine"
        messages = build_messages(
            HILDA, MemoryView(recent_turns=list(history)), line, words, core + 150, rendered=rendered
        )
        assert words(messages) <= core + 150
        starts.append(messages[FIXED]["content"] if len(messages) > FIXED + 1 else "")
        rendered = (
            {
                (t.role, t.text): m["content"]
                for t, m in zip(history[-(len(messages) - FIXED - 1) :], messages[FIXED:-1], strict=True)
            }
            if len(messages) > FIXED + 1
            else {}
        )
        rendered[("player", line)] = messages[-1]["content"]
        history += [Turn("player", line), Turn("npc", f"answer number {n}, steel and sparks")]
    moves = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert moves <= 10, starts  # one turn in three at most; sliding by one would move it on ~25 turns


def test_a_persona_without_a_temperature_gets_its_models_own_and_one_with_keeps_it():
    # A tuned model reads best taking its likeliest words; an instruction model samples at 0.7. (The
    # model is a stand-in: sampling reads only its temperature.)
    from types import SimpleNamespace

    from npcvoice.dialogue.engine import DialogueEngine
    from npcvoice.dialogue.options import DialogueOptions
    from npcvoice.dialogue.types import SamplingOverrides

    engine = DialogueEngine(DialogueOptions(persona_dir=PERSONA_DIR))
    unset = HILDA.model_copy(update={"dialogue": HILDA.dialogue.model_copy(update={"temperature": None})})
    chosen = HILDA.model_copy(update={"dialogue": HILDA.dialogue.model_copy(update={"temperature": 0.4})})
    tuned, bundled = SimpleNamespace(temperature=0.0), SimpleNamespace(temperature=0.7)
    none = SamplingOverrides()
    assert engine.sampling_for(unset, none, tuned).temperature == 0.0  # type: ignore[arg-type]
    assert engine.sampling_for(unset, none, bundled).temperature == 0.7  # type: ignore[arg-type]
    assert engine.sampling_for(chosen, none, tuned).temperature == 0.4  # type: ignore[arg-type]
    request = SamplingOverrides(temperature=1.1)  # a request's own wins over both
    assert engine.sampling_for(chosen, request, tuned).temperature == 1.1  # type: ignore[arg-type]
