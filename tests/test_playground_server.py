"""The playground's server without a browser: what it refuses (other sites' pages, ids that are not
persona ids), and the suite's API key on its calls to a gateway that requires one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from npcvoice.conversation.registration import REGISTRATION
from npcvoice.edge.app import JSON, PATH
from npcvoice.playground.cli import options_from
from npcvoice.playground.options import PlaygroundOptions
from tests.conftest import start_service
from tests.support.browser import serve_playground
from tests.support.conversation import gateway_options
from tests.support.waiting import eventually, fresh_persona


def converse(site: str) -> Any:
    """The page's conversation socket: the suite's public endpoint, in its JSON subprotocol."""
    url = site.replace("http://", "ws://") + PATH
    return websockets.connect(url, subprotocols=[websockets.Subprotocol(JSON)])


def config(player: str) -> dict[str, Any]:
    return {"config": {"npc_id": "blacksmith_hilda", "player_id": player, "reply_mode": "REPLY_MODE_VOICE"}}


def request(
    url: str, method: str = "GET", body: object = None, origin: str | None = None, host: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if origin:
        headers["origin"] = origin
    if host:
        headers["host"] = host
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data, headers, method=method), timeout=30
        ) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if error.headers.get_content_type() == "application/json" else {}


async def test_the_server_refuses_other_sites_and_files_outside_the_persona_folder(site, test_persona_dir):
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    path: Path = test_persona_dir / f"{npc}.yaml"
    text = await asyncio.to_thread(path.read_text)
    put = f"{site}/api/personas/{npc}"
    edited = {"text": text.replace("Hilda Ironhand", "Hilda Elsewhere")}

    status, body = await asyncio.to_thread(request, put, "PUT", edited, origin="http://evil.example")
    assert status == 403 and await asyncio.to_thread(path.read_text) == text
    port = site.rsplit(":", 1)[1]  # a site whose name points at 127.0.0.1 is its own origin: its name is not
    status, body = await asyncio.to_thread(request, put, "PUT", edited, host=f"evil.example:{port}")
    assert status == 403 and "evil.example" in body["error"]
    status, body = await asyncio.to_thread(request, f"{site}/api/personas/..%2Fsecrets", "PUT", edited)
    assert status == 404  # no route: a persona id has no slash
    status, body = await asyncio.to_thread(request, f"{site}/api/personas/..", "PUT", edited)
    assert status == 400 and "not a persona id" in body["error"]
    status, body = await asyncio.to_thread(request, f"{site}/api/personas/no_such_npc")
    assert status == 404 and "no_such_npc" in body["error"]

    status, body = await asyncio.to_thread(request, put, "PUT", edited, origin=site)
    assert status == 200 and body == {"saved": True, "problems": []}
    assert "Hilda Elsewhere" in await asyncio.to_thread(path.read_text)
    status, body = await asyncio.to_thread(request, f"{put}/check", "POST", {"text": "id: [unclosed\n"})
    [problem] = body["problems"]
    assert status == 200 and problem["message"].startswith("YAML syntax") and problem["line"] == 2


async def test_the_playground_calls_a_gateway_that_requires_a_key_with_the_suite_s_key(
    test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service, tmp_path
):
    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service
    )
    gateway = await start_service("conversation", REGISTRATION, options, api_keys=["pg-key"])
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"conversation:\n  port: {gateway.host.port}\n  api_keys: [pg-key]\n")
    args = argparse.Namespace(
        config=suite,
        host="127.0.0.1",
        port=0,
        gateway=None,
        api_key=None,
        personas=test_persona_dir,
        evals=None,
    )
    keyed = options_from(args)  # as `npcvoice playground --config suite.yaml` reads it
    assert keyed.api_key == "pg-key" and keyed.gateway == f"127.0.0.1:{gateway.host.port}"
    try:
        async with serve_playground(keyed) as site:
            status, body = await asyncio.to_thread(request, f"{site}/api/npcs")
            assert status == 200 and "blacksmith_hilda" in {npc["npc_id"] for npc in body["npcs"]}
            async with converse(site) as socket:  # the conversation's stream carries it too
                await socket.send(json.dumps(config("pg-keyed")))
                started = json.loads(await socket.recv())
            assert started["started"]["display_name"] == "Hilda Ironhand"
        async with serve_playground(PlaygroundOptions(gateway=keyed.gateway)) as site:
            status, body = await asyncio.to_thread(request, f"{site}/api/npcs")
            assert status == 502 and "UNAUTHENTICATED" in body["error"]
    finally:
        await gateway.channel.close()
        await gateway.host.stop(grace=0)


async def test_a_page_that_leaves_mid_reply_or_sends_nonsense_ends_its_conversation_cleanly(
    gateway, test_persona_dir, caplog
):
    caplog.set_level(logging.INFO)
    options = PlaygroundOptions(gateway=gateway.host.address, persona_dir=test_persona_dir)
    async with serve_playground(options) as site:
        async with converse(site) as socket:
            await socket.send(json.dumps(config("pg-leaving")))
            assert "started" in json.loads(await socket.recv())
            await socket.send(json.dumps({"text": "Tell me about your forge."}))
            while "audio" not in json.loads(await socket.recv()):  # the first audio: leave while it plays
                pass
        async with converse(site) as socket:
            await socket.send(json.dumps(config("pg-leaving")))
            await socket.send(json.dumps({"shout": "hello"}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007  # not a ConverseRequest
        assert "shout" in closed.value.rcvd.reason

        def converse_calls_ended() -> int:
            return sum("Converse" in r.getMessage() for r in caplog.records if r.name == "npcvoice.rpc")

        await eventually(lambda: converse_calls_ended() == 2)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
