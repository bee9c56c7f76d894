"""Dialogue benchmark, one run, same prompts: our engine vs llama.cpp on the same GGUF.

    .venv/bin/python -m bench.dialogue [--conversations 6] [--llama-python /path/to/python]

1. Three-turn conversations with Hilda: time to first token on the first turn (full prefill) and on
   later turns (our engine reuses the conversation's KV cache; llama-cpp-python reuses the longest
   matching prefix of its last prompt), decode tokens/s, peak memory. Both get the same prompt text
   (the engine's own prompt assembly, past turns written as they were first sent) and greedy decoding.
   llama.cpp runs in its own process (``--llama-python``: a Python with llama-cpp-python installed; it
   is not a dependency of this project, see docs/benchmarks.md for how it was built).
2. The dialogue service over gRPC with 1, 2 and 4 conversations at once: time to first token and the
   total tokens/s of all replies together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import generate_blocking, machine, p50, percentile, service_process, table
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import BUNDLED_MODEL_ID, DialogueOptions
from npcvoice.dialogue.prompt import MemoryView, build_messages
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.turns import Turn

PERSONA = "blacksmith_hilda"
CONVERSATIONS = [
    ["Hello there! Who are you?", "Can you repair my sword?", "How much will it cost?"],
    ["Good morning. Is the forge open?", "I need a new axe.", "Where does your iron come from?"],
    ["What happened to the old forge?", "Was anyone hurt?", "Do dragons still come here?"],
    ["I just arrived from Vaelmoor.", "Why do you dislike the merchants?", "Would you sell to me anyway?"],
    ["Can you make horseshoes?", "I need four of them.", "Thank you, Hilda."],
    ["Is the Kharzad mine still open?", "What caused the collapse?", "Could it be opened again?"],
]
MAX_TOKENS = 48
GREEDY = SamplingOverrides(
    temperature=0.0, repetition_penalty=1.0, max_tokens=MAX_TOKENS
)  # as llama.cpp below

LLAMA_WORKER = r"""
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]), verbose=False)
end = {llm.token_eos(), *llm.tokenize(b"<|im_start|>", add_bos=False, special=True)}
for line in sys.stdin:
    job = json.loads(line)
    if job["new_conversation"]:
        llm.reset()  # forget the last prompt: a new conversation starts cold, as ours does
    tokens = llm.tokenize(job["prompt"].encode(), add_bos=False, special=True)
    started = time.perf_counter(); first = None; out = []
    for token in llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        if first is None:
            first = time.perf_counter()
        if token in end or len(out) >= job["max_tokens"]:
            break
        out.append(token)
    done = time.perf_counter()
    text = llm.detokenize(out).decode(errors="replace")
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"ttft": first - started, "tokens": len(out), "decode_s": done - first, "text": text,
                      "peak_mb": int(hwm.split()[1]) / 1024}), flush=True)
"""


def our_turns(
    engine: DialogueEngine, conversation: list[str], key: str, warm: bool = False
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    history: list[Turn] = []
    job = engine.begin_warm(PERSONA) if warm else None
    while job is not None and not job.step():  # the persona's prompt prefilled ahead, untimed
        pass
    for line in conversation:
        request = TurnRequest(PERSONA, line, key, MemoryView(recent_turns=list(history)), GREEDY)
        summary = generate_blocking(engine, request)
        results.append({
            "ttft": summary.time_to_first_token_s, "tokens": summary.completion_tokens,
            "tps": summary.decode_tokens_per_s, "cached": summary.cached_prompt_tokens,
            "prompt": summary.prompt_tokens,
        })  # fmt: skip
        history += [Turn("player", line), Turn("npc", summary.text or "...")]
    return results


def llama_turns(
    engine: DialogueEngine, worker: subprocess.Popen[str], conversation: list[str]
) -> list[dict[str, Any]]:
    """The same conversation through llama.cpp, its prompts assembled by our prompt code."""
    model = engine.model(BUNDLED_MODEL_ID)
    persona = engine.persona(PERSONA)
    results: list[dict[str, Any]] = []
    history: list[Turn] = []
    rendered: dict[tuple[str, str], str] = {}
    for line in conversation:
        memory = MemoryView(recent_turns=list(history))
        messages = build_messages(
            persona, memory, line, lambda m: len(model.prompt_ids(m)), 900, rendered=rendered
        )
        prompt = model.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(
            json.dumps({"prompt": prompt, "max_tokens": MAX_TOKENS, "new_conversation": not history}) + "\n"
        )
        worker.stdin.flush()
        result = json.loads(worker.stdout.readline())
        result["tps"] = (result["tokens"] - 1) / result["decode_s"] if result["tokens"] > 1 else 0.0
        text = " ".join(result["text"].split()) or "..."
        rendered[("player", line)] = messages[-1]["content"]
        rendered[("npc", text)] = result["text"].strip() or "..."
        history += [Turn("player", line), Turn("npc", text)]
        results.append(result)
    return results


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    with Path("/proc/self/status").open() as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def summarize(name: str, turns: list[list[dict[str, Any]]], peak_mb: float) -> list[object]:
    first = [c[0]["ttft"] * 1000 for c in turns]
    later = [t["ttft"] * 1000 for c in turns for t in c[1:]]
    tps = [t["tps"] for c in turns for t in c if t["tokens"] > 8]
    return [name, p50(first), percentile(first, 95), p50(later), percentile(later, 95), p50(tps), peak_mb]


async def concurrent_run(address: str, count: int, run: str) -> tuple[list[float], float]:
    import grpc

    from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = dialogue_pb2_grpc.DialogueServiceStub(channel)

        async def one(index: int) -> tuple[float, int]:
            line = CONVERSATIONS[index % len(CONVERSATIONS)][0]
            request = dialogue_pb2.GenerateRequest(
                persona_id=PERSONA, player_text=line, conversation_id=f"{run}-{index}",
                sampling=dialogue_pb2.Sampling(seed=index, max_tokens=MAX_TOKENS),
            )  # fmt: skip
            summary = None
            async for response in stub.Generate(request):
                if response.HasField("summary"):
                    summary = response.summary
            assert summary is not None
            return summary.time_to_first_token_seconds, summary.completion_tokens

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - started
    return [r[0] * 1000 for r in results], sum(r[1] for r in results) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=len(CONVERSATIONS))
    parser.add_argument("--llama-python", default="", help="a Python that has llama-cpp-python")
    parser.add_argument("--models-dir", type=Path, default=Path(".models"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--model-folder", type=Path, default=None, help="use this model folder instead")
    parser.add_argument("--no-cuda-graph", action="store_true", help="on CUDA, run steps without graphs")
    parser.add_argument("--no-service", action="store_true", help="skip the gRPC concurrency part")
    args = parser.parse_args()
    conversations = (CONVERSATIONS * 4)[: args.conversations]

    models = {BUNDLED_MODEL_ID: args.model_folder} if args.model_folder else {}
    engine = DialogueEngine(
        DialogueOptions(
            models_dir=args.models_dir, models=models, device=args.device, cuda_graph=not args.no_cuda_graph
        )
    )
    model = engine.model(BUNDLED_MODEL_ID)
    our_turns(engine, conversations[0], "warm-up")
    ours = [our_turns(engine, c, f"bench-{i}") for i, c in enumerate(conversations)]
    rows = [summarize(f"npcvoice ({model.provider})", ours, peak_mb())]
    warmed = [our_turns(engine, c, f"warm-{i}", warm=True) for i, c in enumerate(conversations)]
    rows.append(summarize("npcvoice, persona prefilled ahead", warmed, peak_mb()))
    cached = [t["cached"] / t["prompt"] for c in ours for t in c[1:]]

    if args.llama_python:
        from npcvoice.dialogue.model import bundled_gguf

        worker = subprocess.Popen(
            [args.llama_python, "-c", LLAMA_WORKER, str(bundled_gguf()), str(args.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        llama_turns(engine, worker, conversations[0])
        theirs = [llama_turns(engine, worker, c) for c in conversations]
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait(30)
        rows.append(
            summarize("llama.cpp (llama-cpp-python)", theirs, max(t["peak_mb"] for c in theirs for t in c))
        )

    print(
        f"\n{machine()}; {len(conversations)} conversations × 3 turns, greedy, {MAX_TOKENS} tokens at most\n"
    )
    headers = ["engine", "TTFT turn 1 p50 ms", "p95", "TTFT turns 2-3 p50 ms", "p95", "decode tok/s p50"]
    print(table([*headers, "peak MB"], rows))
    print(f"\nlater turns served {p50(cached) * 100:.0f} % of their prompt from the conversation cache (p50)")

    if args.no_service:
        return
    del engine
    concurrency_rows: list[list[object]] = []
    with service_process(
        "dialogue", "--option", f"models_dir={args.models_dir}", "--option", f"device={args.device}"
    ) as address:
        asyncio.run(concurrent_run(address, 1, "warm-up"))
        for count in (1, 2, 4):
            ttft, throughput = asyncio.run(concurrent_run(address, count, f"at-once-{count}"))
            concurrency_rows.append([count, p50(ttft), max(ttft), throughput])
    print("\nDialogue service over gRPC, conversations at once (first turns, token-by-token interleaving):\n")
    print(table(["at once", "TTFT p50 ms", "TTFT max ms", "total tok/s"], concurrency_rows))


if __name__ == "__main__":
    main()
