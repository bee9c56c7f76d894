"""A LoRA adapter from ``npcvoice tune`` merged into a copy of the bundled GGUF, in the GGUF's own block
types, so that ``npcvoice prepare-model`` builds the tuned model like any other GGUF (carrying its 4-bit
blocks into the ONNX decoder) and llama.cpp can run it too.

Each adapted matrix is dequantized, given its low-rank update (``scale · B·A``), and quantized again into
the same type (Q4_1 for SmolLM2's matrices): a matrix without an update comes back bit for bit, so what
moves is the tuning, plus rounding of the same size as the original quantization's. GGUF stores Llama's
query and key rows permuted (llama.cpp's converter interleaves each head's two rotary halves): the update,
learned on transformers' layout, is permuted the same way. The new tensors are written over the old ones'
bytes in a copy of the file, so names, metadata, tokenizer and chat template are the original's.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

# transformers' module name -> GGUF tensor name, per layer
GGUF_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}  # fmt: skip
_LORA_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


def permute_rows(matrix: np.ndarray, heads: int) -> np.ndarray:
    """transformers' query/key layout -> GGUF's (what llama.cpp's converter does to Llama's q and k)."""
    halves = matrix.reshape(heads, 2, matrix.shape[0] // heads // 2, *matrix.shape[1:])
    return halves.swapaxes(1, 2).reshape(matrix.shape)


def adapter_updates(adapter_dir: Path) -> dict[tuple[int, str], np.ndarray]:
    """Each adapted matrix's full update ``scale · B·A`` in transformers' layout, by (layer, module)."""
    from safetensors.numpy import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = float(config["lora_alpha"]) / float(config["r"])
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    parts: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        found = _LORA_KEY.search(key)
        if found is None:
            raise ValueError(f"{adapter_dir}: unexpected adapter tensor {key}")
        parts.setdefault((int(found.group(1)), found.group(2)), {})[found.group(3)] = value.astype(np.float32)
    return {where: scale * (ab["B"] @ ab["A"]) for where, ab in parts.items()}


def merge_into_gguf(base: Path, adapter_dir: Path, out: Path) -> Path:
    """``out``: ``base`` with the adapter merged into its matrices (see the module's docstring)."""
    import gguf

    reader = gguf.GGUFReader(str(base))
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    tensors = {t.name: t for t in reader.tensors}
    replaced: list[tuple[int, bytes]] = []
    for (layer, module), update in sorted(adapter_updates(adapter_dir).items()):
        tensor = tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight"]
        if module in ("q_proj", "k_proj"):
            update = permute_rows(update, heads if module == "q_proj" else kv_heads)
        weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        if weights.shape != update.shape:
            raise ValueError(f"{tensor.name}: {weights.shape} in the GGUF, {update.shape} in the adapter")
        blocks = gguf.quants.quantize(weights + update, tensor.tensor_type)
        replaced.append((int(tensor.data_offset), np.ascontiguousarray(blocks).tobytes()))
    del reader, tensors  # the reader maps the file: let it go before writing its copy
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    shutil.copyfile(base, partial)
    with partial.open("r+b") as file:
        for offset, data in replaced:
            file.seek(offset)
            file.write(data)
    partial.replace(out)
    return out
