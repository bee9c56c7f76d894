"""The tuned model's adapter beside the decoder's quantized matrices (devtools.lora_branches): what the
graph computes afterwards is the base matrix's output plus exactly the adapter's update, for a fused
q/k/v node as for a single one. A small real ONNX graph run by onnxruntime stands in for the decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

K, BLOCK = 64, 32
OUT = {"q_proj": 8, "k_proj": 4, "v_proj": 4, "o_proj": 6}


def _decoder(path, rng):
    """x -> qkv (one 8-bit MatMulNBits over q, k and v) and x -> o_proj, both graph outputs."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    for name, rows in (("attn/qkv_proj", 16), ("attn/o_proj", 6)):
        prefix = f"/model/layers.0/{name}"
        codes = rng.integers(0, 256, (rows, K // BLOCK, BLOCK)).astype(np.uint8)
        initializers += [
            numpy_helper.from_array(codes, f"{prefix}/codes"),
            numpy_helper.from_array(
                rng.uniform(0.01, 0.02, (rows, K // BLOCK)).astype(np.float32), f"{prefix}/scales"
            ),
            numpy_helper.from_array(np.full((rows, K // BLOCK), 128, np.uint8), f"{prefix}/zeros"),
        ]
        nodes.append(helper.make_node(
            "MatMulNBits", ["x", f"{prefix}/codes", f"{prefix}/scales", f"{prefix}/zeros"],
            [f"{prefix}/out"], name=f"{prefix}/MatMul_Q4", domain="com.microsoft",
            K=K, N=rows, bits=8, block_size=BLOCK,
        ))  # fmt: skip
    graph = helper.make_graph(
        nodes, "decoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, K])],
        [helper.make_tensor_value_info(f"/model/layers.0/{n}/out", TensorProto.FLOAT, None)
         for n in ("attn/qkv_proj", "attn/o_proj")],
        initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])  # fmt: skip
    onnx.save(model, str(path / "model.onnx"))


def _adapter(path, rng):
    from safetensors.numpy import save_file

    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 4}))
    tensors, factors = {}, {}
    for module, rows in OUT.items():
        part = "mlp" if module.endswith("mlp") else "self_attn"
        a = rng.normal(0, 1, (2, K)).astype(np.float32)
        b = rng.normal(0, 1, (rows, 2)).astype(np.float32)
        tensors[f"base_model.model.model.layers.0.{part}.{module}.lora_A.weight"] = a
        tensors[f"base_model.model.model.layers.0.{part}.{module}.lora_B.weight"] = b
        factors[module] = 2.0 * b @ a  # scale = alpha / r
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return factors


def _run(directory, x):
    session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_the_graph_adds_exactly_the_adapters_update_to_each_adapted_matrix(tmp_path):
    from npcvoice.devtools.lora_branches import add_lora_branches

    rng = np.random.default_rng(3)
    _decoder(tmp_path, rng)
    updates = _adapter(tmp_path / "adapter", rng)
    x = rng.normal(0, 1, (1, 3, K)).astype(np.float32)
    qkv_before, o_before = _run(tmp_path, x)

    assert add_lora_branches(tmp_path, tmp_path / "adapter") == 2

    qkv_after, o_after = _run(tmp_path, x)
    fused = np.concatenate([updates[m] for m in ("q_proj", "k_proj", "v_proj")], 0)
    np.testing.assert_allclose(qkv_after - qkv_before, x @ fused.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(o_after - o_before, x @ updates["o_proj"].T, rtol=1e-4, atol=1e-4)


def test_an_adapter_for_a_matrix_the_decoder_lacks_is_refused(tmp_path):
    from safetensors.numpy import save_file

    from npcvoice.devtools.lora_branches import add_lora_branches

    _decoder(tmp_path, np.random.default_rng(0))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 1, "lora_alpha": 1}))
    save_file({"base_model.model.model.layers.7.self_attn.o_proj.lora_A.weight": np.ones((1, K), np.float32),
               "base_model.model.model.layers.7.self_attn.o_proj.lora_B.weight": np.ones((6, 1), np.float32)},
              str(adapter / "adapter_model.safetensors"))  # fmt: skip
    with pytest.raises(ValueError, match="layer 7's o_proj"):
        add_lora_branches(tmp_path, adapter)
