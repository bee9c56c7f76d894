"""Which dialogue replica answers a conversation: consistent hashing on the conversation id, with a cap
on each replica's load.

A dialogue replica keeps each conversation's KV cache, so a conversation's turns should keep going to
the same replica; otherwise each turn pays a cold prefill. Consistent hashing gives every conversation a
home that every gateway agrees on (the hash is stable across processes), and moves only the
conversations of a replica that goes away or arrives. The cap ("consistent hashing with bounded loads",
Mirrokni, Thorup and Zadimoghaddam, 2018) keeps a replica that happens to be home to many busy
conversations from queueing them all: a call goes to the next replica on the ring while its home is
serving more than ``load_factor`` times the average. Pure: no network, no clock.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping

VIRTUAL_NODES = 64  # points per replica on the ring: spreads conversations evenly over few replicas
# A replica interleaves several replies token by token, and a cold prefill elsewhere costs more than
# sharing its steps with a few others: below this many calls it keeps its conversations, however idle
# the other replicas are.
MIN_CAP = 4


def stable_hash(text: str) -> int:
    """The same 64-bit number for ``text`` in every process (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, replicas: Iterable[str], load_factor: float = 1.25) -> None:
        if load_factor < 1.0:
            raise ValueError(f"load_factor must be at least 1, got {load_factor}")
        self.load_factor = load_factor
        self.replicas = sorted(set(replicas))
        points = sorted(
            (stable_hash(f"{replica}#{i}"), replica)
            for replica in self.replicas
            for i in range(VIRTUAL_NODES)
        )
        self._hashes = [h for h, _ in points]
        self._owners = [r for _, r in points]

    def order(self, key: str) -> list[str]:
        """Every replica, in the order ``key`` tries them: its home first, then clockwise on the ring."""
        if not self.replicas:
            return []
        start = bisect.bisect(self._hashes, stable_hash(key))
        seen: dict[str, None] = {}
        for i in range(len(self._owners)):
            seen.setdefault(self._owners[(start + i) % len(self._owners)], None)
            if len(seen) == len(self.replicas):
                break
        return list(seen)

    def cap(self, loads: Mapping[str, int]) -> int:
        """The most calls one replica may hold before a new call goes elsewhere."""
        total = sum(loads.get(replica, 0) for replica in self.replicas) + 1  # counting the new call
        return max(MIN_CAP, math.ceil(self.load_factor * total / max(1, len(self.replicas))))

    def pick(self, key: str, loads: Mapping[str, int]) -> list[str]:
        """Replicas for a call of ``key``, best first: those under the cap in ring order, then the rest
        (a full replica still beats none)."""
        order = self.order(key)
        cap = self.cap(loads)
        under = [replica for replica in order if loads.get(replica, 0) < cap]
        return under + [replica for replica in order if replica not in under]
