"""The playground served in the test's event loop against the real gateway, and a real headless Chromium
(Debian's, driven by Playwright without a browser download of its own) to look at it."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from npcvoice.playground.options import PlaygroundOptions
from npcvoice.runtime.ports import free_port
from tests.support.waiting import eventually

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
    """The playground's app under uvicorn in this event loop; yields its address."""
    import uvicorn

    from npcvoice.playground.server import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(options.model_copy(update={"port": port})),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done())
    assert server.started, "the playground did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


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
