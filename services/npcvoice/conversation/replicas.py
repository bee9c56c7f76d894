"""The dialogue replicas one gateway talks to: one channel each, the calls each is serving, which seem
down, and the hash ring that sends a conversation to the replica holding its KV cache.

Replicas are listed (``dialogue_addresses``) or found by a DNS name that answers one address per replica
(``dns:///dialogue:50052``, a headless Kubernetes Service), looked up again every
``dialogue_resolve_interval_s``: a replica that leaves the answer leaves the ring, and only its
conversations move (each pays one cold prefill on its new replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator

import grpc

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2_grpc
from npcvoice.conversation.routing import HashRing

log = logging.getLogger("npcvoice.conversation")

DNS_SCHEME = "dns:///"
# A replica whose call just failed to connect is tried last for this long (its channel's reconnect
# backoff tops out at a second, so by then it has either come back or is known to be down).
RETRY_AFTER_S = 1.0
_DOWN = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


class Replica:
    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        self.address = address
        self.channel = channel
        self.stub = dialogue_pb2_grpc.DialogueServiceStub(channel)
        self.in_flight = 0
        self.failed_at = -math.inf

    def usable(self, now: float) -> bool:
        if now - self.failed_at < RETRY_AFTER_S:
            return False
        return self.channel.get_state(try_to_connect=False) not in _DOWN


class DialogueReplicas:
    def __init__(
        self,
        targets: list[str],
        make_channel: Callable[[str], grpc.aio.Channel],
        *,
        load_factor: float,
        resolve_interval_s: float,
    ) -> None:
        self.targets = targets
        self._make_channel = make_channel
        self._load_factor = load_factor
        self._resolve_interval_s = resolve_interval_s
        self._resolved_at = -math.inf
        self._replicas: dict[str, Replica] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._ring = HashRing([], load_factor)
        self._use([t for t in targets if not t.startswith(DNS_SCHEME)])

    @property
    def addresses(self) -> list[str]:
        return self._ring.replicas

    async def refresh(self) -> None:
        """Look the DNS names up again when the last answer is older than the interval."""
        names = [t.removeprefix(DNS_SCHEME) for t in self.targets if t.startswith(DNS_SCHEME)]
        if not names or time.monotonic() - self._resolved_at < self._resolve_interval_s:
            return
        self._resolved_at = time.monotonic()
        found = [t for t in self.targets if not t.startswith(DNS_SCHEME)]
        for name in names:
            try:
                found += await _resolve(name)
            except OSError as error:  # keep what the last answer gave rather than drop every replica
                log.warning(
                    "dialogue replicas: %s did not resolve (%s); keeping %s", name, error, self.addresses
                )
                return
        if sorted(set(found)) != self.addresses:
            log.info("dialogue replicas: %s", sorted(set(found)))
            self._use(found)

    def _use(self, addresses: list[str]) -> None:
        for address in addresses:
            if address not in self._replicas:
                self._replicas[address] = Replica(address, self._make_channel(address))
        for address in set(self._replicas) - set(addresses):
            gone = self._replicas.pop(address)
            # calls still running on it finish (up to the longest reply) before its channel closes
            task = asyncio.get_running_loop().create_task(gone.channel.close(grace=60.0))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._ring = HashRing(self._replicas, self._load_factor)

    def candidates(self, key: str) -> list[Replica]:
        """Replicas for a call of conversation ``key``, in the order to try them: the ring's order among
        those that seem up, then those that seem down (one may have come back)."""
        loads = {address: replica.in_flight for address, replica in self._replicas.items()}
        ordered = [self._replicas[address] for address in self._ring.pick(key, loads)]
        now = time.monotonic()
        return [r for r in ordered if r.usable(now)] + [r for r in ordered if not r.usable(now)]

    @contextlib.contextmanager
    def calling(self, replica: Replica) -> Iterator[None]:
        replica.in_flight += 1
        try:
            yield
        finally:
            replica.in_flight -= 1

    def failed(self, replica: Replica) -> None:
        replica.failed_at = time.monotonic()

    async def aclose(self) -> None:
        for replica in self._replicas.values():
            await replica.channel.close()
        for task in list(self._closing):
            task.cancel()


async def _resolve(name: str) -> list[str]:
    host, _, port = name.rpartition(":")
    infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    addresses = []
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        addresses.append(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    return sorted(set(addresses))
