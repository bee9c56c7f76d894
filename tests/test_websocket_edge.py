"""The WebSocket edge (#28): ``/v1/converse`` carries the gateway's Converse for clients without gRPC.

Real parts: the edge app under uvicorn on loopback, a real WebSocket client (the ``websockets`` package),
the session's real gateway and services.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.edge.app import JSON, PROTO
from tests.support.conversation import config
from tests.support.edge import MAX_FRAME, PAGE, edge_for


@pytest.fixture
async def edge(gateway: Any) -> AsyncIterator[str]:
    async for url in edge_for(gateway):
        yield url


def response(frame: str | bytes) -> conversation_pb2.ConverseResponse:
    assert isinstance(frame, bytes), "a binary frame"
    return conversation_pb2.ConverseResponse.FromString(frame)


async def turn(websocket: Any, mode: str = PROTO) -> list[conversation_pb2.ConverseResponse]:
    """Responses up to the turn's end."""
    responses = []
    while True:
        frame = await websocket.recv()
        response = conversation_pb2.ConverseResponse()
        if mode == PROTO:
            response.ParseFromString(frame)
        else:
            from google.protobuf import json_format

            json_format.Parse(frame, response)
        responses.append(response)
        if response.WhichOneof("event") in ("turn_end", "refused"):
            return responses


async def test_a_typed_line_gets_the_same_events_as_over_grpc_in_binary_frames(edge):
    async with connect(edge, subprotocols=[Subprotocol(PROTO)]) as websocket:
        assert websocket.subprotocol == PROTO
        await websocket.send(config("ws-player").SerializeToString())
        await websocket.send(
            conversation_pb2.ConverseRequest(text="Good morning! What do you make?").SerializeToString()
        )
        responses = await turn(websocket)
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds[0] == "started" and "reply_text" in kinds and "audio" in kinds and kinds[-1] == "turn_end"
    end = responses[-1].turn_end
    assert end.player_text == "Good morning! What do you make?" and end.reply_text
    assert "".join(r.reply_text.delta for r in responses if r.HasField("reply_text")) == end.reply_text
    assert all(r.audio.visemes for r in responses if r.HasField("audio"))


async def test_an_empty_frame_ends_the_input_and_the_turn_in_progress_still_arrives_before_1000(edge):
    async with connect(edge) as websocket:
        await websocket.send(config("ws-finish").SerializeToString())
        await websocket.send(conversation_pb2.ConverseRequest(text="Hello there!").SerializeToString())
        await websocket.send(b"")  # nothing more to send, as a gRPC client's half-close
        kinds = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                kinds.append(response(await websocket.recv()).WhichOneof("event"))
    assert kinds[0] == "started" and kinds[-1] == "turn_end"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_json_text_frames_carry_the_same_conversation(edge):
    async with connect(edge, subprotocols=[Subprotocol(JSON)]) as websocket:
        assert websocket.subprotocol == JSON
        await websocket.send(json.dumps({"config": {"npc_id": "blacksmith_hilda", "player_id": "ws-json",
                                                    "reply_mode": "REPLY_MODE_TEXT"}}))  # fmt: skip
        await websocket.send(json.dumps({"text": "Hello there!"}))
        responses = await turn(websocket, JSON)
    assert responses[-1].turn_end.reply_text and not any(r.HasField("audio") for r in responses)


async def test_a_frame_that_is_not_a_request_closes_with_1007_and_a_text_frame_in_binary_mode_with_1003(edge):
    async with connect(edge) as websocket:
        await websocket.send(config("ws-bad").SerializeToString())
        await websocket.send(b"\xff\xff\xff not protobuf")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await websocket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    async with connect(edge) as websocket:
        await websocket.send(config("ws-bad").SerializeToString())
        await websocket.send("hello")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await websocket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_an_oversized_frame_closes_with_1009(edge):
    async with connect(edge, max_size=None) as websocket:
        await websocket.send(bytes(MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await websocket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_gateway_error_closes_with_4000_plus_its_status_and_its_message(edge):
    async with connect(edge) as websocket:
        await websocket.send(config("ws-nobody", npc="nobody_here").SerializeToString())
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await websocket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4005  # NOT_FOUND
    assert "nobody_here" in closed.value.rcvd.reason


async def test_a_page_of_another_origin_is_refused_and_an_allowed_one_is_not(edge):
    with pytest.raises(InvalidStatus) as refused:
        async with connect(edge, origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connect(edge, origin=PAGE) as websocket:  # type: ignore[arg-type]
        await websocket.send(config("ws-page").SerializeToString())
        started = response(await websocket.recv())
        assert started.WhichOneof("event") == "started"


async def test_a_closed_gateway_closes_with_4014(gateway):
    async for url in edge_for(gateway):
        await gateway.host.stop(grace=0)
        async with connect(url) as websocket:
            await websocket.send(config("ws-late").SerializeToString())
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await websocket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4014  # UNAVAILABLE


async def test_api_keys_from_a_header_or_a_first_frame(hosted, test_persona_dir, redis_server, speech_service,
                                                       dialogue_service, voice_service, face_service):  # fmt: skip
    from npcvoice.conversation.registration import REGISTRATION
    from tests.support.conversation import gateway_options

    options = gateway_options(test_persona_dir, redis_server, speech_service, dialogue_service, voice_service,
                              face_service)  # fmt: skip
    gateway = await hosted("conversation", REGISTRATION, options, api_keys=["game-key"])
    async for url in edge_for(gateway):
        for headers in [{}, {"Authorization": "Bearer wrong"}]:
            async with connect(url, additional_headers=headers) as websocket:
                await websocket.send(config("ws-key").SerializeToString())
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await websocket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4016  # UNAUTHENTICATED
        async with connect(url, additional_headers={"Authorization": "Bearer game-key"}) as websocket:
            await websocket.send(config("ws-key").SerializeToString())
            assert response(await websocket.recv()).HasField("started")
        async with connect(url) as websocket:  # a browser: the key in the first frame
            await websocket.send(json.dumps({"api_key": "game-key"}))
            await websocket.send(config("ws-key").SerializeToString())
            assert response(await websocket.recv()).HasField("started")
