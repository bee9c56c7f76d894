"""Writing a conversation's memory straight into Redis, as if earlier turns had happened."""

from __future__ import annotations

from npcvoice.conversation.memory import MAX_STORED_TURNS, MemoryStore, Retention, TurnRecord
from npcvoice.turns import Turn


async def append_turns(
    store: MemoryStore, npc_id: str, player_id: str, turns: list[Turn], ttl_s: float
) -> None:
    """Append ``turns`` (trimmed and with the TTL refreshed, in one transaction, like a real turn)."""
    record = TurnRecord(npc_id, player_id, turns, [], 0.0, 0.0, relationship_known=False)
    await store.record_turn(record, Retention(ttl_s, max_turns=MAX_STORED_TURNS, max_facts=100))
