"""Running a script through the real gateway, and keeping what the NPC said."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from npcvoice.client import NpcClient
from npcvoice.evaluation.checks import Check, check_reply
from npcvoice.evaluation.script import Line, Script


@dataclass
class LineResult:
    line: Line
    reply: str
    emotions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def said(self) -> dict[str, Any]:
        """What the NPC said and did on this line (a transcript entry)."""
        return {
            "say": self.line.shown,
            "reply": self.reply,
            "emotions": self.emotions,
            "actions": self.actions,
        }


async def run_script(script: Script, client: NpcClient, voice: bool = False) -> list[LineResult]:
    """Play ``script`` from a fresh memory: the player's memory is reset first."""
    await client.reset_memory(script.npc, script.player)
    npc = await client.conversation(
        script.npc, script.player, voice_reply=voice, player_name=script.player_name, seed=script.seed
    )
    results: list[LineResult] = []
    player_lines: list[str] = []
    game: list[str] = []  # what the game told the NPC: context values, events
    async with npc:
        for line in script.lines:
            if line.context:
                npc.set_context(line.context)
                game += line.context.values()
            for event in line.events:
                npc.tell(event.name, event.description, event.parameters)
                game += [event.description, *event.parameters.values()]
            if line.say is not None:
                player_lines.append(line.say)
            if line.say is not None:
                reply = await npc.say(line.say)
            elif line.speak is not None:
                reply = await npc.speak_first(line.speak)
            else:
                reply = await npc.reply()  # the persona's trigger for the events speaks
            actions = [action["name"] for action in reply.actions]
            parameters = {action["name"]: dict(action["parameters"]) for action in reply.actions}
            earlier = [result.reply for result in results]
            checks = check_reply(
                reply.text, reply.emotions, actions, line.expect, earlier, player_lines, parameters, game
            )
            results.append(LineResult(line, reply.text, reply.emotions, actions, checks))
    return results
