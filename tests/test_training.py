"""The NPC corpus and what turns it into a tuned model: the corpus's checks (what a reply may teach), the
rendering through the served model's own prompt builder and tokenizer, the compact prompt, and the merge
of a LoRA adapter into the GGUF's own blocks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from npcvoice.dialogue.prompt import MemoryView, build_messages, fixed_messages
from npcvoice.personas.schema import Persona
from npcvoice.training.check import check_conversation, check_corpus
from npcvoice.training.corpus import CORPUS_DIR, SKILLS, Conversation, Located, is_validation, load_personas
from npcvoice.training.tune import sampled, steps_of
from npcvoice.turns import Turn

REPO = Path(__file__).resolve().parents[1]
FERRY = Persona.model_validate(
    {
        "schema_version": 1, "id": "ferry_test", "display_name": "Odile Marsh",
        "description": "Odile runs the rope ferry at Greywater.", "greeting": "Crossing, traveller?",
        "lore": [{"keywords": ["crossing", "fare"], "text": "The crossing costs two copper pennies a head."}],
        "emotions": ["neutral", "anger"],
        "actions": [{"name": "sell_item", "description": "Sell the player something.",
                     "parameters": [{"name": "item", "type": "string"}]}],
    }
)  # fmt: skip


def problems(*steps: Mapping[str, object]) -> list[str]:
    conversation = Conversation.model_validate({"persona": "ferry_test", "steps": list(steps)})
    return check_conversation(Located(conversation, "test"), {"ferry_test": FERRY})


def npc(text: str, skill: str, emotion: str = "neutral", **more: object) -> dict[str, object]:
    return {"npc": text, "skill": skill, "emotion": emotion, **more}


def test_the_shipped_corpus_is_valid_large_and_covers_every_skill_with_held_out_personas():
    found, counts = check_corpus(CORPUS_DIR)
    assert found == [], found[:10]
    assert counts["personas"] >= 200 and counts["replies"] >= 4000, counts
    assert all(counts.get(f"skill {skill}", 0) >= 50 for skill in SKILLS), counts
    personas, _ = load_personas(CORPUS_DIR / "personas")
    held_out = [p for p in personas if is_validation(p)]
    assert 10 <= len(held_out) <= 0.2 * len(personas)
    shipped = {p.stem for p in (REPO / "npc_personas").glob("*.yaml")}
    assert not shipped & set(personas)  # the shipped NPCs are never trained on


def test_a_reply_that_would_teach_the_wrong_thing_is_named():
    # grounded: the lore keyword was said and the reply uses the lore
    assert problems({"player": "What's the fare?"}, npc("Two coppers a head.", "lore")) == []
    assert "no lore keyword" in problems({"player": "How are you?"}, npc("Two coppers.", "lore"))[0]
    assert "uses no word of the lore" in problems({"player": "The fare?"}, npc("Ask my son.", "lore"))[0]
    # memory only of what the prompt holds
    said = {"player": "My name is Bran."}
    assert problems(said, npc("Evening.", "smalltalk"), {"player": "Who am I?"}, npc("Bran.", "memory")) == []
    assert "recalls nothing" in problems({"player": "Who am I?"}, npc("Bran, is it?", "memory"))[0]
    # actions: only when asked, with the player's own words
    rope = {"name": "sell_item", "args": {"item": "rope"}}
    assert problems({"player": "I'll buy the rope."}, npc("Here.", "action", action=rope)) == []
    assert (
        "not from the conversation"
        in problems({"player": "Sell me that."}, npc("Here.", "action", action=rope))[0]
    )
    assert (
        "only lines that ask" in problems({"player": "Nice rope."}, npc("Aye.", "smalltalk", action=rope))[0]
    )
    # the world, the player's name, emotions, the form of speech
    assert "out of the world" in problems({"player": "Are you an AI?"}, npc("I am no AI.", "deflect"))[0]
    assert "takes the player's" in problems({"player": "I'm Bran."}, npc("I'm Bran.", "identity"))[0]
    assert "not one of the persona's" in problems({"player": "Hi."}, npc("Hi.", "smalltalk", "joy"))[0]
    assert "usual mood" in problems({"player": "You fool!"}, npc("Hm.", "emotion"))[0]
    assert "stage directions" in problems({"player": "Hi."}, npc("*waves* Hi.", "smalltalk"))[0]
    assert "must follow" in problems(npc("Hi.", "smalltalk"), {"player": "Hi."})[0]


def test_the_compact_prompt_writes_the_rules_never_and_each_fact_once():
    def prompt(style, rendered=None):
        memory = MemoryView(turns, player_facts=["My name is Bran."], world={"weather": "fog"})
        return build_messages(FERRY, memory, "The fare?", lambda m: 0, 10_000, rendered=rendered, style=style)

    turns: list[Turn] = []
    full, compact = prompt("full"), prompt("compact")
    assert "Stay in character" in full[0]["content"] and "Stay in character" not in compact[0]["content"]
    assert "Emotions: neutral, anger." in compact[0]["content"]
    assert "sell_item item=<string>" in compact[0]["content"]
    first = compact[-1]["content"]
    assert 'About the player: "My name is Bran."' in first and "Right now the weather is fog." in first
    # the next turn: the player's earlier message is in the history as it was sent; no repeat of either
    turns = [Turn("player", "The fare?"), Turn("npc", "Two coppers.")]
    rendered = {("player", "The fare?"): first, ("npc", "Two coppers."): "[emotion: neutral] Two coppers."}
    later = prompt("compact", rendered)
    assert len(later) == len(fixed_messages(FERRY, "compact")) + 3
    assert "About the player" not in later[-1]["content"] and "Right now" not in later[-1]["content"]
    assert "About the player" in prompt("full", rendered)[-1]["content"]


def test_training_steps_take_whole_sequences_and_a_budget_takes_a_seeded_sample():
    from npcvoice.training.render import Sequence

    dense = Sequence(list(range(100)), [(10, 40), (50, 90)])
    sparse = Sequence(list(range(100)), [(90, 100)])
    assert steps_of([dense, sparse, dense], 150) == [[dense, sparse], [dense]]
    many = [Sequence(list(range(10 + n)), [(5, 8)]) for n in range(40)]
    sample = sampled(many, 300, seed=7)
    assert sum(len(s.ids) for s in sample) <= 300 and len(sample) >= 8
    assert sample == sampled(many, 300, seed=7) and sample != sampled(many, 300, seed=8)
    everything = sampled(many, 10**6, seed=7)
    assert sorted(len(s.ids) for s in everything) == sorted(len(s.ids) for s in many)


@pytest.fixture(scope="module")
def served_ids():
    from npcvoice.dialogue.model import bundled_model_folder, load_model

    return load_model("tokenizer", bundled_model_folder(REPO / ".models", "cpu"), "cpu")


def test_a_conversation_renders_as_the_served_model_reads_it_one_sequence_with_every_reply_a_target(
    served_ids,
):
    from npcvoice.training.corpus import read_conversations
    from npcvoice.training.render import render

    personas, _ = load_personas(CORPUS_DIR / "personas")
    conversation = next(read_conversations(CORPUS_DIR / "conversations" / "sample.jsonl")).conversation
    (sequence,) = render(conversation, personas[conversation.persona], served_ids.prompt_ids)
    replies = [s for s in conversation.steps if s.npc]
    assert len(sequence.targets) == len(replies)
    for (start, end), step in zip(sequence.targets, replies, strict=True):
        said = served_ids.tokenizer.decode(np.array(sequence.ids[start:end], np.int32))
        assert (
            said.strip()
            == f"[emotion: {step.emotion}]"
            + (f" [action: {step.action.name}]" if step.action else "")
            + f" {step.npc}"
        )
        assert sequence.ids[end - 2] in served_ids.end_ids  # the end of message is learned: it stops
    # the sequence starts as the served prompt does: the template's first marker, then the system message
    assert sequence.ids[0] == int(served_ids.tokenizer.encode("<|im_start|>")[0])
    assert served_ids.tokenizer.decode(np.array(sequence.ids[:9], np.int32)).startswith(
        "system\nYou are Odile"
    )


def test_a_corpus_rendered_once_trains_elsewhere_as_rendered_and_not_once_the_corpus_changed(tmp_path):
    # A GPU box with torch but not the served model's tokenizer trains from the file `--rendered` wrote.
    import shutil

    from npcvoice.training.tune import TuneOptions, rendered_split

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS_DIR / "personas", corpus / "personas")
    (corpus / "conversations").mkdir()
    shutil.copy(CORPUS_DIR / "conversations" / "sample.jsonl", corpus / "conversations")
    options = TuneOptions(
        corpus_dir=corpus, models_dir=REPO / ".models", rendered=str(tmp_path / "r.json.gz")
    )
    written = rendered_split(options)
    assert written.train and (tmp_path / "r.json.gz").exists()
    missing = TuneOptions(corpus_dir=corpus, models_dir=tmp_path / "no-models", rendered=options.rendered)
    assert rendered_split(missing) == written  # read back whole, with no tokenizer at hand
    (corpus / "conversations" / "sample.jsonl").write_text("")
    with pytest.raises(SystemExit, match="another corpus"):
        rendered_split(missing)


@pytest.fixture
def tiny_tuning(tmp_path, monkeypatch):
    """Options for real, tiny tuning runs: the sample conversation cut to 64 tokens, rank 2, 4 steps; the
    base model read once (a fresh copy a run). Call it with the output folder's name and any changes."""
    import copy
    import gzip
    import shutil

    from npcvoice.training import tune as tuning

    corpus = tmp_path / "corpus"
    (corpus / "personas").mkdir(parents=True)
    shutil.copy(CORPUS_DIR / "personas" / "ferrywoman_odile.yaml", corpus / "personas")
    (corpus / "conversations").mkdir()
    shutil.copy(CORPUS_DIR / "conversations" / "sample.jsonl", corpus / "conversations")

    def options(out: str, **changed: Any) -> tuning.TuneOptions:
        return tuning.TuneOptions(
            corpus_dir=corpus, out_dir=tmp_path / out, models_dir=REPO / ".models", step_tokens=1,
            epochs=4, max_steps=4, max_train_tokens=0, lora_rank=2, save_every=1, validation_sequences=0,
            checkpoint_dir=tmp_path / "checkpoint", rendered=str(tmp_path / "rendered.json.gz"), **changed,
        )  # fmt: skip

    tuning.rendered_split(options("render"))
    rendered = json.loads(gzip.decompress((tmp_path / "rendered.json.gz").read_bytes()))
    for sequence in rendered["train"]:
        sequence["ids"], sequence["targets"] = sequence["ids"][:64], [[48, 64]]
    (tmp_path / "rendered.json.gz").write_bytes(gzip.compress(json.dumps(rendered).encode()))
    base = tuning.base_model()
    monkeypatch.setattr(tuning, "base_model", lambda: copy.deepcopy(base))
    return options


def test_a_stopped_tuning_run_goes_on_from_its_checkpoint_to_the_adapter_of_a_run_never_stopped(
    tmp_path, monkeypatch, tiny_tuning
):
    # An epoch of the whole corpus is hours on 2 cores: a run stopped (Ctrl-C, the end of a session) is
    # run again with the same command and goes on where it was, to the very same adapter. Training is
    # real; the stop is a wrapper around the real loss that raises in the third step.
    from safetensors.numpy import load_file

    from npcvoice.training import tune as tuning

    options, corpus = tiny_tuning, tmp_path / "corpus"
    tuning.tune(options("straight"))
    assert not (tmp_path / "checkpoint" / tuning.CHECKPOINT).exists()  # done: nothing left to resume

    real_loss, calls = tuning._batch_loss, []

    def stopped_in_step_three(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(tuning, "_batch_loss", stopped_in_step_three)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(options("stopped"))
    monkeypatch.setattr(tuning, "_batch_loss", real_loss)

    # Only the run that stopped goes on from its checkpoint: other options, or --no-resume, start over.
    key = tuning.run_key(options("stopped"), tuning.corpus_hash(corpus))
    saved = tuning.load_checkpoint(options("stopped"), key)
    assert saved is not None and saved["step"] == 2
    other = options("stopped", learning_rate=1e-4)
    assert tuning.load_checkpoint(other, tuning.run_key(other, tuning.corpus_hash(corpus))) is None
    assert tuning.load_checkpoint(options("stopped", resume=False), key) is None

    counted: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(tuning, "_batch_loss", counting)
    tuning.tune(options("stopped"))
    assert len(counted) == 2  # steps 3 and 4 only: steps 1 and 2 came from the checkpoint
    straight = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    resumed = load_file(tmp_path / "stopped" / "adapter_model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    record = json.loads((tmp_path / "stopped" / tuning.RECORD).read_text())
    assert [h["step"] for h in record["losses"]] == [1, 2, 3, 4]


def test_a_run_started_from_an_adapter_goes_on_from_its_weights_and_records_which(tmp_path, tiny_tuning):
    # A shipped adapter trained for hours goes on training on a changed corpus (--init-adapter). With a
    # learning rate of 0 the run changes nothing, so what it writes is the adapter it started from.
    import dataclasses

    from safetensors.numpy import load_file

    from npcvoice.training import tune as tuning

    options = tiny_tuning
    tuning.tune(options("first"))
    first = tmp_path / "first"
    tuning.tune(options("kept", init_adapter=str(first), learning_rate=0.0))
    started = load_file(first / "adapter_model.safetensors")
    kept = load_file(tmp_path / "kept" / "adapter_model.safetensors")
    assert started.keys() == kept.keys() and any(
        np.abs(v).max() > 0 for k, v in started.items() if "lora_B" in k
    )
    assert all(np.array_equal(started[k], kept[k]) for k in started)
    record = json.loads((tmp_path / "kept" / tuning.RECORD).read_text())
    assert record["init_adapter_sha256"] == tuning.adapter_hash(first)
    fresh = options("fresh", learning_rate=0.0)
    assert tuning.run_key(fresh, "c") != tuning.run_key(
        dataclasses.replace(fresh, init_adapter=str(first)), "c"
    )
    with pytest.raises(SystemExit, match="overwrite"):
        tuning.tune(options("first", init_adapter=str(first)))
    with pytest.raises(SystemExit, match="same"):
        tuning.tune(dataclasses.replace(options("wider", init_adapter=str(first)), lora_rank=4))


def test_an_adapter_merges_into_the_gguf_whole_and_in_gguf_row_order(tmp_path):
    """A LoRA update is far smaller than a 4-bit grid's step: the merge must keep it (into Q8_0), not
    round it away, and must put it on GGUF's permuted query rows; untouched tensors stay bit for bit."""
    import gguf
    from safetensors.numpy import save_file

    from npcvoice.dialogue.model import bundled_gguf
    from npcvoice.training.export import merge_into_gguf, permute_rows

    base = bundled_gguf()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 1, "lora_alpha": 1}))
    a = np.random.default_rng(0).normal(0, 1, (1, 576)).astype(np.float32)
    b = np.zeros((576, 1), np.float32)
    b[5, 0] = 0.004  # B·A: a small change to one row of layer 2's query (its head 0, dimension 5)
    save_file(
        {
            "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight": a,
            "base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight": b,
        },
        str(adapter / "adapter_model.safetensors"),
    )
    merged = merge_into_gguf(base, adapter, tmp_path / "tuned.gguf")
    before, after = gguf.GGUFReader(str(base)), gguf.GGUFReader(str(merged))
    assert {f for f in before.fields if not f.startswith("GGUF.")} == {
        f for f in after.fields if not f.startswith("GGUF.")
    }
    changed = [
        t.name
        for t, u in zip(before.tensors, after.tensors, strict=True)
        if t.tensor_type != u.tensor_type or not np.array_equal(t.data, u.data)
    ]
    assert changed == ["blk.2.attn_q.weight"]
    (old,) = [t for t in before.tensors if t.name == "blk.2.attn_q.weight"]
    (new,) = [t for t in after.tensors if t.name == "blk.2.attn_q.weight"]
    assert new.tensor_type == gguf.GGMLQuantizationType.Q8_0
    moved = gguf.quants.dequantize(new.data, new.tensor_type) - gguf.quants.dequantize(
        old.data, old.tensor_type
    )
    expected = permute_rows(b @ a, 9)
    row = int(np.argmax(np.abs(expected).sum(axis=1)))
    assert row != 5  # GGUF's row for transformers' row 5
    kept = float((moved[row] * expected[row]).sum() / (expected[row] ** 2).sum())
    assert 0.9 < kept < 1.1  # the update is there, whole (re-rounded into Q4_1, about 6 % of it was)
