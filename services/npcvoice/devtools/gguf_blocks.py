"""A GGUF's own quantized blocks, written back into the MatMulNBits nodes of onnxruntime-genai's builder.

The builder re-rounds the fp32 weights it is given, which costs a lot for a model that was already
quantized (SmolLM2's int4 from the builder agrees with the fp32 model on 65 % of next tokens). But where
the GGUF's blocks are 32 weights on a 4-bit or 8-bit grid, the fp32 weights transformers made from them
are exactly ``d·q + m`` per block, so the codes come back exactly and go into the builder's nodes:

- Q4_1 (``d·q + m``, q in 0..15): the block's minimum is code 0 and its maximum code 15; an integer zero
  point plus a small fp32 term for the rest of the minimum (``m_rest · sum(x_block)``) keeps the fast kernel.
- Q4_0 (``d·(q - 8)``): the weight of largest magnitude is code 0; zero point 8, nothing else.
- Q8_0 (``d·q``, q in -128..127), in the int8 output head: codes around 128; a 4-bit node whose
  weights are Q8_0 blocks (a tuned model's merged matrices, ``training.export``) becomes an 8-bit node.

Each node is checked: its weights must come back within float rounding, else (K-quants, Q5_0, F16...)
the builder's own quantization stays. Which nodes came back is reported.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

# Relative error (to the matrix's largest weight) below which a recovered grid is the GGUF's own.
EXACT = 1e-4


def _hf_weight(weights: dict[str, np.ndarray], node_name: str) -> np.ndarray:
    """The fp32 weight (out_features × in_features) behind one of the builder's MatMulNBits nodes."""
    if node_name.startswith("/lm_head"):
        return np.asarray(weights.get("lm_head.weight", weights["model.embed_tokens.weight"]))
    layer = re.search(r"layers\.(\d+)", node_name)
    if layer is None:
        raise KeyError(node_name)
    prefix = f"model.layers.{layer.group(1)}."
    if "qkv_proj" in node_name:
        fused = weights.get(f"{prefix}self_attn.qkv_proj.weight")  # Phi-3 keeps them fused
        if fused is not None:
            return np.asarray(fused)
        return np.concatenate([weights[f"{prefix}self_attn.{x}_proj.weight"] for x in "qkv"], 0)
    for name in ("o_proj", "gate_up_proj", "gate_proj", "up_proj", "down_proj"):
        if f"/{name}/" in node_name or node_name.endswith(name):
            part = "self_attn" if name == "o_proj" else "mlp"
            return np.asarray(weights[f"{prefix}{part}.{name}.weight"])
    raise KeyError(node_name)


def _pack_nibbles(values: np.ndarray) -> np.ndarray:
    return np.asarray(values[..., 0::2] | (values[..., 1::2] << 4), np.uint8)


def _error(rebuilt: np.ndarray, w: np.ndarray) -> float:
    return float(np.abs(rebuilt - w).max() / max(float(np.abs(w).max()), 1e-30))


def _q8_0(w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    scale = np.abs(w).max(-1) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(w / scale[..., None]), -128, 127)
    return _error(codes * scale[..., None], w), (codes + 128).astype(np.uint8), scale


def _q4_0(w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    flat = w.reshape(-1, w.shape[-1])
    extreme = flat[np.arange(flat.shape[0]), np.abs(flat).argmax(-1)].reshape(w.shape[:-1])
    scale = -extreme / 8.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(w / scale[..., None]) + 8, 0, 15)
    return _error((codes - 8) * scale[..., None], w), codes.astype(np.uint8), scale


def _q4_1(w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    low = w.min(-1)
    scale = (w.max(-1) - low) / 15.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint((w - low[..., None]) / scale[..., None]), 0, 15)
    return _error(codes * scale[..., None] + low[..., None], w), codes.astype(np.uint8), scale, low


def _set_attribute(node: Any, name: str, value: int) -> None:
    from onnx import helper

    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])


class _Rewriter:
    """Rewrites one graph's MatMulNBits nodes in place, keeping the new nodes in order."""

    def __init__(self, model: Any) -> None:
        self.graph = model.graph
        self.initializers = {i.name: i for i in self.graph.initializer}
        self.nodes: list[Any] = []
        self.block_sums: dict[str, str] = {}

    def put(self, name: str, array: np.ndarray) -> None:
        from onnx import numpy_helper

        self.initializers[name].CopyFrom(numpy_helper.from_array(array, name))

    def dtype(self, name: str) -> Any:
        from onnx import helper

        # fp32 in the CPU variant, fp16 in the CUDA one: the new scales and offsets keep the graph's type.
        return helper.tensor_dtype_to_np_dtype(self.initializers[name].data_type)

    def write_int8(self, node: Any, w: np.ndarray) -> str | None:
        error, codes, scale = _q8_0(w)
        if error > EXACT:
            return None
        n, blocks = codes.shape[:2]
        self.put(node.input[1], codes)
        self.put(node.input[2], scale.astype(self.dtype(node.input[2])))
        self.put(node.input[3], np.full((n, blocks), 128, np.uint8))
        return "Q8_0"

    def write_int4(self, node: Any, w: np.ndarray) -> str | None:
        n, blocks = w.shape[:2]
        dtype = self.dtype(node.input[2])
        error, codes, scale = _q4_0(w)
        if error <= EXACT:
            zero = np.full((n, blocks), 8, np.uint8)
            rest = None
        else:
            error, codes, scale, low = _q4_1(w)
            if error > EXACT:
                return None
            zero = np.clip(np.rint(-low / scale), 0, 15).astype(np.uint8)
            rest = low + scale * zero.astype(np.float32)  # what the integer zero point leaves of each minimum
        padded_zero = np.concatenate([zero, np.zeros((n, 1), np.uint8)], 1) if blocks % 2 else zero
        self.put(node.input[1], _pack_nibbles(codes))
        self.put(node.input[2], scale.astype(dtype))
        self.put(node.input[3], _pack_nibbles(padded_zero))
        if rest is None:
            return "Q4_0"
        self._add_offsets(node, rest.astype(dtype), blocks, w.shape[2])
        return "Q4_1"

    def _add_offsets(self, node: Any, rest: np.ndarray, blocks: int, block: int) -> None:
        from onnx import helper, numpy_helper

        source = node.input[0]
        if source not in self.block_sums:  # sum of the input over each block, shared by the nodes reading it
            shape, axes = f"{node.name}/block_shape", f"{node.name}/block_axes"
            reshaped, summed = f"{node.name}/blocks", f"{node.name}/block_sum"
            self.graph.initializer.extend([
                numpy_helper.from_array(np.array([0, 0, blocks, block], np.int64), shape),
                numpy_helper.from_array(np.array([-1], np.int64), axes),
            ])  # fmt: skip
            self.nodes.insert(len(self.nodes) - 1, helper.make_node("Reshape", [source, shape], [reshaped]))
            self.nodes.insert(
                len(self.nodes) - 1, helper.make_node("ReduceSum", [reshaped, axes], [summed], keepdims=0)
            )
            self.block_sums[source] = summed
        offsets = f"{node.name}/block_offsets"
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(rest.T), offsets))
        output, raw, correction = node.output[0], node.output[0] + "_codes", f"{node.name}/offset"
        node.output[0] = raw
        self.nodes.append(helper.make_node("MatMul", [self.block_sums[source], offsets], [correction]))
        self.nodes.append(helper.make_node("Add", [raw, correction], [output]))


def carry_gguf_blocks(onnx_dir: Path, hf_dir: Path) -> Counter[str]:
    """Rewrite every MatMulNBits whose weights were GGUF Q4_0/Q4_1/Q8_0 blocks with those codes; returns
    how many nodes got which (``"builder"``: kept the builder's own quantization)."""
    import onnx
    from onnx import helper
    from safetensors.numpy import load_file

    weights: dict[str, np.ndarray] = {}
    for part in sorted(hf_dir.glob("*.safetensors")):
        weights.update(load_file(str(part)))
    model = onnx.load(str(onnx_dir / "model.onnx"))
    rewriter = _Rewriter(model)
    outcome: Counter[str] = Counter()
    for node in list(model.graph.node):
        rewriter.nodes.append(node)
        if node.op_type != "MatMulNBits":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        bits, block, k, n = attributes["bits"], attributes["block_size"], attributes["K"], attributes["N"]
        try:
            w = _hf_weight(weights, node.name).astype(np.float32)
        except KeyError:
            outcome["builder"] += 1
            continue
        if w.shape != (n, k) or k % block:
            outcome["builder"] += 1
            continue
        w = w.reshape(n, k // block, block)
        kind = rewriter.write_int8(node, w) if bits == 8 else rewriter.write_int4(node, w)
        if kind is None and bits == 4 and (kind := rewriter.write_int8(node, w)) is not None:
            _set_attribute(node, "bits", 8)  # Q8_0 blocks (a tuned model's merged matrices) stay 8-bit
        outcome[kind or "builder"] += 1
    del model.graph.node[:]
    model.graph.node.extend(rewriter.nodes)
    save(model, onnx_dir)
    return outcome


def share_int8_embeddings(onnx_dir: Path) -> bool:
    """Let the input embedding read the int8 output head instead of its own fp32 table, for a model whose
    embedding and head are tied; False (nothing changed) where the graph has no such pair."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_dir / "model.onnx"))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    head = next((n for n in graph.node if n.op_type == "MatMulNBits" and n.name.startswith("/lm_head")), None)
    gather = next((n for n in graph.node if n.name == "/model/embed_tokens/Gather"), None)
    if head is None or gather is None or gather.op_type != "Gather" or gather.input[0] not in initializers:
        return False
    if {a.name: helper.get_attribute_value(a) for a in head.attribute}["bits"] != 8:
        return False
    codes_name, scales_name, zero_name = head.input[1], head.input[2], head.input[3]
    rows, blocks, block = numpy_helper.to_array(initializers[codes_name]).shape
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
    save(model, onnx_dir)
    return True


def save(model: Any, onnx_dir: Path) -> None:
    import onnx

    (onnx_dir / "model.onnx.data").unlink(missing_ok=True)
    onnx.save(model, str(onnx_dir / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
              all_tensors_to_one_file=True)  # fmt: skip
