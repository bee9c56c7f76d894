"""Playground benchmark: what the page's socket adds to a turn, and how close the mouth is to the audio.

    .venv/bin/python -m bench.playground [--turns 10]

Redis and all five services run as their own processes (bench.conversation's suite); the playground is
served in this process.

1. First reply audio after a typed line, straight to the gateway through the Python client (the baseline)
   and through the playground's WebSocket (the suite's /v1/converse in its JSON subprotocol, the page's
   protocol), turn for turn alternately in one run.
2. In headless Chromium (Debian's `chromium`), at every viseme frame the page applies: the context time of
   the audio heard then (AudioContext.getOutputTimestamp) minus the frame's time; negative: the mouth is
   ahead of the sound. Replies alternate between the mouth on AudioContext.currentTime (what the graph
   renders, the page's first version) and on the output clock (what it does now).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import websockets

from bench.common import machine, p50, percentile, table
from bench.conversation import LINES, NPC, suite, text_turn
from npcvoice.client import NpcClient
from npcvoice.edge.app import JSON, PATH
from npcvoice.playground.options import PlaygroundOptions
from npcvoice.playground.server import serving
from npcvoice.runtime.ports import free_port

# Replaces the page's clock for one reply in two ("render": currentTime) and records each frame's offset.
MEASURE_MOUTH = """() => {
  const face = window.playground.face;
  face.offsets = {render: [], heard: []};
  face.mode = "heard";
  const heard = face.now.bind(face);
  face.now = () => (face.mode === "render" ? face.clock.currentTime : heard());
  const update = face.update.bind(face);
  face.update = () => {
    const now = face.clock && face.now();
    const due = face.frames.filter((frame) => frame.at <= now).pop();
    update();
    if (due) face.offsets[face.mode].push((heard() - due.at) * 1000);
  };
}"""


async def websocket_turn(socket: Any, line: str) -> float:
    """From sending a typed line to the first reply audio through the page's socket; reads to the end."""
    loop = asyncio.get_running_loop()
    started, first_audio = loop.time(), 0.0
    await socket.send(json.dumps({"text": line}))
    while True:
        response = json.loads(await socket.recv())
        if "audio" in response and not first_audio:
            first_audio = loop.time() - started
        elif "turn_end" in response:
            return first_audio


async def bridge(gateway: str, site: str, turns: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"gateway (Python client)": [], "playground WebSocket": []}
    player = f"bench-playground-{time.time_ns()}"
    url = site.replace("http://", "ws://") + PATH
    protocol = [websockets.Subprotocol(JSON)]
    async with (
        NpcClient(gateway) as client,
        websockets.connect(url, subprotocols=protocol, max_size=None) as socket,
    ):
        npc = await client.conversation(NPC, f"{player}-direct")
        await socket.send(json.dumps({"config": {"npc_id": NPC, "player_id": f"{player}-ws"}}))
        await socket.recv()  # started
        await npc.say("Hello.")  # warm-up: the persona's prompt, the voice
        await websocket_turn(socket, "Hello.")
        for i in range(turns):
            line = LINES[i % len(LINES)]
            times["gateway (Python client)"].append((await text_turn(npc, line))[0])
            times["playground WebSocket"].append(await websocket_turn(socket, line))
        await npc.close()
    return times


async def mouth(site: str, turns: int) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    flags = ["--autoplay-policy=no-user-gesture-required", "--no-sandbox"]
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=shutil.which("chromium"), args=flags)
        page = await browser.new_page()
        await page.goto(f"{site}/?npc={NPC}&player=bench-mouth-{time.time_ns()}")
        await page.wait_for_selector("body[data-ready=true]")
        await page.evaluate(MEASURE_MOUTH)
        for i in range(2 * turns):
            await page.evaluate(f"window.playground.face.mode = '{('render', 'heard')[i % 2]}'")
            ended = await page.evaluate("window.playground.conversation.turnsEnded")
            await page.fill("#say", LINES[i % len(LINES)])
            await page.click("#send")
            await page.wait_for_function(f"window.playground.conversation.turnsEnded > {ended}", timeout=0)
            await page.wait_for_function("!window.playground.player.busy()", timeout=0)
        offsets: dict[str, list[float]] = await page.evaluate("window.playground.face.offsets")
        await browser.close()
    return offsets


async def run(gateway: str, turns: int) -> None:
    options = PlaygroundOptions(gateway=gateway, port=free_port(), persona_dir=Path("npc_personas"))
    async with serving(options, log_level="warning") as site:
        times = await bridge(gateway, site, turns)
        rows = [[name, len(t), p50(t), percentile(t, 95)] for name, t in times.items()]
        base = p50(times["gateway (Python client)"])
        print(f"\n{machine()}; {turns} typed turns each, alternately, persona {NPC}\n")
        print(table(["first reply audio after a typed line", "turns", "p50 s", "p95 s"], rows))
        ratio = p50(times["playground WebSocket"]) / base
        print(f"\nthrough the playground / straight to the gateway, p50: {ratio:.2f}")
        if shutil.which("chromium") is None:
            print("\nno chromium: the mouth's timing is not measured (apt-get install chromium)")
            return
        offsets = await mouth(site, turns)
    rows = [[clock, len(o), percentile(o, 5), p50(o), percentile(o, 95)] for clock, o in offsets.items()]
    print(
        f"\nheadless Chromium, {turns} replies on each clock, alternately: heard audio minus frame time, ms\n"
    )
    print(table(["mouth clock", "frames", "p5", "p50", "p95"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    with suite() as gateway:
        asyncio.run(run(gateway, args.turns))


if __name__ == "__main__":
    main()
