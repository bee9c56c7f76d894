"""The playground's persona editor and test runner in a real headless Chromium against the real suite:
key completion from the persona schema, and the persona's conversation scripts run by the eval runner
into a pass/fail table."""

from __future__ import annotations

from tests.support.browser import open_page, skip_without_browser
from tests.support.waiting import fresh_persona

pytestmark = skip_without_browser()


async def offered(page) -> set[str]:
    return set(await page.eval_on_selector_all("#completions li", "items => items.map(i => i.dataset.key)"))


async def test_the_editor_completes_keys_from_the_schema_where_the_cursor_is(browser, site, test_persona_dir):
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    page = await open_page(browser, site, npc, "pg-editor")
    editor = page.locator("#persona")
    await editor.fill("schema_version: 1\nmemory:\n  ")
    await editor.press("End")
    await editor.press("Control+ArrowDown")  # the end of the text: inside `memory:`
    await editor.press("Control+Space")
    keys = await offered(page)
    assert {"recent_turns", "summarize_after", "ttl_days", "max_facts"} <= keys, keys
    assert "display_name" not in keys  # a top-level key is not offered inside memory

    # Typing at the top level offers the persona's own keys, with their descriptions; Enter takes one.
    await editor.fill("schema_version: 1\n")
    await editor.press("Control+ArrowDown")
    await editor.type("descr")
    await page.locator("#completions li").first.wait_for()
    assert await page.locator("#completions li").first.get_attribute("data-key") == "description"
    assert "backstory" in await page.locator("#completions li small").first.text_content()
    await editor.press("Enter")
    assert await editor.input_value() == "schema_version: 1\ndescription: "

    # In a list item, the item's keys: actions are name, description, parameters.
    await editor.fill("actions:\n  - ")
    await editor.press("Control+ArrowDown")
    await editor.press("Control+Space")
    assert {"name", "description", "parameters"} <= await offered(page)


async def test_the_persona_s_conversation_tests_run_and_show_a_pass_fail_table(
    browser, site, test_persona_dir, tmp_path
):
    npc = fresh_persona(test_persona_dir, "innkeeper_tobin")
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "greeting.yaml").write_text(
        f"npc: {npc}\nplayer: pg-eval\nseed: 5\nlines:\n"
        "  - say: Good evening! Do you have a room for the night?\n"
        "  - say: What is on the menu tonight?\n"
        "    expect: {any_words: [xylophone]}\n"  # never said: this line fails
    )
    (evals / "someone_else.yaml").write_text("npc: guard_captain_vael\nlines:\n  - say: Hello\n")
    page = await open_page(browser, site, npc, "pg-evals")
    assert "1 script(s): greeting.yaml" in await page.text_content("#scripts-status")

    await page.click("#scripts-run")
    await page.wait_for_selector("#scripts table", timeout=240_000)
    rows = page.locator("#scripts tbody tr")
    assert await rows.count() == 2
    cells = await rows.nth(1).locator("td").all_text_contents()
    assert cells[0] == "greeting.yaml" and cells[1] == "What is on the menu tonight?" and cells[2]
    assert cells[3].startswith("fail:") and "any of words" in cells[3]
    assert await rows.nth(1).locator("td.fail").count() == 1
    status = await page.text_content("#scripts-status")
    assert status.endswith("of 2 lines passed") and "bad" in (
        await page.get_attribute("#scripts-status", "class")
    )
