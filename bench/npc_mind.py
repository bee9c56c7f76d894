"""What the NPC says, base model against tuned, on the corpus's held-out personas (never trained on).

    .venv/bin/python -m bench.npc_mind [--models smollm2-135m,npc-smollm2-135m] [--limit 40]
    .venv/bin/python -m bench.npc_mind --ablate npc-smollm2-135m --limit 20   # each aid on and off

A model may be given with the aids its replies get (npcvoice.dialogue.aids), else it gets its own:
``npc-smollm2-135m:all``, ``npc-smollm2-135m:none``, ``npc-smollm2-135m:-recall`` (all but one),
``smollm2-135m:recall+openings``. ``--ablate M`` runs M with all, with none and with each one off.
A temperature after ``@`` replaces the persona's (``npc-smollm2-135m:all@0``: greedy).

Each validation conversation of training/ is played through the dialogue engine (in-process, as the
service runs it: its prompt, tags, steering, the persona's sampling with a fixed seed), its memory kept as
the gateway would keep it, with the model's own replies in the history. Each reply is judged for the
skill its line tests, against the reply the corpus's writer gave:

- lore, memory, world: the reply carries a word of the fact the writer's reply used (a word both of the
  writer's reply and of the lore, the player's earlier lines, or the world context) — a proxy a reader
  would be stricter than; and the reader checks below;
- action: the writer's action, with parameters from the conversation's words; no_action: none;
- emotion: the writer's emotion; identity: the NPC's name kept (said where the writer said it);
- deflect, injection, secret, smalltalk, event: the reader checks alone;
- every reply, the reader checks (npcvoice.evaluation.checks): says something, no repeat, no loop, no
  prompt text, own identity, in the world, no action unasked, parameters from the talk.

Prints one table: per skill, the share passed by each model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

from bench.common import machine, table
from npcvoice.dialogue.aids import ALL_AIDS, aid_set
from npcvoice.dialogue.engine import DialogueEngine
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.reply import Action, Emotion, Sentence
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.evaluation.checks import check_reply, content_words
from npcvoice.evaluation.script import Expect
from npcvoice.personas.schema import Persona
from npcvoice.training.check import grounding
from npcvoice.training.corpus import (
    CORPUS_DIR,
    Conversation,
    Step,
    is_validation,
    load_personas,
    read_conversations,
)
from npcvoice.training.memory import HeldMemory

GROUNDED = ("lore", "memory", "world")


def validation_conversations(root: Path) -> list[Conversation]:
    """The held-out personas' conversations, each persona's first, then each one's second, ...: a limit
    takes as many personas as it can."""
    held_out = [
        located.conversation
        for path in sorted((root / "conversations").glob("*.jsonl"))
        for located in read_conversations(path)
        if is_validation(located.conversation.persona)
    ]
    rank: dict[str, int] = defaultdict(int)
    ranked = []
    for order, conversation in enumerate(held_out):
        ranked.append((rank[conversation.persona], order, conversation))
        rank[conversation.persona] += 1
    return [conversation for _, _, conversation in sorted(ranked, key=lambda r: r[:2])]


Actions = dict[str, dict[str, str]]


def reply(engine: DialogueEngine, held: HeldMemory, key: str, seed: int,
          temperature: float | None = None) -> tuple[str, list[str], Actions, float | None]:  # fmt: skip
    request = held.request()
    sampling = SamplingOverrides(seed=seed, temperature=temperature)
    request = type(request)(**{**request.__dict__, "conversation_id": key, "sampling": sampling})
    generation = engine.begin(request)
    while not generation.prefill_step():
        pass
    emotions: list[str] = []
    actions: Actions = {}
    text = []
    while not generation.done:
        for event in generation.decode_step():
            if isinstance(event, Emotion):
                emotions.append(event.emotion)
            elif isinstance(event, Action):
                actions[event.name] = dict(event.parameters)
            elif isinstance(event, Sentence):
                text.append(event.text)
    generation.close()
    return " ".join(text).strip(), emotions, actions, generation.action_chance


def judge(step: Step, index: int, conversation: Conversation, persona: Persona, request: TurnRequest,
          said: str, emotions: list[str], actions: Actions, earlier: list[str]) -> bool:  # fmt: skip
    before = conversation.steps[:index]
    players = [s.player for s in before if s.player]
    game = [v for s in before if s.world for v in s.world.values()] + [
        s.event.told for s in before if s.event
    ]
    expect = Expect(action=step.action.name if step.action else None, no_action=step.skill == "no_action")
    checks = check_reply(said, emotions, list(actions), expect, earlier, players, actions, game)
    if not all(c.passed for c in checks):
        return False
    skill, reference = step.skill or "", step.npc or ""
    if skill in GROUNDED:
        source = content_words(grounding(skill, persona, request) or "")
        key = content_words(reference) & source or source
        return bool(content_words(said) & key)
    if skill == "emotion":
        return step.emotion in emotions
    if skill == "identity":
        name = persona.display_name.split()[0].lower()
        return name not in reference.lower() or name in said.lower()
    return True


def variant(spec: str) -> tuple[str, list[str] | None, float | None]:
    """``model[:aids][@temperature]`` as the model, the aids its replies get (None: the model's own) and
    the temperature (None: the persona's)."""
    spec, _, temperature = spec.partition("@")
    heat = float(temperature) if temperature else None
    model, _, aids = spec.partition(":")
    if not aids:
        return model, None, heat
    if aids == "all":
        return model, sorted(ALL_AIDS), heat
    if aids == "none":
        return model, [], heat
    if aids.startswith("-"):
        return model, sorted(ALL_AIDS - aid_set([aids[1:]])), heat
    return model, sorted(aid_set(aids.split("+"))), heat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,npc-smollm2-135m")
    parser.add_argument("--ablate", metavar="MODEL", help="MODEL with all aids, none, and each one off")
    parser.add_argument("--models-dir", type=Path, default=Path(".models"))
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--limit", type=int, default=0, help="at most this many conversations (0: all)")
    parser.add_argument("--transcript", type=Path, help="write every reply here (YAML), for reading")
    args = parser.parse_args()
    personas, _ = load_personas(args.corpus / "personas")
    conversations = validation_conversations(args.corpus)[: args.limit or None]
    passed: dict[str, dict[str, list[bool]]] = {}
    transcript: list[dict[str, object]] = []
    started = time.perf_counter()
    specs = args.models.split(",")
    if args.ablate:
        specs = [f"{args.ablate}:{a}" for a in ("all", "none", *(f"-{aid}" for aid in sorted(ALL_AIDS)))]
    for spec in specs:
        model, aids, temperature = variant(spec)
        with tempfile.TemporaryDirectory() as directory:
            for conversation in conversations:  # each persona as served by this model
                persona = personas[conversation.persona]
                data = persona.model_dump(mode="json", exclude_defaults=True)
                data["dialogue"] = {**data.get("dialogue", {}), "model": model}
                (Path(directory) / f"{persona.id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
            options = DialogueOptions(models_dir=args.models_dir, persona_dir=Path(directory), aids=aids)
            engine = DialogueEngine(options)
            scores: dict[str, list[bool]] = defaultdict(list)
            for number, conversation in enumerate(conversations):
                persona = personas[conversation.persona]
                held = HeldMemory(conversation, persona)
                earlier: list[str] = []
                for index, step in enumerate(conversation.steps):
                    if step.npc is None:
                        held.step(step)
                        continue
                    request = held.request()
                    key = f"{model}-{number}"
                    said, emotions, actions, chance = reply(engine, held, key, 11 + index, temperature)
                    ok = judge(step, index, conversation, persona, request, said, emotions, actions, earlier)
                    scores[step.skill or ""].append(ok)
                    transcript.append({"model": spec, "npc": persona.id, "conversation": number,
                                       "skill": step.skill, "line": held.line or held.cue,
                                       "prompt_holds": grounding(step.skill or "", persona, request),
                                       "reply": said, "emotions": emotions, "actions": actions,
                                       "action_chance": chance,
                                       "writer": step.npc, "passed": ok})  # fmt: skip
                    earlier.append(said)
                    held.replied(said, emotions, list(actions))
            passed[spec] = scores
    if args.transcript:
        args.transcript.write_text(yaml.safe_dump(transcript, sort_keys=False, allow_unicode=True))
    skills = sorted({s for scores in passed.values() for s in scores})
    rows = []
    for skill in [*skills, "all"]:
        row: list[object] = [skill]
        for scores in passed.values():
            got = [ok for s, oks in scores.items() if skill in (s, "all") for ok in oks]
            row.append(f"{sum(got)}/{len(got)} ({100 * sum(got) / max(1, len(got)):.0f} %)")
        rows.append(row)
    print(f"\n{machine()}; {len(conversations)} conversations of {len({c.persona for c in conversations})} "
          f"held-out personas; {time.perf_counter() - started:.0f} s\n")  # fmt: skip
    print(table(["skill", *passed], rows))


if __name__ == "__main__":
    main()
