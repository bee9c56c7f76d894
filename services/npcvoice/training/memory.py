"""What the gateway would hold of the player at each turn of a corpus conversation, so that the corpus is
checked (``check``), rendered for training (``render``) and replayed for measuring (bench/npc_mind.py)
against the same memory the served NPC would get."""

from __future__ import annotations

from npcvoice.conversation.relationship import moved, nudged
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.types import TurnRequest
from npcvoice.personas.schema import Persona
from npcvoice.training.corpus import Conversation, Step
from npcvoice.turns import Turn, player_facts


class HeldMemory:
    """What the gateway would hold of the player at each turn of a corpus conversation: the turns (in the
    persona's ``recent_turns`` window), the facts kept from the player's lines, the relationship, the
    world context; and what the next reply answers (a player's line, or a cue)."""

    def __init__(self, conversation: Conversation, persona: Persona) -> None:
        self.persona = persona
        earlier = conversation.earlier
        self.summary = earlier.summary
        self.turns: list[Turn] = []
        self.facts = list(earlier.facts)
        self.affinity, self.trust = earlier.affinity, earlier.trust
        self.world: dict[str, str] = {}
        self.line, self.cue = "", ""

    def step(self, step: Step) -> None:
        """Take in a step that is not an NPC reply."""
        if step.world is not None:
            self.world.update(step.world)
        elif step.player is not None:
            self.line, self.cue = step.player, ""
        elif step.cue is not None or step.event is not None:
            if self.line:  # the game cut in before the player's line was answered: it is kept, unanswered
                self._keep_line()
            self.line, self.cue = "", step.cue or ""
        if step.event is not None:
            trigger = self.persona.trigger_for(step.event.name)
            self.turns.append(Turn("event", step.event.told))
            if trigger is not None:
                self.affinity, self.trust = nudged(self.affinity, self.trust, trigger.affinity, trigger.trust)
            self.cue = f"{step.event.told} {trigger.say}" if trigger and trigger.say else ""

    def request(self) -> TurnRequest:
        """The dialogue request of the reply due now, with the memory the gateway would send."""
        persona = self.persona
        recent = self.turns[-persona.memory.recent_turns :]
        facts = self.facts[-persona.memory.max_facts :]
        world = persona.attended(self.world)
        memory = MemoryView(recent, self.summary, facts, self.affinity, self.trust, world)
        return TurnRequest(self.persona.id, self.line, memory=memory, cue=self.cue)

    def replied(self, text: str, emotions: list[str], actions: list[str]) -> None:
        """The NPC's reply: the turn is stored and moves the relationship, as the gateway does."""
        if self.line:
            self._keep_line()
        self.turns.append(Turn("npc", text))
        self.affinity, self.trust = moved(self.affinity, self.trust, emotions, actions)
        self.line, self.cue = "", ""

    def _keep_line(self) -> None:
        self.turns.append(Turn("player", self.line))
        self.facts += [f for f in player_facts([Turn("player", self.line)]) if f not in self.facts]
