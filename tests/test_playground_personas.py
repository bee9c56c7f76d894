"""The playground's persona editor and test runner in a real headless Chromium against the real suite:
key completion from the persona schema, the persona's conversation scripts run by the eval runner into a
pass/fail table; and what the page's server refuses (other sites, paths outside the persona folder)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


def request(
    url: str, method: str = "GET", body: object = None, origin: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if origin:
        headers["origin"] = origin
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data, headers, method=method), timeout=30
        ) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if error.headers.get_content_type() == "application/json" else {}


async def test_the_server_refuses_other_sites_and_files_outside_the_persona_folder(site, test_persona_dir):
    npc = fresh_persona(test_persona_dir, "blacksmith_hilda")
    path: Path = test_persona_dir / f"{npc}.yaml"
    text = await asyncio.to_thread(path.read_text)
    put = f"{site}/api/personas/{npc}"
    edited = {"text": text.replace("Hilda Ironhand", "Hilda Elsewhere")}

    status, body = await asyncio.to_thread(request, put, "PUT", edited, origin="http://evil.example")
    assert status == 403 and await asyncio.to_thread(path.read_text) == text
    status, body = await asyncio.to_thread(request, f"{site}/api/personas/..%2Fsecrets", "PUT", edited)
    assert status == 404  # no route: a persona id has no slash
    status, body = await asyncio.to_thread(request, f"{site}/api/personas/..", "PUT", edited)
    assert status == 400 and "not a persona id" in body["error"]
    status, body = await asyncio.to_thread(request, f"{site}/api/personas/no_such_npc")
    assert status == 404 and "no_such_npc" in body["error"]

    status, body = await asyncio.to_thread(request, put, "PUT", edited, origin=site)
    assert status == 200 and body == {"saved": True, "problems": []}
    assert "Hilda Elsewhere" in await asyncio.to_thread(path.read_text)
    status, body = await asyncio.to_thread(request, f"{put}/check", "POST", {"text": "id: [unclosed\n"})
    [problem] = body["problems"]
    assert status == 200 and problem["message"].startswith("YAML syntax") and problem["line"] == 2
