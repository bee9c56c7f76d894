"""The gateway's channels to the speech, dialogue, voice and face services, and one typed method per call
the gateway makes. Every call goes through the same path: wait for a reconnecting service, the deadline,
and the error the game sees.

Every call but the speech stream (which lasts as long as the player talks) has a deadline. A downstream
failure becomes ``Unavailable`` naming the service and its address (a dead service must give the game a
clear UNAVAILABLE, never a hang); a request the downstream refuses keeps its status.
Channels reconnect on their own, quickly, once a service is back.

Speech, voice and face are stateless: an address that resolves to several replicas gets each call
balanced over them. Dialogue keeps each conversation's KV cache, so with several replicas (a list, or a
``dns:///`` name) each conversation's calls go to the replica that holds it (replicas.py); a call that
cannot reach its replica, or that its replica is too busy to take (RESOURCE_EXHAUSTED), before anything
was answered goes to the next one on the ring: a turn is refused only when every replica is full.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.api.npc.face.v1 import face_pb2, face_pb2_grpc
from npcvoice.api.npc.speech.v1 import speech_pb2, speech_pb2_grpc
from npcvoice.api.npc.voice.v1 import voice_pb2, voice_pb2_grpc
from npcvoice.conversation.options import GatewayOptions
from npcvoice.conversation.replicas import DNS_SCHEME, DialogueReplicas
from npcvoice.runtime.channels import InternalCredentials, internal_channel
from npcvoice.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from npcvoice.runtime.streams import responses_of

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    # An address that resolves to several replicas (``dns:///voice:50053`` on a headless Service) gets
    # each call balanced over all of them; the default (pick_first) would send every call to one.
    ("grpc.lb_policy_name", "round_robin"),
]

_PASSED_ON: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}

R = TypeVar("R")


class Downstream:
    def __init__(self, options: GatewayOptions, credentials: InternalCredentials | None = None) -> None:
        self.options = options
        self.addresses = {
            "speech": options.speech_address,
            "dialogue": options.dialogue_address,
            "voice": options.voice_address,
            "face": options.face_address,
        }
        self.credentials = credentials or InternalCredentials()
        self._channels = {
            name: internal_channel(address, self.credentials, CHANNEL_OPTIONS)
            for name, address in self.addresses.items()
        }
        self._speech = speech_pb2_grpc.SpeechServiceStub(self._channels["speech"])
        self._dialogue = dialogue_pb2_grpc.DialogueServiceStub(self._channels["dialogue"])
        self._voice = voice_pb2_grpc.VoiceServiceStub(self._channels["voice"])
        self._face = face_pb2_grpc.FaceServiceStub(self._channels["face"])
        targets = options.dialogue_addresses or [options.dialogue_address]
        self.dialogue_replicas: DialogueReplicas | None = None
        if len(targets) > 1 or targets[0].startswith(DNS_SCHEME):
            self.dialogue_replicas = DialogueReplicas(
                targets,
                lambda address: internal_channel(address, self.credentials, CHANNEL_OPTIONS),
                load_factor=options.dialogue_load_factor,
                resolve_interval_s=options.dialogue_resolve_interval_s,
            )
            self.addresses["dialogue"] = ",".join(targets)

    # --- the calls ---------------------------------------------------------------------------------------

    async def recognize(
        self, config: speech_pb2.StreamingRecognitionConfig, audio: AsyncIterator[bytes]
    ) -> AsyncIterator[speech_pb2.StreamingRecognizeResponse]:
        """Speech activity and transcripts of ``audio``, as the speech service hears it."""

        async def requests() -> AsyncIterator[speech_pb2.StreamingRecognizeRequest]:
            yield speech_pb2.StreamingRecognizeRequest(config=config)
            async for chunk in audio:
                yield speech_pb2.StreamingRecognizeRequest(audio=chunk)

        async for response in self._stream("speech", self._speech.StreamingRecognize, requests(), None):
            yield response

    def generate(self, request: dialogue_pb2.GenerateRequest) -> AsyncIterator[dialogue_pb2.GenerateResponse]:
        timeout = self.options.reply_timeout_s
        if self.dialogue_replicas is not None:
            return self._routed(request.conversation_id, "Generate", request, timeout, streaming=True)
        return self._stream("dialogue", self._dialogue.Generate, request, timeout)

    async def summarize(self, request: dialogue_pb2.SummarizeRequest) -> dialogue_pb2.SummarizeResponse:
        timeout = self.options.summary_timeout_s
        if self.dialogue_replicas is not None:  # no cache to reuse: the persona only spreads the work
            async for summary in self._routed(
                request.persona_id, "Summarize", request, timeout, streaming=False
            ):
                return summary  # type: ignore[no-any-return]
        return await self._unary("dialogue", self._dialogue.Summarize, request, timeout)

    async def synthesize(self, request: voice_pb2.SynthesizeRequest) -> list[voice_pb2.AudioChunk]:
        """The audio of a sentence, whole (one chunk per piece the voice service splits it into)."""
        timeout = self.options.synthesis_timeout_s
        return [r.chunk async for r in self._stream("voice", self._voice.Synthesize, request, timeout)]

    async def animate(self, request: face_pb2.AnimateRequest) -> face_pb2.AnimateResponse:
        return await self._unary("face", self._face.Animate, request, self.options.animation_timeout_s)

    async def _unary(
        self, service: str, method: Callable[..., Awaitable[R]], request: Any, deadline_s: float
    ) -> R:
        await self.connected(service)
        with self.calling(service):
            return await method(request, timeout=deadline_s)

    async def _stream(
        self, service: str, method: Callable[..., AsyncIterator[R]], request: Any, deadline_s: float | None
    ) -> AsyncIterator[R]:
        await self.connected(service)
        with self.calling(service):
            async for response in responses_of(method(request, timeout=deadline_s)):
                yield response

    async def _routed(
        self, key: str, method: str, request: Any, deadline_s: float, *, streaming: bool
    ) -> AsyncIterator[Any]:
        """A dialogue call for conversation ``key`` on the replica the ring gives it; one that cannot be
        reached before it answered anything goes to the next replica (nothing was sent on, so nothing is
        said twice; the conversation pays one cold prefill there), and so does one its replica is too busy
        to take (the busy replica stays in use: it is full, not down). When the replicas that answered
        all refused it as busy, the call is refused (RESOURCE_EXHAUSTED, "try again"), not failed."""
        replicas = self.dialogue_replicas
        assert replicas is not None
        await replicas.refresh()
        unreachable: grpc.aio.AioRpcError | None = None
        busy: tuple[grpc.aio.AioRpcError, str] | None = None
        for replica in replicas.candidates(key):
            answered = False
            call = getattr(replica.stub, method)(request, timeout=deadline_s)
            try:
                with replicas.calling(replica):
                    if not streaming:
                        yield await call
                        return
                    async for response in call:
                        answered = True
                        yield response
                    return
            except grpc.aio.AioRpcError as error:
                full = error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                if answered or not (full or error.code() == grpc.StatusCode.UNAVAILABLE):
                    raise self.error("dialogue", error, replica.address) from error
                if full:
                    busy = busy or (error, replica.address)
                else:
                    replicas.failed(replica)
                    unreachable = error
            finally:
                call.cancel()  # a no-op once finished; stops the replica when the turn is abandoned
        if busy is not None:  # some replica is up but full: "busy, try again", not "down"
            raise self.error("dialogue", *busy) from busy[0]
        if unreachable is None:
            raise Unavailable(f"dialogue service: no replica found at {self.addresses['dialogue']}")
        raise self.error("dialogue", unreachable, f"every replica ({', '.join(replicas.addresses)})")

    # --- the common path ---------------------------------------------------------------------------------

    async def connected(self, service: str) -> None:
        """Give a service that is reconnecting (just restarted) up to ``connect_timeout_s`` to come back,
        so that the first call after a restart does not fail at once; a dead one fails the call after."""
        channel = self._channels[service]
        if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.channel_ready(), self.options.connect_timeout_s)

    @contextlib.contextmanager
    def calling(self, service: str) -> Iterator[None]:
        """Turn a failed call to ``service`` into the error the gateway's client should see."""
        try:
            yield
        except grpc.aio.AioRpcError as error:
            raise self.error(service, error) from error

    def error(self, service: str, error: grpc.aio.AioRpcError, address: str = "") -> ServiceError:
        details = error.details() or error.code().name
        passed_on = _PASSED_ON.get(error.code())
        if passed_on is not None:  # the request was refused: same status, the downstream's message
            refused = passed_on.__new__(passed_on)
            ServiceError.__init__(refused, f"{service} service: {details}")
            return refused
        hop = f"{service} service at {address or self.addresses[service]}"
        if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            fix = "set the gateway's internal_api_key to one of that service's api_keys"
            return Unavailable(f"{hop} refused the gateway: {error.code().name}: {details} ({fix})")
        return Unavailable(f"{hop} failed: {error.code().name}: {details}")

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        if self.dialogue_replicas is not None:
            await self.dialogue_replicas.aclose()
