"""What `npcvoice prepare-model` is given: a GGUF file or a Hugging Face folder, checked before any work.

Both are read without loading the weights (the GGUF's header, the folder's config.json), so an
architecture the converter does not take is refused in one line before minutes of conversion.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

# Hugging Face architectures whose conversion is tested (tests/test_prepare_model.py), by the name a
# user knows them by. onnxruntime-genai's builder takes a few more; these are the ones checked here.
SUPPORTED = {
    "LlamaForCausalLM": "Llama",
    "MistralForCausalLM": "Mistral",
    "Qwen2ForCausalLM": "Qwen2",
    "Qwen3ForCausalLM": "Qwen3",
    "Gemma2ForCausalLM": "Gemma 2",
    "Gemma3ForCausalLM": "Gemma 3 (text)",
    "Phi3ForCausalLM": "Phi-3",
}
# GGUF's `general.architecture` for the same families (llama.cpp writes Mistral models as "llama" too).
GGUF_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}
# GGUF weight types whose blocks map exactly onto MatMulNBits (see gguf_blocks).
CARRIED_TYPES = frozenset({"Q4_0", "Q4_1", "Q8_0"})


class UnsupportedModel(Exception):
    """The source cannot be converted; the message is one line that says why and what would work."""


@dataclass(frozen=True)
class ModelSource:
    path: Path
    architecture: str  # the Hugging Face architecture
    is_gguf: bool
    has_chat_template: bool
    tied_embeddings: bool
    weight_types: Counter[str] = field(default_factory=Counter)  # GGUF: the 2-D weights' types

    @property
    def default_name(self) -> str:
        """A model name from the file or folder name: lower case, quantization suffixes kept."""
        stem = self.path.name[: -len(".gguf")] if self.is_gguf else self.path.name
        return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:64] or "model"


def supported_list() -> str:
    return ", ".join(SUPPORTED.values())


def _unsupported(what: str, path: Path) -> UnsupportedModel:
    return UnsupportedModel(f"{path}: architecture {what!r} is not supported; supported: {supported_list()}")


def inspect_source(path: Path) -> ModelSource:
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _inspect_gguf(path)
    if path.is_dir():
        return _inspect_folder(path)
    raise UnsupportedModel(f"{path}: not a .gguf file or a Hugging Face model folder (config.json, weights)")


def _inspect_gguf(path: Path) -> ModelSource:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def field_value(name: str) -> Any:
        found = reader.fields.get(name)
        return None if found is None else found.contents()

    family = str(field_value("general.architecture"))
    if family not in GGUF_ARCHITECTURES:
        raise _unsupported(family, path)
    names = {t.name for t in reader.tensors}
    types = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) == 2)
    return ModelSource(
        path=path,
        architecture=GGUF_ARCHITECTURES[family],
        is_gguf=True,
        has_chat_template=field_value("tokenizer.chat_template") is not None,
        tied_embeddings="output.weight" not in names,
        weight_types=types,
    )


def _inspect_folder(path: Path) -> ModelSource:
    config_file = path / "config.json"
    if not config_file.exists():
        raise UnsupportedModel(f"{path}: no config.json (a Hugging Face model folder has one)")
    config = json.loads(config_file.read_text())
    architectures = cast(list[str], config.get("architectures") or [config.get("model_type", "unknown")])
    if architectures[0] not in SUPPORTED:
        raise _unsupported(architectures[0], path)
    if not list(path.glob("*.safetensors")):
        raise UnsupportedModel(f"{path}: no *.safetensors weights")
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer.model").exists():
        raise UnsupportedModel(f"{path}: no tokenizer (tokenizer.json or tokenizer.model)")
    tokenizer_config = path / "tokenizer_config.json"
    templated = (
        (path / "chat_template.jinja").exists()
        or (path / "chat_template.json").exists()
        or (tokenizer_config.exists() and "chat_template" in json.loads(tokenizer_config.read_text()))
    )
    return ModelSource(
        path=path,
        architecture=architectures[0],
        is_gguf=False,
        has_chat_template=templated,
        tied_embeddings=not any("lm_head.weight" in _tensor_names(p) for p in path.glob("*.safetensors")),
    )


def _tensor_names(safetensors_file: Path) -> set[str]:
    """The tensor names in a safetensors file, read from its header alone."""
    with safetensors_file.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        return set(json.loads(handle.read(size))) - {"__metadata__"}


def gguf_to_hf(gguf: Path, out: Path, architecture: str) -> None:
    """The GGUF as an fp32 Hugging Face folder (tokenizer and chat template included), via transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.config.architectures = [architecture]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # The weights are plain fp32 now; transformers would refuse to save a "GGUF-quantized" model otherwise.
    cast(Any, model).hf_quantizer = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
