"""A LoRA adapter added to a built decoder as low-rank branches beside its 4-bit matrices, unmerged.

Merging the adapter into the weights does not survive 4-bit rounding: its update is 0.3-1 % of a matrix's
norm, a 4-bit grid's step is about 40 % of a typical weight, so re-rounding snaps almost every weight back
to its old code (the tuned model served in session 8 kept about 6 % of its update). Merged into 8-bit
blocks it survives, but 8-bit matrices prefill about 1.2x slower here. So the base matrices stay exactly
the GGUF's 4-bit blocks, and each adapted MatMulNBits gets the adapter's two small factors beside it, in
the graph's float type: ``y = x·Wᵀ + scale · (x·Aᵀ)·Bᵀ``. For rank 16 that is about 5 % more arithmetic;
where the builder fused several projections into one node (Llama's q, k and v), their factors are stacked
into one branch (A's rows one under another, B block-diagonal), so each node gets one branch.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from npcvoice.devtools.gguf_blocks import save
from npcvoice.training.export import adapter_factors

# The builder's node (by the name part after the layer) -> the transformers modules it computes, in order.
NODE_MODULES = {
    "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "o_proj": ("o_proj",),
    "gate_up_proj": ("gate_proj", "up_proj"),
    "gate_proj": ("gate_proj",),
    "up_proj": ("up_proj",),
    "down_proj": ("down_proj",),
}
_NODE = re.compile(r"/layers\.(\d+)/\w+/(\w+)/")


def stacked(factors: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Several modules' factors as one branch: A's rows stacked, B block-diagonal (each module's output
    rows read only its own rank's columns)."""
    a = np.concatenate([f[0] for f in factors], 0)
    b = np.zeros((sum(f[1].shape[0] for f in factors), a.shape[0]), np.float32)
    row = column = 0
    for _, part in factors:
        b[row : row + part.shape[0], column : column + part.shape[1]] = part
        row, column = row + part.shape[0], column + part.shape[1]
    return a, b


def add_lora_branches(onnx_dir: Path, adapter_dir: Path) -> int:
    """Give every MatMulNBits of ``onnx_dir``'s decoder that the adapter updates its low-rank branch;
    returns how many nodes got one. Every adapted module must find its node."""
    import onnx
    from onnx import helper, numpy_helper

    factors = adapter_factors(adapter_dir)
    model = onnx.load(str(onnx_dir / "model.onnx"))
    graph = model.graph
    nodes = list(graph.node)
    initializers = {i.name: i for i in graph.initializer}
    producer = {output: i for i, node in enumerate(nodes) for output in node.output}
    used: set[tuple[int, str]] = set()
    after: dict[int, list[Any]] = defaultdict(list)  # new nodes, by the position they follow
    renamed: dict[str, str] = {}
    for node in nodes:
        found = _NODE.search(node.name) if node.op_type == "MatMulNBits" else None
        if found is None or found.group(2) not in NODE_MODULES:
            continue
        layer, modules = int(found.group(1)), NODE_MODULES[found.group(2)]
        wanted = [(layer, m) for m in modules]
        if not any(w in factors for w in wanted):
            continue
        if not all(w in factors for w in wanted):
            raise ValueError(f"{node.name}: the adapter updates only some of {', '.join(modules)}")
        used.update(wanted)
        a, b = stacked([factors[w] for w in wanted])
        dtype = helper.tensor_dtype_to_np_dtype(initializers[node.input[2]].data_type)
        # the node's result as the rest of the graph reads it (gguf_blocks may have added an offset to it)
        result = node.output[0].removesuffix("_codes")
        prefix = node.name.rsplit("/", 1)[0] + "/lora"
        graph.initializer.extend([
            numpy_helper.from_array(np.ascontiguousarray(a.T.astype(dtype)), f"{prefix}/A"),
            numpy_helper.from_array(np.ascontiguousarray(b.T.astype(dtype)), f"{prefix}/B"),
        ])  # fmt: skip
        low, update, total = f"{prefix}/low", f"{prefix}/update", f"{prefix}/sum"
        after[producer[result]] += [
            helper.make_node("MatMul", [node.input[0], f"{prefix}/A"], [low], name=f"{prefix}/MatMulA"),
            helper.make_node("MatMul", [low, f"{prefix}/B"], [update], name=f"{prefix}/MatMulB"),
            helper.make_node("Add", [result, update], [total], name=f"{prefix}/Add"),
        ]
        renamed[result] = total
    if missing := sorted(set(factors) - used):
        raise ValueError(f"{adapter_dir}: no node in the decoder for layer {missing[0][0]}'s {missing[0][1]}")
    for node in [*nodes, *(n for added in after.values() for n in added if n.op_type == "MatMul")]:
        for i, name in enumerate(node.input):  # the rest of the graph reads the sums
            node.input[i] = renamed.get(name, name)
    for output in graph.output:
        output.name = renamed.get(output.name, output.name)
    del graph.node[:]
    for i, node in enumerate(nodes):
        graph.node.append(node)
        graph.node.extend(after.get(i, []))
    save(model, onnx_dir)
    return len(renamed)
