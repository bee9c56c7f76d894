"""The playground served in the test's event loop against the real gateway, and a real headless Chromium
(Debian's, driven by Playwright without a browser download of its own) to look at it."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from npcvoice.playground.options import PlaygroundOptions
from npcvoice.runtime.ports import free_port

# What makes a page in a browser with no person at it behave as one with a person: audio may start
# without a click, and the microphone is granted (a fake one: a tone, or a WAV file when given).
CHROMIUM_FLAGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
]


def chromium_path() -> str | None:
    found = (
        os.environ.get("NPCVOICE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    return found if found and Path(found).exists() else None


def skip_without_browser() -> pytest.MarkDecorator:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return pytest.mark.skip(reason="Playwright is not installed (pip install -e '.[dev]')")
    return pytest.mark.skipif(
        chromium_path() is None,
        reason="no Chromium: `apt-get install chromium` (./dev test installs it as root where apt exists)",
    )


@asynccontextmanager
async def serve_playground(options: PlaygroundOptions) -> AsyncIterator[str]:
    """The playground's app in this event loop on a free port; yields its address."""
    from npcvoice.playground.server import serving

    # log_config=None: its errors go to the test's log (caplog), not to a handler of uvicorn's own.
    settings = {"log_level": "warning", "log_config": None}
    async with serving(options.model_copy(update={"port": free_port()}), **settings) as address:
        yield address


@asynccontextmanager
async def chromium(*flags: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    assert path is not None
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=path, args=[*CHROMIUM_FLAGS, *flags])
        try:
            yield browser
        finally:
            await browser.close()


REPLY_TIMEOUT_MS = 180_000  # a voiced reply on a loaded 2-core machine
_players = itertools.count()


def new_player() -> str:
    """A player no NPC remembers yet."""
    return f"pg-player-{next(_players)}-{int(time.time() * 1000)}"


@pytest.fixture
async def site(gateway: Any, test_persona_dir: Path, tmp_path: Path) -> AsyncIterator[str]:
    """The playground for the test's gateway and personas; conversation scripts in tmp_path/evals."""
    options = PlaygroundOptions(
        gateway=gateway.host.address, persona_dir=test_persona_dir, eval_dir=tmp_path / "evals"
    )
    async with serve_playground(options) as address:
        yield address


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


async def open_page(browser: Any, site: str, npc: str, player: str) -> Any:
    """The page for ``npc`` and ``player``, connected; ``page.errors`` collects the page's own errors."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{site}/?npc={npc}&player={player}")
    await page.wait_for_selector("body[data-ready=true]")
    await page.wait_for_selector("#connection.ok")
    page.errors = errors
    return page


async def turns_ended(page: Any) -> int:
    return int(await page.evaluate("window.playground.conversation.turnsEnded"))


async def say(page: Any, text: str) -> None:
    """Type a line and wait for the end of the NPC's turn."""
    ended = await turns_ended(page)
    await page.fill("#say", text)
    await page.click("#send")
    await page.wait_for_function(
        f"window.playground.conversation.turnsEnded > {ended}", timeout=REPLY_TIMEOUT_MS
    )
