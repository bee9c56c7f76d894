"""Running a script through the real gateway, and keeping what the NPC said."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.client import NpcClient, NpcConversation, Reply
from npcvoice.evaluation.checks import Check, check_reply
from npcvoice.evaluation.script import Exchange, Expect, Line, Script

# One NPC's audio may arrive this much before the last one's has played: the client reads its stream late
# now and then on a loaded machine (0.37 s seen on 2 cores running the suite in one event loop), while a
# line that was not held at all overlaps the one before by a second or more (its writing time).
OVERLAP_S = 0.5


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
    """Play ``script`` from a fresh memory: the player's memory of every NPC in it is reset first."""
    for npc_id in script.npcs:
        await client.reset_memory(npc_id, script.player)
    npc = await client.conversation(
        script.npc, script.player, voice_reply=voice, player_name=script.player_name, seed=script.seed,
        scene=script.scene or None,
    )  # fmt: skip
    results: list[LineResult] = []
    player_lines: list[str] = []
    game: list[str] = []  # what the game told the NPCs: context values, events
    earlier: list[str] = []  # every NPC's replies so far: one NPC parroting another is a repeat too
    async with npc:
        for line in script.lines:
            if line.out_of_earshot is not None:
                npc.earshot(line.out_of_earshot)
            if line.to:
                npc.address(line.to)
            if line.context:
                npc.set_context(line.context)
                game += line.context.values()
            for event in line.events:
                npc.tell(event.name, event.description, event.parameters, line.npc or "")
                game += [event.description, *event.parameters.values()]
            if line.say is not None:
                player_lines.append(line.say)
            if line.exchange is not None:
                replies, checks = await _exchange(npc, line.exchange, voice, player_lines)
            elif line.say is not None:
                replies, checks = [await npc.say(line.say)], []
            elif line.speak is not None:
                replies, checks = [await npc.speak_first(line.speak, line.npc or "")], []
            else:
                replies, checks = [await npc.reply()], []  # the persona's trigger for the events speaks
            if line.to:
                npc.address("")  # a line's `to` is for that line: names decide again
            for reply in replies:
                actions = [action["name"] for action in reply.actions]
                parameters = {action["name"]: dict(action["parameters"]) for action in reply.actions}
                expect = line.expect if reply is replies[-1] else Expect()
                checks += check_reply(
                    reply.text, reply.emotions, actions, expect, earlier, player_lines, parameters, game
                )
                earlier.append(reply.text)
            if line.expect.npc:
                who = replies[-1].npc_id
                checks.append(
                    Check("answered by", who == line.expect.npc, "" if who == line.expect.npc else who)
                )
            shown = replies[0].text if len(replies) == 1 and not line.exchange else _transcript(replies)
            results.append(LineResult(
                line, shown, [e for r in replies for e in r.emotions],
                [a["name"] for r in replies for a in r.actions], _unique(checks),
            ))  # fmt: skip
    return results


async def _exchange(
    npc: NpcConversation, exchange: Exchange, voice: bool, player_lines: list[str]
) -> tuple[list[Reply], list[Check]]:
    """NPCs talking to each other, and the player's line into it when the script has one: the replies,
    and the checks of the exchange as a whole."""
    if exchange.interrupt_with is None:
        replies = await npc.exchange(exchange.npc, exchange.to, exchange.about, exchange.lines)
        speakers = [r.npc_id for r in replies]
        expected = [(exchange.npc, exchange.to)[i % 2] for i in range(exchange.lines)]
        checks = [
            Check("takes turns", speakers == expected, "" if speakers == expected else f"spoke: {speakers}")
        ]
        if voice:
            overlaps = [f"{a.npc_id} and {b.npc_id}" for a, b in itertools.pairwise(replies)
                        if b.first_audio_at < a.first_audio_at + a.seconds - OVERLAP_S]  # fmt: skip
            checks.append(
                Check("one voice at a time", not overlaps, f"overlap: {overlaps}" if overlaps else "")
            )
        return replies, checks
    speak = conversation_pb2.NpcSpeak(
        instruction=exchange.about, npc_id=exchange.npc, to_npc_id=exchange.to, lines=exchange.lines
    )
    npc.send(conversation_pb2.ConverseRequest(speak=speak))
    replies = [await npc.reply()]
    player_lines.append(exchange.interrupt_with)
    answer = await npc.say(exchange.interrupt_with)
    while not answer.player_text:  # a line of the exchange that was out (cut) when the player spoke
        replies.append(answer)
        answer = await npc.reply()
    stopped = len(replies) <= 2 and all(r.interrupted for r in replies[1:])
    checks = [
        Check("the player's line stops the exchange", stopped, "" if stopped else f"{len(replies)} lines")
    ]
    return [*replies, answer], checks


def _transcript(replies: list[Reply]) -> str:
    return " / ".join(f"{r.npc_id}: {r.text}" for r in replies)


def _unique(checks: list[Check]) -> list[Check]:
    """One check of each name: a failed one where any failed (an exchange checks each of its lines)."""
    by_name: dict[str, Check] = {}
    for check in checks:
        kept = by_name.get(check.name)
        if kept is None or (kept.passed and not check.passed):
            by_name[check.name] = check
    return list(by_name.values())
