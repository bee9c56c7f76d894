"""A scripted OpenAI-compatible chat-completions server, run as its own process so that a test can kill it:
a stand-in for a larger model whose text the test chooses (hygiene, tags, secrets, failures). What it says
and how is read from a JSON control file on every request:

``reply`` (the text, streamed in pieces of ``chunk`` characters), ``delays`` (seconds before the first
piece, one per request in turn since the script was written; the last repeats), ``die_after`` (the process exits after that many
pieces: killed mid-stream), ``status`` (answer with that HTTP error instead). Each request's body is
appended to the log file, one JSON line each.

    python -m tests.support.scripted_openai --port P --control control.json --log requests.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from npcvoice.runtime.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def _app(control: Path, log: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    served, script_text = 0, ""

    async def completions(request: Request) -> Response:
        nonlocal served, script_text
        body = await request.json()
        with log.open("a") as out:
            out.write(json.dumps(body) + "\n")
        text = control.read_text()  # noqa: ASYNC240 (a small local file)
        served = served + 1 if text == script_text else 0  # counted from the script's last change
        script_text, script = text, json.loads(text)
        delays = script.get("delays") or [0.0]
        delay = delays[min(served, len(delays) - 1)]
        if script.get("status"):
            return JSONResponse({"error": {"message": "scripted failure"}}, script["status"])
        reply, size = script.get("reply", ""), script.get("chunk", 8)
        pieces = [reply[i : i + size] for i in range(0, len(reply), size)]

        async def events() -> AsyncIterator[str]:
            await asyncio.sleep(delay)
            for count, piece in enumerate(pieces):
                if script.get("die_after") is not None and count >= script["die_after"]:
                    os._exit(1)  # killed mid-stream
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}  # fmt: skip
                yield f"data: {json.dumps(chunk)}\n\n"
                await asyncio.sleep(0.01)
            usage = {
                "prompt_tokens": 100,
                "completion_tokens": len(pieces),
                "total_tokens": 100 + len(pieces),
            }
            last = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                    "choices": [], "usage": usage}  # fmt: skip
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


class ScriptedServer:
    """The server as a process of its own, and its control and log files."""

    def __init__(self, directory: Path) -> None:
        self.control = directory / "control.json"
        self.log = directory / "requests.jsonl"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.script(reply="")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, **script: Any) -> None:
        self._scripts = getattr(self, "_scripts", 0) + 1  # a new script even if it says the same
        self.control.write_text(json.dumps({**script, "script": self._scripts}))

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.support.scripted_openai", "--port", str(self.port),
                   "--control", str(self.control), "--log", str(self.log)]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=REPO_ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the scripted OpenAI server exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the scripted OpenAI server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(_app(args.control, args.log), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
