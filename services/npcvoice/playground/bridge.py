"""One conversation of the page: its WebSocket on one side, a Converse stream to the gateway on the other.

The page sends JSON messages (a typed line, end of speech for push-to-talk, how much of the reply it has
played, for barge-in) and binary ones (microphone audio, PCM16 at 16 kHz). It gets every gateway event as
JSON; an audio chunk's JSON (its timing and viseme frames) is followed by its PCM16 as a binary message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.playground import convert
from npcvoice.runtime.errors import ServiceError

log = logging.getLogger("npcvoice.playground")

MAX_AUDIO_MESSAGE_BYTES = 64 * 1024  # a few hundred ms of 16 kHz PCM16; the page sends 100 ms at a time


class Bridge:
    def __init__(
        self,
        websocket: WebSocket,
        stub: conversation_pb2_grpc.ConversationServiceStub,
        metadata: list[tuple[str, str]],
    ) -> None:
        self.websocket = websocket
        self.stub = stub
        self.metadata = metadata
        self._requests: asyncio.Queue[conversation_pb2.ConverseRequest | None] = asyncio.Queue()

    async def _outgoing(self) -> AsyncIterator[conversation_pb2.ConverseRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def run(self, npc_id: str, player_id: str, player_name: str) -> None:
        self._requests.put_nowait(convert.session_config(npc_id, player_id, player_name))
        call = self.stub.Converse(self._outgoing(), metadata=self.metadata)
        from_page = asyncio.create_task(self._from_page())
        try:
            async for response in call:
                if from_page.done():
                    break  # the page left, or was sent its error and closed
                event, audio = convert.gateway_event(response)
                await self.websocket.send_text(json.dumps(event))
                if audio is not None:
                    await self.websocket.send_bytes(audio)
            else:
                await self._close({"type": "closed", "reason": "the gateway ended the conversation"})
        except grpc.aio.AioRpcError as error:
            code = error.code().name if error.code() is not None else "UNKNOWN"
            await self._close({"type": "error", "code": code, "message": error.details() or code})
        except (WebSocketDisconnect, RuntimeError):
            pass  # the page went away while an event was on its way (Starlette: WebSocketDisconnected)
        finally:
            from_page.cancel()
            call.cancel()

    async def _from_page(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self._handle(message)
        except (ServiceError, ValueError, TypeError) as error:  # a malformed message: say so, and stop
            await self._close({"type": "error", "code": "INVALID_ARGUMENT", "message": str(error)})
        finally:
            self._requests.put_nowait(None)  # the page left: end the stream, as a game would

    def _handle(self, message: Mapping[str, Any]) -> None:
        if message.get("bytes") is not None:
            audio: bytes = message["bytes"]
            if len(audio) > MAX_AUDIO_MESSAGE_BYTES:
                raise ValueError(f"audio message of {len(audio)} bytes; at most {MAX_AUDIO_MESSAGE_BYTES}")
            self._requests.put_nowait(conversation_pb2.ConverseRequest(audio=audio))
        elif message.get("text") is not None:
            self._requests.put_nowait(convert.browser_request(json.loads(message["text"])))

    async def _close(self, last: dict[str, Any]) -> None:
        try:
            await self.websocket.send_text(json.dumps(last))
            await self.websocket.close()
        except (RuntimeError, WebSocketDisconnect):
            pass  # the page is already gone
