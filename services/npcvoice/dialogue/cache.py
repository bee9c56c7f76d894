"""Conversations' KV caches kept between turns, within a memory budget.

A conversation's generator holds the key/value cache of every token it has seen, so the next turn only
prefills what is new. Each cache costs ``max_length × bytes per token`` (the buffer is allocated up
front); when the total is over budget the least recently used idle conversation goes first. A
conversation in use is never evicted. Losing one only costs its next turn a full prefill.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from npcvoice.dialogue.model import LoadedModel

CACHE_BYTES = Gauge("npcvoice_dialogue_cache_bytes", "Memory held by conversations' KV caches.")
CACHE_EVICTIONS = Counter("npcvoice_dialogue_cache_evictions_total", "Conversations evicted for memory.")


@dataclass
class Conversation:
    key: str
    model_id: str
    generator: Any  # onnxruntime_genai.Generator (or a stand-in in unit tests)
    max_length: int
    nbytes: int
    tokens: list[int] = field(default_factory=list)
    # The last reply's last tokens, chosen but not yet run through the model (its last piece went out
    # first): the next prompt runs them on their own, as the reply would have, if it goes on with them.
    held: list[int] = field(default_factory=list)
    # How each past turn was written into the prompt, so the next prompt repeats it token for token.
    rendered: dict[tuple[str, str], str] = field(default_factory=dict)
    # What the NPC said in this conversation, also before the window of turns a request brings.
    said: list[str] = field(default_factory=list)
    busy: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


class ConversationCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Conversation] = OrderedDict()

    def get(self, key: str) -> Conversation | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.last_used = time.monotonic()
            return entry

    def put(self, entry: Conversation) -> None:
        """Store (or replace) ``entry`` as the most recently used, then evict down to the budget."""
        with self._lock:
            self._entries[entry.key] = entry
            self._entries.move_to_end(entry.key)
            entry.last_used = time.monotonic()
            self._evict()

    def take(self, key: str) -> Conversation | None:
        """Remove and return the idle entry under ``key``, if any."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.busy.locked():
                return None
            del self._entries[key]
            self._update_gauge()
            return entry

    def discard(self, key: str, entry: Conversation | None = None) -> None:
        """Forget ``key`` (only if it still maps to ``entry``, when given)."""
        with self._lock:
            if key in self._entries and (entry is None or self._entries[key] is entry):
                del self._entries[key]
            self._update_gauge()

    def trim(self) -> None:
        with self._lock:
            self._evict()

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _evict(self) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        for key in list(self._entries):
            if total <= self.budget_bytes:
                break
            entry = self._entries[key]
            if entry.busy.locked():
                continue
            del self._entries[key]
            total -= entry.nbytes
            CACHE_EVICTIONS.inc()
        CACHE_BYTES.set(total)

    def _update_gauge(self) -> None:
        CACHE_BYTES.set(sum(e.nbytes for e in self._entries.values()))


def prefill(generator: Any, pending: list[int], size: int, held: list[int] | None = None) -> list[int]:
    """Run the first ``size`` tokens of ``pending`` through ``generator`` (and note them in ``held``, the
    generator's token list); returns the tokens still to prefill. One chunk per worker step keeps a long
    prompt from holding the worker while other replies wait.

    A chunk is never a lone token: onnxruntime runs a one-token step through other kernels (matrix-vector)
    whose results differ in the last bits from the same token inside a longer chunk, so a prompt split
    with a lone token would not give the same reply to the same seed as the prompt split otherwise."""
    size = size + 1 if len(pending) == size + 1 else size
    chunk = pending[:size]
    generator.append_tokens(chunk)
    if held is not None:
        held.extend(chunk)
    return pending[size:]


def new_conversation(model: LoadedModel, key: str, max_length: int) -> Conversation:
    """A conversation on a fresh generator that holds up to ``max_length`` tokens (counted in its size)."""
    return Conversation(
        key=key,
        model_id=model.model_id,
        generator=model.new_generator(max_length),
        max_length=max_length,
        nbytes=max_length * model.bytes_per_token,
    )


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
