"""What each NPC remembers of each player, in Redis.

Keys carry a hash tag per conversation, ``npcvoice:{<npc>:<player>}:<part>``, so one conversation's keys
share a Redis Cluster slot and can be changed together in one MULTI/EXEC transaction. Every write
refreshes the time to live of the whole conversation, so memory lasts ``ttl_days`` after the last word.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from npcvoice.conversation.redis_urls import MemoryClient
from npcvoice.personas.schema import MemoryPolicy
from npcvoice.runtime.errors import InvalidArgument, Unavailable
from npcvoice.turns import Turn, player_facts

P = ParamSpec("P")
T = TypeVar("T")

SNAPSHOT_VERSION = 1
MAX_STORED_TURNS = 1000
MAX_TURN_CHARS = 4000
MAX_FACTS = 200
_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
PARTS = ("turns", "summary", "facts", "relationship")


SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Retention:
    """How much of a player one NPC keeps, from its persona's ``memory`` policy."""

    ttl_s: float
    max_turns: int  # stored turns; more means summaries fell behind, and the oldest go
    max_facts: int  # the newest facts the player told

    @classmethod
    def of(cls, policy: MemoryPolicy | None) -> Retention:
        policy = policy or MemoryPolicy()
        return cls(
            ttl_s=policy.ttl_days * SECONDS_PER_DAY,
            max_turns=min(MAX_STORED_TURNS, 2 * policy.summarize_after),
            max_facts=policy.max_facts,
        )


def fact_key(fact: str) -> str:
    """What makes two facts the same: their words, whatever the case and punctuation."""
    return " ".join(re.findall(r"\w+", fact.casefold()))


def unknown_facts(candidates: list[str], known: list[str]) -> list[str]:
    """``candidates`` not in ``known`` (nor twice among themselves), compared by ``fact_key``."""
    seen = {fact_key(f) for f in known}
    fresh: list[str] = []
    for fact in candidates:
        if fact_key(fact) not in seen:
            seen.add(fact_key(fact))
            fresh.append(fact)
    return fresh


@dataclass
class Memory:
    """One NPC's memory of one player; also the save-game snapshot."""

    npc_id: str
    player_id: str
    turns: list[Turn] = field(default_factory=list)
    summary: str = ""
    player_facts: list[str] = field(default_factory=list)
    affinity: float = 0.0
    trust: float = 0.0
    version: int = SNAPSHOT_VERSION

    def new_facts(self, player_line: str) -> list[str]:
        """First-person statements in ``player_line`` this memory does not hold yet."""
        return unknown_facts(player_facts([Turn("player", player_line)]), self.player_facts)


@dataclass(frozen=True)
class TurnRecord:
    """What one finished turn adds to memory."""

    npc_id: str
    player_id: str
    turns: list[Turn]
    new_facts: list[str]
    affinity: float
    trust: float
    # False when the turn ran without ever reading the stored memory (Redis away since the session
    # began): its relationship values start from nothing and must not overwrite the stored ones.
    relationship_known: bool = True
    # The NPC line, stored by an earlier record, that ``turns`` (one line, or none) replaces: a reply sent
    # in full, then cut short while it still played (what the player heard, or nothing). A line no longer
    # among the stored turns (folded into the summary, trimmed) is left as it is.
    replaces: Turn | None = None


def check_id(value: str, field_name: str) -> str:
    if not _ID_RE.match(value):
        raise InvalidArgument(field_name, "must be 1-128 characters of letters, digits and _ . : @ -, "
                                          f"got {value!r}")  # fmt: skip
    return value


def check_memory(memory: Memory) -> Memory:
    """Validate a snapshot a client sends (a save game can be edited or corrupted)."""
    if memory.version != SNAPSHOT_VERSION:
        raise InvalidArgument("snapshot.version", f"must be {SNAPSHOT_VERSION}, got {memory.version}")
    check_id(memory.npc_id, "snapshot.npc_id")
    check_id(memory.player_id, "snapshot.player_id")
    if len(memory.turns) > MAX_STORED_TURNS:
        raise InvalidArgument("snapshot.turns", f"at most {MAX_STORED_TURNS} turns, got {len(memory.turns)}")
    for index, turn in enumerate(memory.turns):
        if turn.role not in ("player", "npc", "event"):
            raise InvalidArgument(
                f"snapshot.turns[{index}].role", f"must be 'player', 'npc' or 'event', got {turn.role!r}"
            )
        if len(turn.text) > MAX_TURN_CHARS:
            raise InvalidArgument(f"snapshot.turns[{index}].text", f"at most {MAX_TURN_CHARS} characters")
    if len(memory.player_facts) > MAX_FACTS:
        raise InvalidArgument(
            "snapshot.player_facts", f"at most {MAX_FACTS} facts, got {len(memory.player_facts)}"
        )
    for name in ("affinity", "trust"):
        value = getattr(memory, name)
        if not -1.0 <= value <= 1.0:
            raise InvalidArgument(f"snapshot.{name}", f"must be between -1 and 1, got {value}")
    return memory


def _redis_call(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A Redis failure becomes UNAVAILABLE for the client, with what failed."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        # a cluster whose slot has no master yet (mid-failover) raises the second kind
        except (RedisError, RedisClusterException) as exc:
            raise Unavailable(f"memory store (Redis) unavailable: {exc}") from exc

    return wrapper


# The last element of list KEYS[1] equal to ARGV[1] becomes ARGV[2], or goes when there is no ARGV[2]
# (one script: nothing else writes the list between the search and the change).
_REPLACE_LINE = """
local n = redis.call('LLEN', KEYS[1])
for i = n - 1, 0, -1 do
  if redis.call('LINDEX', KEYS[1], i) == ARGV[1] then
    if ARGV[2] then
      redis.call('LSET', KEYS[1], i, ARGV[2])
    else
      redis.call('LSET', KEYS[1], i, '')
      redis.call('LREM', KEYS[1], -1, '')
    end
    return 1
  end
end
return 0
"""


class MemoryStore:
    def __init__(self, client: MemoryClient, prefix: str = "npcvoice") -> None:
        self._redis = client
        self._prefix = prefix

    def key(self, npc_id: str, player_id: str, part: str) -> str:
        return f"{self._prefix}:{{{npc_id}:{player_id}}}:{part}"

    def _keys(self, npc_id: str, player_id: str) -> list[str]:
        return [self.key(npc_id, player_id, part) for part in PARTS]

    @_redis_call
    async def load(self, npc_id: str, player_id: str) -> Memory:
        turns_key, summary_key, facts_key, relationship_key = self._keys(npc_id, player_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(turns_key, 0, -1)
            pipe.get(summary_key)
            pipe.lrange(facts_key, 0, -1)
            pipe.hgetall(relationship_key)
            turns, summary, facts, relationship = await pipe.execute()
        return Memory(
            npc_id=npc_id,
            player_id=player_id,
            turns=[Turn(**json.loads(t)) for t in turns],
            summary=(summary or b"").decode(),
            player_facts=[f.decode() for f in facts],
            affinity=float(relationship.get(b"affinity", 0.0)),
            trust=float(relationship.get(b"trust", 0.0)),
        )

    @_redis_call
    async def record_turn(self, record: TurnRecord, retention: Retention) -> None:
        """One finished turn: its lines appended (and trimmed), new facts, the relationship, the TTL, in
        one transaction: a turn is stored whole or not at all."""
        turns_key, _, facts_key, relationship_key = self._keys(record.npc_id, record.player_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if record.replaces is not None:
                new = [json.dumps(asdict(t)) for t in record.turns[:1]]
                pipe.eval(_REPLACE_LINE, 1, turns_key, json.dumps(asdict(record.replaces)), *new)
            else:
                pipe.rpush(turns_key, *[json.dumps(asdict(t)) for t in record.turns])
                pipe.ltrim(turns_key, -retention.max_turns, -1)
            if record.new_facts:
                pipe.rpush(facts_key, *record.new_facts)
                pipe.ltrim(facts_key, -retention.max_facts, -1)
            if record.relationship_known:
                pipe.hset(relationship_key, mapping={"affinity": record.affinity, "trust": record.trust})
            self._expire(pipe, record.npc_id, record.player_id, retention.ttl_s)
            await pipe.execute()

    @_redis_call
    async def fold_summary(
        self,
        npc_id: str,
        player_id: str,
        folded_turns: int,
        summary: str,
        retention: Retention,
    ) -> None:
        """Replace the oldest ``folded_turns`` turns by ``summary`` (turns appended meanwhile stay)."""
        turns_key, summary_key, _, _ = self._keys(npc_id, player_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.ltrim(turns_key, folded_turns, -1)
            pipe.set(summary_key, summary)
            self._expire(pipe, npc_id, player_id, retention.ttl_s)
            await pipe.execute()

    @_redis_call
    async def replace(self, memory: Memory, ttl_s: float) -> None:
        """Make ``memory`` the whole memory of its NPC and player (import of a save game)."""
        turns_key, summary_key, facts_key, relationship_key = self._keys(memory.npc_id, memory.player_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(turns_key, summary_key, facts_key, relationship_key)
            if memory.turns:
                pipe.rpush(turns_key, *[json.dumps(asdict(t)) for t in memory.turns])
            if memory.summary:
                pipe.set(summary_key, memory.summary)
            if memory.player_facts:
                pipe.rpush(facts_key, *memory.player_facts)
            pipe.hset(relationship_key, mapping={"affinity": memory.affinity, "trust": memory.trust})
            self._expire(pipe, memory.npc_id, memory.player_id, ttl_s)
            await pipe.execute()

    @_redis_call
    async def reset(self, npc_id: str, player_id: str) -> None:
        await self._redis.delete(*self._keys(npc_id, player_id))

    def _expire(self, pipe: Any, npc_id: str, player_id: str, ttl_s: float) -> None:
        for key in self._keys(npc_id, player_id):
            pipe.expire(key, max(1, int(ttl_s)))
