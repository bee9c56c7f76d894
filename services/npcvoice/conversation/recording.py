"""What a conversation remembers as it goes: the session's copy of the NPC's memory of the player (read
from Redis at each turn, and kept going from its own copy while Redis is away) and what each finished turn
and each game event adds to it."""

from __future__ import annotations

from npcvoice.conversation.gateway import Gateway
from npcvoice.conversation.memory import Memory, TurnRecord
from npcvoice.conversation.relationship import moved, nudged
from npcvoice.personas import Persona
from npcvoice.turns import Turn
from npcvoice.world import GameEvent


class SessionMemory:
    def __init__(self, gateway: Gateway, npc_id: str, player_id: str) -> None:
        self._gateway = gateway
        self.npc_id, self.player_id = npc_id, player_id
        self.memory = Memory(npc_id, player_id)
        self._read = False  # whether self.memory ever came from Redis

    async def refresh(self) -> Memory:
        """The stored memory if Redis answers, else the session's own copy."""
        memory = await self._gateway.load_memory(self.npc_id, self.player_id)
        if memory is not None:
            self.memory, self._read = memory, True
        return self.memory

    async def remember(
        self, player_text: str, npc_text: str, interrupted: bool, emotions: list[str], actions: list[str]
    ) -> Turn | None:
        """Store a finished turn (or queue it while Redis is away); the session's copy follows at once.
        ``player_text`` is empty when the NPC spoke first. Returns the NPC's line as stored, if any."""
        persona = self._gateway.persona(self.npc_id, "config.npc_id")
        lines = [Turn("player", player_text)] if player_text else []
        said = Turn("npc", npc_text, interrupted=interrupted) if npc_text else None
        lines += [said] if said else []
        if not lines:
            return None
        memory = self.memory
        affinity, trust = moved(memory.affinity, memory.trust, emotions, actions)
        await self._store(lines, memory.new_facts(player_text), affinity, trust, persona)
        return said

    async def replace(self, stored: Turn, by: Turn | None) -> None:
        """A line stored earlier becomes ``by``, in place (``None``: it goes): a reply sent in full, then cut
        short while it still played, becomes what the player heard of it, as the NPC said it or as another
        NPC in earshot overheard it."""
        persona = self._gateway.persona(self.npc_id, "config.npc_id")
        lines = [by] if by else []
        turns = self.memory.turns
        at = next((i for i in range(len(turns) - 1, -1, -1) if turns[i] == stored), None)
        if at is not None:
            turns[at : at + 1] = lines
        record = TurnRecord(self.npc_id, self.player_id, lines, [], self.memory.affinity, self.memory.trust,
                            relationship_known=self._read, replaces=stored)  # fmt: skip
        await self._gateway.record(record, persona)

    async def remember_event(self, event: GameEvent, affinity_delta: float, trust_delta: float) -> None:
        """A game event goes into memory as it happens, moving the relationship as its trigger says."""
        persona = self._gateway.persona(self.npc_id, "config.npc_id")
        affinity, trust = nudged(self.memory.affinity, self.memory.trust, affinity_delta, trust_delta)
        await self._store([Turn("event", event.told)], [], affinity, trust, persona)

    async def overhear(self, lines: list[str]) -> list[Turn]:
        """What the NPC heard said to another in its scene, as events in its memory (the relationship is
        unmoved: it was not said to it). Returns the lines as stored."""
        persona = self._gateway.persona(self.npc_id, "config.npc_id")
        memory, turns = self.memory, [Turn("event", line) for line in lines]
        await self._store(turns, [], memory.affinity, memory.trust, persona)
        return turns

    async def _store(
        self, lines: list[Turn], new_facts: list[str], affinity: float, trust: float, persona: Persona
    ) -> None:
        record = TurnRecord(
            npc_id=self.npc_id,
            player_id=self.player_id,
            turns=lines,
            new_facts=new_facts,
            affinity=affinity,
            trust=trust,
            relationship_known=self._read,
        )
        memory = self.memory
        memory.turns += lines
        memory.player_facts += new_facts
        memory.affinity, memory.trust = affinity, trust
        await self._gateway.record(record, persona)
