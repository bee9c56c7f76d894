"""Tiny randomly initialised language models of each architecture `npcvoice prepare-model` takes, built
in the test (no download): 2 layers, hidden size 64, with the bundled SmolLM2 tokenizer (49152 tokens),
saved as a Hugging Face folder or, for Llama, written as a GGUF with the `gguf` package the way llama.cpp
writes one (Q/K rows permuted, blocks quantized)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from npcvoice.dialogue.model import bundled_gguf, bundled_model_folder
from tests.conftest import REPO_ROOT

VOCABULARY = 49152
SHAPE = {"vocab_size": VOCABULARY, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
ATTENTION = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}
INIT = {"initializer_range": 0.1}
# Gemma's local attention window: shorter than the test's longer inputs, so the window is exercised.
SLIDING = 8
LAYER_TYPES = ["sliding_attention", "full_attention"]  # Gemma 3: local and global attention, one each


def tiny_config(architecture: str) -> Any:
    hf: Any = importlib.import_module("transformers")
    common: dict[str, Any] = {
        **SHAPE,
        **ATTENTION,
        **INIT,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
    }
    if architecture == "LlamaForCausalLM":
        return hf.LlamaConfig(**common, tie_word_embeddings=True)
    if architecture == "MistralForCausalLM":
        return hf.MistralConfig(**common, tie_word_embeddings=False, sliding_window=None)
    if architecture == "Qwen2ForCausalLM":
        return hf.Qwen2Config(**common, tie_word_embeddings=True)
    if architecture == "Qwen3ForCausalLM":
        return hf.Qwen3Config(**common, head_dim=16, tie_word_embeddings=True)
    if architecture == "Gemma2ForCausalLM":
        return hf.Gemma2Config(**common, head_dim=16, query_pre_attn_scalar=16, sliding_window=SLIDING)
    if architecture == "Gemma3ForCausalLM":
        return hf.Gemma3TextConfig(
            **common, head_dim=16, query_pre_attn_scalar=16, sliding_window=SLIDING, layer_types=LAYER_TYPES
        )
    if architecture == "Phi3ForCausalLM":
        return hf.Phi3Config(**common, original_max_position_embeddings=256, tie_word_embeddings=False)
    raise ValueError(architecture)


def copy_tokenizer(folder: Path) -> None:
    """The bundled model's tokenizer and chat template, as `npcvoice prepare-model` left them."""
    source = bundled_model_folder(REPO_ROOT / ".models", "cpu")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(source / name, folder / name)


def on_int4_grid(weights: Any) -> Any:
    """``weights`` moved onto a 4-bit grid per block of 32 inputs (each block's lowest weight code 0, its
    highest code 15, zero an integer code): the grid onnxruntime-genai's asymmetric int4 (and int8) finds
    again exactly, so the converted model must compute what the torch model computes, and any difference
    in the logits is the conversion's fault, not rounding's."""
    import torch

    blocks = weights.reshape(weights.shape[0], -1, 32)
    low, high = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    scale = (high - low).clamp_min(1e-6) / 15
    zero = torch.round(-low / scale).clamp(0, 15)
    codes = (torch.round(blocks / scale) + zero).clamp(0, 15)
    codes[..., 0], codes[..., 1] = 0, 15
    return ((codes - zero) * scale).reshape(weights.shape)


def tiny_model(architecture: str, seed: int = 7) -> Any:
    import torch

    hf: Any = importlib.import_module("transformers")
    torch.manual_seed(seed)
    model = getattr(hf, architecture)(tiny_config(architecture)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(on_int4_grid(parameter))
            else:  # random norms, so a norm applied the wrong way (w or 1 + w) shows in the logits
                parameter.copy_(1.0 + 0.3 * torch.randn_like(parameter))
    return model


def save_hf_folder(model: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    copy_tokenizer(folder)
    return folder


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's order of Q/K rows (its rotary embedding pairs neighbours; transformers undoes this)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_llama_gguf(model: Any, path: Path, types: dict[str, str]) -> Path:
    """``model`` (a tiny Llama) as a GGUF whose weights are quantized per ``types`` (GGUF tensor name
    suffix -> GGML type), with the bundled GGUF's tokenizer and chat template."""
    import gguf

    config = model.config
    source = gguf.GGUFReader(str(bundled_gguf()))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)
    for key in ("tokens", "token_type", "merges"):
        values = source.fields[f"tokenizer.ggml.{key}"].contents()
        getattr(
            writer, {"tokens": "add_token_list", "token_type": "add_token_types"}.get(key, "add_token_merges")
        )(values)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(source.fields["tokenizer.chat_template"].contents())
    weights = {name: value.detach().float().numpy() for name, value in model.state_dict().items()}
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}  # fmt: skip
    tensors = {
        "token_embd.weight": weights["model.embed_tokens.weight"],
        "output_norm.weight": weights["model.norm.weight"],
    }
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in names.items():
            value = weights[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                value = _permute(value, config.num_attention_heads)
            elif gguf_name == "attn_k":
                value = _permute(value, config.num_key_value_heads)
            tensors[f"blk.{layer}.{gguf_name}.weight"] = value
    for name, value in tensors.items():
        kind = next((t for suffix, t in types.items() if name.endswith(suffix)), "F32")
        qtype = gguf.GGMLQuantizationType[kind]
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, value.astype(np.float32))
        else:
            writer.add_tensor(name, gguf.quants.quantize(value, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
