"""The writers' playground in a real headless Chromium, against the real suite (gateway, models, Redis):
the page talks to an NPC by text and by microphone (open or push-to-talk) and moves the mouth with the audio, is interrupted by
the player, edits a persona with the validator's errors at their lines, and shows, resets and exports
what the NPC remembers."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from tests.support.browser import (
    REPLY_TIMEOUT_MS,
    chromium,
    new_player,
    open_page,
    say,
    skip_without_browser,
    turns_ended,
)
from tests.support.conversation import stub
from tests.support.waiting import fresh_persona

pytestmark = skip_without_browser()

# The push-to-talk button let go by the page itself in the task that sends the given chunk.
LET_GO_AFTER = """(limit) => {
  const stats = window.playground.conversation.mic.stats;
  let sent = stats.chunksSent;
  Object.defineProperty(stats, "chunksSent", {
    get: () => sent,
    set: (value) => {
      sent = value;
      if (sent === limit) document.getElementById("ptt").dispatchEvent(new PointerEvent("pointerup"));
    },
  });
}"""


async def test_a_typed_line_gets_text_and_audio_and_the_mouth_moves_with_it(browser, site, test_persona_dir):
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    page = await open_page(browser, site, npc, new_player())
    assert await page.text_content("#npc-name") == "Hilda Ironhand"
    assert "Mind the sparks" in await page.text_content("#transcript")

    await say(page, "Good morning! Can you repair my sword?")
    reply = await page.locator("#transcript li.npc .text").last.text_content()
    assert reply and len(reply.split()) >= 2
    stats = await page.evaluate(
        "({player: window.playground.player.stats, face: window.playground.face.stats})"
    )
    assert stats["player"]["audioChunks"] >= 1
    assert stats["player"]["samplesScheduled"] > 22050 * 0.3  # more than a click: the sentence's audio
    # The frames are applied on the audio clock while the audio plays: wait for the whole reply to sound.
    await page.wait_for_function("!window.playground.player.busy()", timeout=60_000)
    stats = await page.evaluate("window.playground.face.stats")
    seconds = (await page.evaluate("window.playground.player.stats.samplesScheduled")) / 22050
    # At 30 frames a second (the persona's rate), most frames of the reply land while it plays.
    assert stats["framesDuringPlayback"] >= 0.5 * 30 * seconds, (stats, seconds)
    assert stats["maxOpen"] > 0.3  # the mouth opened for vowels, and closed again at the end
    assert await page.get_attribute("#face", "data-viseme") == "sil"
    latency_cells = await page.locator("#latency tbody tr").first.locator("td").all_text_contents()
    assert latency_cells[0] == "0" and all(cell.isdigit() for cell in latency_cells[2:5]), latency_cells
    # Every reply opens with one of the persona's emotions, shown as a badge.
    assert await page.text_content("#emotion") in ("neutral", "joy", "anger", "sadness")
    assert page.errors == []


async def test_a_scene_of_two_npcs_answers_by_name_with_each_one_s_own_face(browser, site, test_persona_dir):
    page = await open_page(browser, site, "blacksmith_hilda&with=courier_quick_test", new_player())
    assert not await page.locator("#second").is_hidden()
    assert "Letter for you?" in await page.text_content("#transcript")  # the second NPC's greeting too
    await say(page, "Fenn, any letters for me today?")
    who = await page.locator("#transcript li.npc .who").last.text_content()
    assert who == "Fenn the Courier"
    await page.wait_for_function("!window.playground.player.busy()", timeout=60_000)
    moved = await page.evaluate("[window.playground.face.stats, window.playground.second.stats]")
    assert moved[1]["framesApplied"] > 0 and moved[0]["framesApplied"] == 0  # only the speaker's mouth
    await say(page, "And you, Hilda?")
    assert await page.locator("#transcript li.npc .who").last.text_content() == "Hilda Ironhand"
    assert page.errors == []


async def test_an_invalid_edit_shows_the_error_at_its_line_and_the_npc_keeps_its_last_good_version(
    browser, site, test_persona_dir, gateway
):
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    path = test_persona_dir / f"{npc}.yaml"
    page = await open_page(browser, site, npc, new_player())
    original = await page.input_value("#persona")
    assert original == path.read_text()

    # A valid edit is saved, and the running suite uses it from the next conversation.
    renamed = original.replace("display_name: Hilda Ironhand", "display_name: Hilda the Tester")
    await page.fill("#persona", renamed)
    await page.click("#save")
    await page.wait_for_selector("#persona-status.ok >> text=saved")
    assert path.read_text() == renamed

    # An invalid one: an unknown key three lines further down, and a new name that must not take effect.
    lines = renamed.replace("Hilda the Tester", "Broken Name").split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("display_name:")) + 1
    lines.insert(at, "voice_sped: 0.9")
    await page.fill("#persona", "\n".join(lines))
    marker = page.locator(f"#markers .marker[data-line='{at + 1}']")
    await marker.wait_for()  # checked as the writer types
    assert "voice_sped: unknown key" in await marker.text_content()
    assert await page.get_attribute(f"#gutter div:nth-child({at + 1})", "class") == "error"
    await page.click("#save")
    await page.wait_for_selector("#persona-status.bad >> text=not saved")
    assert f"{at + 1}:1: voice_sped: unknown key" in await page.text_content("#problems")
    assert path.read_text() == renamed  # the file keeps the last good version

    # The NPC talks as its last good version.
    npcs = await stub(gateway).ListNpcs(conversation_pb2.ListNpcsRequest())
    assert {n.npc_id: n.display_name for n in npcs.npcs}[npc] == "Hilda the Tester"
    await page.reload()
    await page.wait_for_selector("#connection.ok")
    await page.wait_for_function("document.querySelector('#npc-name').textContent === 'Hilda the Tester'")
    await say(page, "Hello there!")
    assert await page.locator("#transcript li.npc .text").last.text_content()


async def test_the_memory_panel_shows_what_the_npc_remembers_and_reset_empties_it(
    browser, site, test_persona_dir, gateway
):
    npc, player = fresh_persona(test_persona_dir, "blacksmith_hilda"), new_player()
    page = await open_page(browser, site, npc, player)
    assert await page.get_attribute("#memory", "data-turns") == "0"
    await say(page, "My name is Ada and I live in Vaelmoor.")
    await page.wait_for_selector("#memory[data-turns='2']")  # the player's line and the reply
    memory = await page.text_content("#memory")
    assert "My name is Ada and I live in Vaelmoor." in memory

    async with page.expect_download() as download:
        await page.click("#memory-export")
    saved = await (await download.value).path()
    exported = saved.read_text()
    assert "Vaelmoor" in exported

    await page.click("#memory-reset")
    await page.wait_for_selector("#memory[data-turns='0']")
    assert "no lines remembered" in await page.text_content("#memory")
    assert "no facts" in await page.text_content("#memory")
    # The NPC starts afresh: a new conversation that remembers nothing of the player.
    await page.wait_for_selector("#transcript li.system >> text=Mind the sparks")
    assert "remembers" not in await page.text_content("#transcript")
    request = conversation_pb2.ExportMemoryRequest(npc_id=npc, player_id=player)
    assert not (await stub(gateway).ExportMemory(request)).snapshot.turns

    # The exported file brings the memory back.
    await page.set_input_files("#memory-import", files=[{"name": "m.json", "mimeType": "application/json",
                                                         "buffer": exported.encode()}])  # fmt: skip
    await page.wait_for_selector("#memory[data-turns='2']")
    assert len((await stub(gateway).ExportMemory(request)).snapshot.turns) == 2


async def test_talking_over_the_npc_interrupts_it_and_shows_what_was_heard(browser, site, test_persona_dir):
    npc = fresh_persona(test_persona_dir, "innkeeper_tobin")
    # A reply long enough to talk over: the tuned model says two short sentences, and its whole turn has
    # been sent (past interrupting) before 0.8 s of it has sounded; the bundled model runs on, up to six.
    copy = test_persona_dir / f"{npc}.yaml"
    longer = "  max_tokens: 200\n  max_sentences: 6\n  model: smollm2-135m"
    copy.write_text(copy.read_text().replace("  max_tokens: 90", longer))
    page = await open_page(browser, site, npc, new_player())
    heard = page.locator("#transcript .heard")
    for _ in range(5):  # a reply may end before the player gets a word in: then try again
        # once the last reply has stopped sounding: a line typed over a reply already sent in full marks it
        # interrupted too (as it should), and this test counts the one it talks over on purpose
        await page.wait_for_function("!window.playground.player.busy()", timeout=REPLY_TIMEOUT_MS)
        ended = await turns_ended(page)
        await page.fill("#say", "Tell me about this town, its people and its history.")
        await page.click("#send")
        # Some of this reply has sounded (0.8 s), or the turn is over already. (This turn's index is the
        # number of turns ended before it; the audio of an earlier reply may still be playing.)
        await page.wait_for_function(
            f"(window.playground.player.played()?.turn_index === {ended}"
            f" && window.playground.player.played().played_samples > 0.8 * 22050)"
            f" || window.playground.conversation.turnsEnded > {ended}",
            timeout=REPLY_TIMEOUT_MS,
        )
        if await turns_ended(page) > ended:
            continue
        await page.fill("#say", "Sorry, wait a moment.")
        await page.click("#send")
        await page.wait_for_function(
            f"window.playground.conversation.turnsEnded > {ended + 1}", timeout=REPLY_TIMEOUT_MS
        )
        if await heard.count():
            break
    assert await heard.count() == 1, "never interrupted"
    kept = (await heard.text_content()).split("heard:", 1)[1]
    reply = await page.locator("#transcript li.npc:has(.heard) .text").text_content()
    # What was kept as heard is words of the reply (as far as it had sounded when the player typed).
    kept_words, reply_words = re.findall(r"[a-z']+", kept.lower()), re.findall(r"[a-z']+", reply.lower())
    assert kept_words and set(kept_words) <= set(reply_words), (kept, reply)
    assert "interrupted" in await page.text_content("#latency tbody")
    await page.wait_for_function("document.querySelector('#memory').textContent.includes('(interrupted)')")


async def test_a_reply_talked_over_after_it_was_all_sent_is_marked_interrupted(
    browser, site, test_persona_dir
):
    # A game's usual case: the gateway sends a whole reply (its TurnEnd: not interrupted) well before it
    # has played, and the player talks over what still sounds; that turn's Interruption comes after its
    # TurnEnd, and the page marks the turn as interrupted then.
    npc = fresh_persona(test_persona_dir, "innkeeper_tobin")
    page = await open_page(browser, site, npc, new_player())
    for _ in range(5):  # a reply may have played out before the player gets a word in: then try again
        # each try starts in silence: a line typed over the last try's reply would talk over that one
        await page.wait_for_function("!window.playground.player.busy()", timeout=REPLY_TIMEOUT_MS)
        ended = await turns_ended(page)
        await say(page, "Tell me about this town and its people.")
        still_playing = (
            f"window.playground.player.busy() && window.playground.player.played()?.turn_index === {ended}"
        )
        if not await page.evaluate(still_playing):
            continue
        row = page.locator("#latency tbody tr").nth(ended).locator("td")
        assert (await row.first.text_content(), await row.last.text_content()) == (str(ended), "")
        await say(page, "Sorry, wait a moment.")
        if await page.locator("#transcript .heard").count():
            break
    assert await page.locator("#transcript .heard").count() == 1, "never talked over"
    assert await row.last.text_content() == "interrupted"


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


async def test_the_microphone_streams_to_the_gateway_and_its_line_is_answered(
    site, test_persona_dir, speak, tmp_path
):
    # Chromium's fake microphone plays this file once (%noloop): the player's line, then silence.
    silence = np.zeros(16000, dtype=np.float32)
    recording = tmp_path / "player.wav"
    write_wav(
        recording, np.concatenate([silence / 2, speak("Can you repair my sword?", 16000), silence, silence])
    )
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    async with chromium(f"--use-file-for-fake-audio-capture={recording}%noloop") as browser:
        page = await open_page(browser, site, npc, new_player())
        await page.click("#open-mic")  # voice activity: the gateway ends the utterance
        spoken = page.locator("#transcript li.player:not(.interim)")
        await spoken.first.wait_for(timeout=REPLY_TIMEOUT_MS)
        assert "sword" in (await spoken.first.text_content()).lower()
        await page.wait_for_function(
            "window.playground.conversation.turnsEnded >= 1", timeout=REPLY_TIMEOUT_MS
        )
        assert await page.evaluate("window.playground.conversation.mic.stats.chunksSent") > 10
        assert await page.locator("#transcript li.npc .text").last.text_content()


async def test_push_to_talk_ends_the_line_when_let_go_even_mid_speech(
    site, test_persona_dir, speak, tmp_path
):
    # The player goes on talking without a pause; letting go of the button ends the line there.
    first = speak("Can you repair my sword?", 16000)
    rest = speak("And after that my shield, my helmet and my boots, please.", 16000)
    recording = tmp_path / "player.wav"
    write_wav(
        recording, np.concatenate([np.zeros(4800, np.float32), first, rest, np.zeros(32000, np.float32)])
    )
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    async with chromium(f"--use-file-for-fake-audio-capture={recording}%noloop") as browser:
        page = await open_page(browser, site, npc, new_player())
        # Held until the microphone has sent the first sentence (100 ms a chunk), then let go: in the
        # page, as that chunk goes, so that a loaded machine's slower round trips cannot send more.
        chunks = int((4800 + len(first)) / 1600) + 2
        await page.evaluate(LET_GO_AFTER, chunks)
        await page.hover("#ptt")
        await page.mouse.down()
        await page.wait_for_function(f"window.playground.conversation.mic.stats.chunksSent >= {chunks}")
        await page.wait_for_function("!document.getElementById('ptt').classList.contains('held')")
        await page.mouse.up()
        await page.wait_for_timeout(300)
        sent = await page.evaluate("window.playground.conversation.mic.stats.chunksSent")
        answered = "[...document.querySelectorAll('#transcript li.npc .text')].some((e) => e.textContent)"
        await page.wait_for_function(answered, timeout=REPLY_TIMEOUT_MS)
        # The line heard ends where the button was let go, shown once (when the speech service cuts it at
        # the pause after "sword?" and hears the rest as its continuation, the first part's line goes).
        lines = [
            text.lower()
            for text in await page.locator("#transcript li.player:not(.interim)").all_text_contents()
        ]
        assert len(lines) == 1 and "sword" in lines[0], lines
        assert not any("helmet" in line or "boots" in line for line in lines), lines
        now_sent = await page.evaluate("window.playground.conversation.mic.stats.chunksSent")
        assert now_sent == sent  # nothing more was sent after letting go


async def test_a_line_the_player_went_on_with_after_a_pause_is_shown_once(
    site, test_persona_dir, speak, tmp_path, gate
):
    # 0.6 s of silence may end the first part; the player goes on before any reply audio: one line, whole.
    # The reply is held (gate) until the page has heard the player go on, so a machine fast enough to
    # answer the first part within the pause does not turn this into a barge-in test.
    pause = np.zeros(int(0.6 * 16000), np.float32)
    silence = np.zeros(16000, np.float32)
    recording = tmp_path / "player.wav"
    write_wav(
        recording,
        np.concatenate([silence / 2, speak("Can you repair", 16000), pause, speak("my old sword?", 16000),
                        silence, silence]),
    )  # fmt: skip
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    async with chromium(f"--use-file-for-fake-audio-capture={recording}%noloop") as browser:
        page = await open_page(browser, site, npc, new_player())
        await page.click("#open-mic")
        went_on = "[...document.querySelectorAll('#transcript li.player')].some((e) => /sword/i.test(e.textContent))"
        await page.wait_for_function(went_on, timeout=REPLY_TIMEOUT_MS)
        gate.released.set()
        answered = "[...document.querySelectorAll('#transcript li.npc .text')].some((e) => e.textContent)"
        await page.wait_for_function(
            f"window.playground.conversation.turnsEnded >= 1 && {answered}", timeout=REPLY_TIMEOUT_MS
        )
        lines = await page.locator("#transcript li.player:not(.interim)").all_text_contents()
        assert len(lines) == 1 and "repair" in lines[0].lower() and "sword" in lines[0].lower(), lines
