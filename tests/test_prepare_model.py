"""`npcvoice prepare-model` on models of every architecture it takes: tiny random models built here, saved
as Hugging Face folders (and one as a GGUF), converted, loaded by onnxruntime-genai, and compared with the
torch model they came from on the next-token logits of a few inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from npcvoice.devtools.model_source import SUPPORTED
from npcvoice.devtools.prepare_model import main, prepare
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.model import ChatTemplate, LoadedModel, load_model, prepared_models
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.runtime.errors import NotFound
from tests.conftest import REPO_ROOT
from tests.support.tiny_models import VOCABULARY, save_hf_folder, tiny_model, write_llama_gguf

INPUTS = [np.random.default_rng(seed).integers(20, VOCABULARY, size=6 + seed).tolist() for seed in range(6)]


def onnx_logits(folder: Path, name: str) -> list[np.ndarray]:
    """The ONNX model's next-token logits after each of ``INPUTS``."""
    loaded = load_model(name, folder, "cpu")
    found = []
    for ids in INPUTS:
        generator = loaded.new_generator(64)
        generator.append_tokens(np.array([ids], dtype=np.int32))
        found.append(np.asarray(generator.get_output("logits"), np.float32).reshape(-1, VOCABULARY)[-1])
    return found


def torch_logits(model: Any) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0, -1].float().numpy() for ids in INPUTS]


def agreement(found: list[np.ndarray], expected: list[np.ndarray]) -> tuple[float, float]:
    """Share of inputs whose likeliest next token is the same, and the worst correlation of the logits."""
    same = np.mean([int(a.argmax() == b.argmax()) for a, b in zip(found, expected, strict=True)])
    correlation = min(float(np.corrcoef(a, b)[0, 1]) for a, b in zip(found, expected, strict=True))
    return float(same), correlation


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.mark.parametrize("architecture", sorted(SUPPORTED))
def test_a_hugging_face_folder_of_each_architecture_converts_to_an_onnx_model_with_the_same_logits(
    architecture: str, models_dir: Path, tmp_path: Path
) -> None:
    model = tiny_model(architecture)
    name = f"tiny-{architecture.removesuffix('ForCausalLM').lower()}"
    folder = prepare(save_hf_folder(model, tmp_path / name), models_dir, name=name)
    same, correlation = agreement(onnx_logits(folder, name), torch_logits(model))
    # The weights are on the int4 grid (tiny_models.on_int4_grid): only activation rounding differs.
    print(architecture, same, correlation)
    assert same == 1.0 and correlation > 0.999, (architecture, same, correlation)
    assert prepared_models(models_dir, "cpu")[name] == folder


# Per layer: the fused QKV and the output projection from Q4_0 blocks, gate and up from Q4_1, down from
# Q4_1 (or, in the second case, from Q5_0 in layer 0, which MatMulNBits cannot carry); the tied
# embedding and output head from Q8_0.
CARRIED = {"attn_q.weight": "Q4_0", "attn_k.weight": "Q4_0", "attn_v.weight": "Q4_0",
           "attn_output.weight": "Q4_0", "ffn_gate.weight": "Q4_1", "ffn_up.weight": "Q4_1",
           "ffn_down.weight": "Q4_1", "token_embd.weight": "Q8_0"}  # fmt: skip
GGUF_CASES = {
    "all carried": (CARRIED, {"Q4_0": 4, "Q4_1": 6, "Q8_0": 1}, 1.0, 0.9999),
    # The Q5_0 matrix is rounded again by the builder: the logits move a little off the GGUF's.
    "one Q5_0": ({"blk.0.ffn_down.weight": "Q5_0", **CARRIED}, {"Q4_0": 4, "Q4_1": 5, "Q8_0": 1, "builder": 1},
                 5 / 6, 0.999),
}  # fmt: skip


@pytest.mark.parametrize("case", GGUF_CASES)
def test_a_gguf_keeps_its_own_q4_0_q4_1_and_q8_0_blocks_and_rounds_only_the_others(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    types, blocks, least_same, least_correlation = GGUF_CASES[case]
    gguf = write_llama_gguf(tiny_model("LlamaForCausalLM"), tmp_path / "tiny-llama.Q4.gguf", types)
    folder = prepare(gguf, tmp_path / "models")
    said = capsys.readouterr().out
    assert json.loads((folder / "npcvoice-model.json").read_text())["carried_blocks"] == blocks
    assert ("Q5_0 blocks do not map onto onnxruntime's MatMulNBits" in said) == ("builder" in blocks)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    same, correlation = agreement(onnx_logits(folder, "tiny-llama.q4"), torch_logits(reference.eval()))
    assert same >= least_same and correlation > least_correlation, (same, correlation)


def test_the_dialogue_engine_finds_prepared_models_by_name_and_lists_them_when_one_is_unknown(
    models_dir: Path, tmp_path: Path
) -> None:
    name = "tiny-named"
    folder = prepare(save_hf_folder(tiny_model("Qwen2ForCausalLM"), tmp_path / "q"), models_dir, name=name)
    engine = DialogueEngine(DialogueOptions(models_dir=models_dir, persona_dir=tmp_path, device="cpu"))
    assert engine.model(name).folder == folder
    with pytest.raises(NotFound) as unknown:
        engine.model("llama-70b")
    assert name in str(unknown.value) and "smollm2-135m" in str(unknown.value)


def test_an_unsupported_architecture_is_refused_in_one_line_naming_it_and_the_supported_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}')
    assert main([str(folder), "--models-dir", str(tmp_path / "models")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "GPT2LMHeadModel" in error and all(family in error for family in SUPPORTED.values())
    assert not (tmp_path / "models").exists()


def test_a_model_without_a_chat_template_needs_one_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = save_hf_folder(tiny_model("LlamaForCausalLM"), tmp_path / "base")
    (folder / "chat_template.jinja").unlink()
    assert main([str(folder), "--models-dir", str(tmp_path / "models")]) == 2
    assert "--chat-template" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """A tiny Gemma 3 (local attention window: 8 tokens) with Gemma's chat template, given on the command
    line since its folder has none."""
    work = tmp_path_factory.mktemp("gemma")
    folder = save_hf_folder(tiny_model("Gemma3ForCausalLM"), work / "gemma")
    (folder / "chat_template.jinja").unlink()
    template = REPO_ROOT / "docs" / "chat-templates" / "gemma.jinja"
    prepared = prepare(folder, work / "models", name="tiny-gemma", chat_template=template)
    return load_model("tiny-gemma", prepared, "cpu", context_tokens=64)


def test_a_template_that_wants_turns_to_alternate_gets_a_game_event_and_the_players_line_as_one(
    tiny_gemma: LoadedModel,
) -> None:
    """Gemma's template refuses two user messages in a row (a game event, then the player's line), and
    Gemma 2's any system message; the prompt is shaped to what the model's own template takes."""
    loaded = tiny_gemma
    assert (loaded.template.system, loaded.template.consecutive) == (True, False)  # Gemma 3 folds it
    messages = [
        {"role": "system", "content": "You are Hilda."},
        {"role": "user", "content": "[the player drew a sword]"},
        {"role": "user", "content": "The player says: Hello."},
    ]
    with pytest.raises(Exception, match=r"alternate|system"):
        loaded.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
    text = loaded.tokenizer.decode(np.array(loaded.prompt_ids(messages), dtype=np.int32))
    assert text.count("<start_of_turn>user") == 1
    assert text.index("You are Hilda.") < text.index("[the player drew a sword]") < text.index("Hello.")
    assert text.endswith("<start_of_turn>model\n")


def test_a_template_without_a_system_role_gets_the_persona_at_the_head_of_the_first_user_message() -> None:
    shaped = ChatTemplate(system=False, consecutive=False, added=()).shape(
        [
            {"role": "system", "content": "You are Hilda."},
            {"role": "user", "content": "Hello."},
            {"role": "assistant", "content": "Welcome."},
            {"role": "user", "content": "[a storm broke]"},
            {"role": "user", "content": "Bye."},
        ]
    )
    assert shaped == [
        {"role": "user", "content": "You are Hilda.\n\nHello."},
        {"role": "assistant", "content": "Welcome."},
        {"role": "user", "content": "[a storm broke]\n\nBye."},
    ]


def test_a_sliding_window_model_can_be_rewound_past_its_window_as_the_engine_does_between_turns(
    tiny_gemma: LoadedModel,
) -> None:
    """The engine rewinds a conversation's generator to the first token a new prompt changes; a local
    attention layer that kept only its window (8 here) could not go back 20 tokens."""
    ids = np.random.default_rng(3).integers(20, VOCABULARY, size=40).astype(np.int32)
    generator = tiny_gemma.new_generator(48)
    generator.append_tokens(ids[None, :30])
    generator.rewind_to(10)
    generator.append_tokens(ids[None, 10:40])
    rewound = np.asarray(generator.get_logits(), np.float32).reshape(-1)[:VOCABULARY]
    fresh = tiny_gemma.new_generator(64)
    fresh.append_tokens(ids[None, :40])
    assert np.allclose(
        rewound, np.asarray(fresh.get_logits(), np.float32).reshape(-1)[:VOCABULARY], atol=1e-3
    )
