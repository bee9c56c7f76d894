"""A LoRA adapter from ``npcvoice tune`` merged into a copy of the bundled GGUF, in the GGUF's own block
types, so that ``npcvoice prepare-model`` builds the tuned model like any other GGUF (carrying its 4-bit
blocks into the ONNX decoder) and llama.cpp can run it too.

Each adapted matrix is dequantized, given its low-rank update (``scale · B·A``), and quantized again, into
Q8_0: a matrix without an update comes back bit for bit. Not into its own Q4_1: a LoRA update is small
(0.3-1 % of a matrix's norm for the shipped adapter) against a 4-bit grid's step (about 40 % of a typical
weight), so re-rounding to Q4_1 snaps almost every weight back to its old code and kept about 6 % of the
update, the rest replaced by rounding noise: the model served in session 8 was the bundled model with
noise. On Q8_0's grid the whole update stays (its projection on the update measured at 1.00) and the
rounding added is Q8_0's, about a sixteenth of Q4_1's. GGUF stores Llama's query and key rows permuted
(llama.cpp's converter interleaves each head's two rotary halves): the update, learned on transformers'
layout, is permuted the same way. Names, metadata, tokenizer and chat template are copied from the base.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

# transformers' module name -> GGUF tensor name, per layer
GGUF_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}  # fmt: skip
MERGED_FORMAT = "q8_0"  # how adapted matrices are stored (a merged file of another format is another file)
_LORA_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


def permute_rows(matrix: np.ndarray, heads: int) -> np.ndarray:
    """transformers' query/key layout -> GGUF's (what llama.cpp's converter does to Llama's q and k)."""
    halves = matrix.reshape(heads, 2, matrix.shape[0] // heads // 2, *matrix.shape[1:])
    return halves.swapaxes(1, 2).reshape(matrix.shape)


def adapter_factors(adapter_dir: Path) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    """Each adapted module's (A, scale·B) in fp32, by (layer, module), in transformers' layout as peft
    saved them: A is rank × in, B is out × rank."""
    from safetensors.numpy import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = float(config["lora_alpha"]) / float(config["r"])
    parts: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for key, value in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
        found = _LORA_KEY.search(key)
        if found is None:
            raise ValueError(f"{adapter_dir}: unexpected adapter tensor {key}")
        parts.setdefault((int(found.group(1)), found.group(2)), {})[found.group(3)] = value.astype(np.float32)
    return {where: (ab["A"], scale * ab["B"]) for where, ab in parts.items()}


def adapter_updates(adapter_dir: Path) -> dict[tuple[int, str], np.ndarray]:
    """Each adapted matrix's full update ``scale · B·A`` in transformers' layout, by (layer, module)."""
    return {where: b @ a for where, (a, b) in adapter_factors(adapter_dir).items()}


def merge_into_gguf(base: Path, adapter_dir: Path, out: Path) -> Path:
    """``out``: ``base`` with the adapter merged into its matrices (see the module's docstring)."""
    import gguf

    reader = gguf.GGUFReader(str(base))
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    updates = {
        f"blk.{layer}.{GGUF_NAMES[module]}.weight": (module, update)
        for (layer, module), update in adapter_updates(adapter_dir).items()
    }
    names = {t.name for t in reader.tensors}
    if missing := sorted(set(updates) - names):
        raise ValueError(f"{adapter_dir}: no tensor {missing[0]} in {base.name}")
    partial = out.with_suffix(".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(partial), arch=str(reader.fields["general.architecture"].contents()))
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # written by the writer itself
        value_type = field.types[0]
        sub = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub)
    for tensor in reader.tensors:
        data, kind = tensor.data, tensor.tensor_type
        if tensor.name in updates:
            module, update = updates[tensor.name]
            if module in ("q_proj", "k_proj"):
                update = permute_rows(update, heads if module == "q_proj" else kv_heads)
            weights = gguf.quants.dequantize(data, kind)
            if weights.shape != update.shape:
                raise ValueError(f"{tensor.name}: {weights.shape} in the GGUF, {update.shape} in the adapter")
            kind = gguf.GGMLQuantizationType[MERGED_FORMAT.upper()]  # not its own Q4_1: see above
            data = gguf.quants.quantize(weights + update, kind)
        # (a quantized tensor's data is its bytes; the writer takes their shape back to the weights')
        writer.add_tensor(tensor.name, np.ascontiguousarray(data), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    del reader  # the reader maps the base file
    partial.replace(out)
    return out
