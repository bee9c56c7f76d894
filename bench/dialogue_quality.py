"""How much of the dialogue model survives conversion: top-1 next-token agreement and perplexity against
the fp32 model dequantized from the same GGUF, on a fixed English text, in one run.

    .venv/bin/python -m bench.dialogue_quality [--models-dir .models]
    .venv/bin/python -m bench.dialogue_quality --gguf other.gguf --name other [--chat-template FILE]

Compares `npcvoice prepare-model`'s output with onnxruntime-genai's builder left to its defaults (int4),
both run token by token through onnxruntime-genai as the service runs them. Needs the convert extra.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, table
from npcvoice.devtools.model_source import gguf_to_hf, inspect_source
from npcvoice.devtools.prepare_model import prepare, run_builder
from npcvoice.dialogue.model import bundled_gguf, load_model

TEXT = (
    "The history of metalworking begins in the ancient Near East, where people first learned to hammer "
    "native copper into simple tools and ornaments. Over many centuries, smiths discovered that heating "
    "ore with charcoal in a furnace could release the metal trapped inside the rock. Bronze, an alloy of "
    "copper and tin, was harder than copper alone and became the material of choice for weapons, armor, "
    "and farming tools. Iron was more difficult to work, because it required higher temperatures and "
    "careful control of the fire, but iron ore was far more common than tin. A village blacksmith was an "
    "important member of the community. He made nails, hinges, horseshoes, plows, and cooking pots, and "
    "he repaired almost anything made of metal. Learning the trade took many years. An apprentice began "
    "by pumping the bellows and sweeping the floor, and only later was allowed to shape hot metal on the "
    "anvil."
)


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    x = logits[:-1].astype(np.float64)
    top = x.max(-1, keepdims=True)
    log_sum = top[:, 0] + np.log(np.exp(x - top).sum(-1))
    return float(np.exp((log_sum - x[np.arange(len(x)), ids[1:]]).mean()))


def reference_logits(hf_dir: Path, ids: np.ndarray) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return np.asarray(model(torch.tensor(ids[None, :])).logits[0].float().numpy())


def genai_logits(model_dir: Path, ids: np.ndarray) -> tuple[np.ndarray, float]:
    # load_model: as the service loads it (a sliding-window model gets a cache at least its window long).
    generator = load_model(model_dir.name, model_dir, "cpu").new_generator(len(ids) + 8)
    rows = []
    started = time.perf_counter()
    for token in ids:
        generator.append_tokens(np.array([token], np.int32))
        rows.append(np.asarray(generator.get_logits()).reshape(-1).copy())
    return np.stack(rows), len(ids) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path(".models"))
    parser.add_argument("--gguf", type=Path, help="another GGUF (default: the bundled SmolLM2)")
    parser.add_argument("--name", help="its model name, as for prepare-model")
    parser.add_argument("--chat-template", type=Path, help="for a GGUF without one, as for prepare-model")
    args = parser.parse_args()
    gguf = args.gguf or bundled_gguf()
    prepared = prepare(gguf, args.models_dir, name=args.name, chat_template=args.chat_template)
    with tempfile.TemporaryDirectory() as work:
        hf_dir, plain = Path(work) / "hf", Path(work) / "plain-int4"
        gguf_to_hf(gguf, hf_dir, inspect_source(gguf).architecture)
        run_builder(hf_dir, plain, Path(work) / "cache", "cpu", ["hf_token=false"])  # its defaults
        from transformers import AutoTokenizer

        ids = np.asarray(AutoTokenizer.from_pretrained(hf_dir)(TEXT)["input_ids"], np.int64)
        reference = reference_logits(hf_dir, ids)
        rows: list[list[object]] = [
            ["fp32 (dequantized GGUF, transformers)", 1.0, perplexity(reference, ids), ""]
        ]
        for label, folder in (("builder defaults (int4)", plain), ("npcvoice prepare-model", prepared)):
            logits, rate = genai_logits(folder, ids)
            agreement = float((logits.argmax(-1) == reference.argmax(-1)).mean())
            size = sum(f.stat().st_size for f in folder.glob("model.onnx*")) / 1e6
            rows.append([f"{label}, {size:.0f} MB", agreement, perplexity(logits, ids), f"{rate:.0f}"])
    print(f"machine: {machine()}; text: {len(ids)} tokens\n")
    print(table(["model", "top-1 agreement", "perplexity", "tokens/s (one by one)"], rows))


if __name__ == "__main__":
    main()
