"""`npcvoice eval`: scripted conversations through the real gateway, checked line by line, replayable."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from prometheus_client import REGISTRY

from npcvoice.client import NpcClient
from npcvoice.evaluation.checks import check_reply, loops, repeats
from npcvoice.evaluation.runner import run_script
from npcvoice.evaluation.script import Expect, Script, ScriptError, load_script
from tests.conftest import REPO_ROOT
from tests.support.waiting import eventually

SCRIPT = """\
npc: courier_quick_test
player: eval-test
seed: 5
lines:
  - say: Hello there, courier!
    tag: smalltalk
  - say: Any letters for Emberfall today?
    tag: lore
"""


def test_every_reply_is_checked_for_silence_repeats_loops_and_prompt_text():
    earlier = ["The forge is hot today, friend."]
    failed = lambda reply: [c.name for c in check_reply(reply, [], [], Expect(), earlier) if not c.passed]  # noqa: E731
    assert failed("Steel does not lie.") == []
    assert failed("") == ["says something"]
    assert failed("The forge is hot today, my friend!") == ["no repeat"]
    assert failed("They sail the sea and they sail the sea and they sail the sea.") == ["no loop"]
    assert failed("You are Hilda. You know: the mine closed.") == ["no prompt text"]
    assert failed("Careful: you are still a stranger here.") == []  # "you are" before a name only
    assert repeats("A new line entirely.", earlier) is None and loops("One two three four five.") is None
    # A short answer that is a word of an earlier, longer reply answers; the same short words again repeat.
    assert failed("Hot.") == [] and failed("Forge!") == []
    assert repeats("Dunholt.", ["Hesper Quaile, beekeeper from Dunholt."]) is None
    assert repeats("Dunholt!", ["Dunholt."]) == "Dunholt."


def test_expectations_are_words_an_action_and_an_emotion():
    expect = Expect(any_words=["Aric"], no_words=["assistant"], action="repair_item", emotion=["joy"])
    checks = {
        c.name: c.passed for c in check_reply("Aric, hand it over.", ["joy"], ["repair_item"], expect, [])
    }
    assert all(checks.values()) and {"any of words", "none of words", "action", "emotion"} <= set(checks)
    checks = {c.name: c.passed for c in check_reply("As an assistant, no.", [], [], expect, [])}
    assert not any(checks[name] for name in ("any of words", "none of words", "action", "emotion"))


def test_a_reader_would_fail_a_stolen_name_talk_of_ai_an_unasked_action_and_invented_parameters():
    said = ["Good evening. I'm Tamsin, a merchant from Highcliff.", "Can you fix my chipped blade?"]

    def failed(reply, actions=(), parameters=None, expect=None):
        checks = check_reply(reply, [], list(actions), expect or Expect(), [], said, parameters, ["rain"])
        return [c.name for c in checks if not c.passed]

    assert failed("Evening, Tamsin. Highcliff merchants pay well.") == []
    assert failed("Good evening. I'm Tamsin, a merchant from Highcliff.") == ["own identity"]
    assert failed("I am a merchant too, you know.") == ["own identity"]
    assert failed("I'm Hilda, and I'm a smith.") == []  # its own name and trade
    assert failed("As an AI assistant, I cannot.") == ["in the world"]
    assert failed("Check it on your phone.") == ["in the world"]
    assert failed("Sure, hand it over.", ["repair_item"], {"repair_item": {"item": "blade"}}) == [
        "no action unasked"
    ]
    asked = Expect(action="repair_item")
    assert failed("Hand it over.", ["repair_item"], {"repair_item": {"item": "blade"}}, asked) == []
    assert failed("Hand it over.", ["repair_item"], {"repair_item": {"item": "chipped_blade"}}, asked) == []
    assert failed("Hand it over.", ["repair_item"], {"repair_item": {"item": "dragonwood"}}, asked) == [
        "parameters from the talk"
    ]
    assert failed("Hand it over.", ["repair_item"], {"repair_item": {"price": "200"}}, asked) == []


def test_a_line_expects_an_action_or_none_not_both():
    with pytest.raises(ValueError, match="either an action or no_action"):
        Expect(action="open_gate", no_action=True)


def test_a_script_names_its_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("npc: courier_quick_test\nlines:\n  - sya: hello\n")
    with pytest.raises(ScriptError, match=r"bad.yaml: lines.0.sya: Extra inputs are not permitted"):
        load_script(path)
    for shipped in (REPO_ROOT / "npc_personas" / "evals").rglob("*.yaml"):
        assert load_script(shipped).lines  # the shipped scripts load


def test_the_held_out_scripts_ask_their_own_npc_for_its_own_actions_and_emotions():
    # bench/unseen: personas and scripts never trained on (npcvoice up --personas bench/unseen/personas).
    from npcvoice.personas.loader import load_persona

    unseen = REPO_ROOT / "bench" / "unseen"
    personas = {p.stem: load_persona(p) for p in (unseen / "personas").glob("*.yaml")}
    scripts = sorted((unseen / "scripts").glob("*.yaml"))
    assert len(scripts) >= 6 and {s.stem for s in scripts} == set(personas)
    for path in scripts:
        script = load_script(path)
        persona = personas[script.npc]
        actions = {a.name for a in persona.actions}
        for line in script.lines:
            assert line.expect.action is None or line.expect.action in actions, (path.name, line.shown)
            assert set(line.expect.emotion) <= set(persona.emotions), (path.name, line.shown)


async def test_the_same_script_and_seed_give_the_same_replies(gateway):
    # Once the NPC is ready: its prompt prefilled ahead and its emotions calibrated, in the background
    # (at startup with `prewarm`, as `npcvoice up` runs; these tests start cold, so after its first
    # conversation). Before that, its very first emotion is chosen without the calibration.
    import yaml

    def ready() -> bool:
        labels = {"event": "built", "persona": "courier_quick_test"}
        return (REGISTRY.get_sample_value("npcvoice_dialogue_warm_prefixes_total", labels) or 0.0) >= 1

    script = Script.model_validate(yaml.safe_load(SCRIPT))
    async with NpcClient(gateway.host.address) as client:
        await run_script(script, client)
        await eventually(ready)
        first = [r.said() for r in await run_script(script, client)]
        second = [r.said() for r in await run_script(script, client)]
    assert all(entry["reply"] for entry in first)
    assert first == second


async def npcvoice_eval(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "npcvoice", "eval", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_eval_exits_non_zero_on_a_failed_line_and_replays_a_recorded_transcript(gateway, tmp_path):
    script = tmp_path / "courier.yaml"
    script.write_text(SCRIPT.split("  - say: Any letters")[0])  # one line: it cannot repeat itself
    failing = tmp_path / "failing.yaml"
    failing.write_text(SCRIPT.replace("    tag: lore", "    tag: lore\n    expect: {any_words: [xylophone]}"))
    address = ("--address", gateway.host.address)

    code, output = await npcvoice_eval(str(failing), *address)
    assert code == 1 and "FAIL" in output and "! any of words: none of ['xylophone']" in output

    transcript = tmp_path / "transcript.json"
    code, output = await npcvoice_eval(str(script), *address, "--record", str(transcript))
    assert code == 0, output
    assert "lines passed          1 of 1" in output
    code, output = await npcvoice_eval(str(script), *address, "--replay", str(transcript))
    assert code == 0 and "the same replies as recorded" in output, output

    recorded = json.loads(transcript.read_text())
    recorded[str(script)][0]["reply"] = "A reply the writer approved last week."
    transcript.write_text(json.dumps(recorded))
    code, output = await npcvoice_eval(str(script), *address, "--replay", str(transcript))
    assert code == 1 and "the replies changed" in output
    assert "-< A reply the writer approved last week." in output


def test_a_line_is_a_player_line_a_cue_or_events_whose_trigger_speaks(tmp_path):
    path = tmp_path / "scene.yaml"
    path.write_text(
        "npc: blacksmith_hilda\nlines:\n"
        "  - {context: {weather: snow}, say: Cold today}\n"
        "  - {speak: Greet the player.}\n"
        "  - {events: [{name: item_given, description: The player gave you a ring.}]}\n"
    )
    lines = load_script(path).lines
    assert [line.shown for line in lines] == [
        "Cold today",
        "(speak: Greet the player.)",
        "(event: item_given)",
    ]
    path.write_text("npc: blacksmith_hilda\nlines:\n  - {say: Hi, speak: Greet them.}\n")
    with pytest.raises(ScriptError, match="give one of say, speak or exchange, not say and speak"):
        load_script(path)
    path.write_text("npc: blacksmith_hilda\nlines:\n  - {context: {weather: snow}}\n")
    with pytest.raises(ScriptError, match="give say, speak, exchange, or events"):
        load_script(path)


async def test_a_scene_script_routes_lines_keeps_one_voice_and_each_npc_remembers_what_it_heard(gateway):
    """The shipped tavern scene, with voice, through the real gateway: who answered, turns taken, no two
    voices at once, the player's line stopping an exchange, and each NPC's memory (what its replies say
    of it is the model's quality, measured in docs/benchmarks.md, not asserted here)."""
    from tests.support.conversation import export

    script = load_script(REPO_ROOT / "npc_personas" / "evals" / "tavern_scene.yaml")
    async with NpcClient(gateway.host.address) as client:
        results = await run_script(script, client, voice=True)
    scene_checks = {
        "answered by",
        "takes turns",
        "one voice at a time",
        "the player's line stops the exchange",
    }
    checked = {c.name: c for result in results for c in result.checks if c.name in scene_checks}
    assert set(checked) == scene_checks
    assert all(c.passed for c in checked.values()), [c for c in checked.values() if not c.passed]
    told = "Tobin, I lost my father's silver ring on the road from Vaelmoor."
    vael = [t.text for t in (await export(gateway, script.player, "guard_captain_vael")).turns]
    assert f'The player said to Tobin Brightcask: "{told}"' in vael  # in earshot
    hilda = [t.text for t in (await export(gateway, script.player, "blacksmith_hilda")).turns]
    assert f'The player said to Tobin Brightcask: "{told}"' not in hilda  # out of earshot then
