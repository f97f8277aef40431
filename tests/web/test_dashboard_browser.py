"""The dashboard in a real headless Chromium: flows, a dead letter retried by clicking, a conflict, a screenshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crmbridge.config import CrmbridgeConfig
from crmbridge.state import DeadLetterStatus, StateStore
from crmbridge.web import FixedStatus, Metrics, WebServer, create_web_app, serve_web
from tests.web.conftest import CONFLICT_CONTACT, DASHBOARD_TOKEN, REFUSED_RECORD

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's Chromium is not at /usr/bin/chromium (apt-get install chromium)"
    ),
]


@pytest.fixture
async def server(
    store: StateStore, letter_ids: dict[str, int], status: FixedStatus, metrics: Metrics, config: CrmbridgeConfig
) -> AsyncIterator[WebServer]:
    # The config binds 127.0.0.1, so only loopback host names are accepted, as in production.
    running = await serve_web(create_web_app(store, status, metrics, config, token=None), port=0)
    yield running
    await running.stop()


async def test_dashboard_in_chromium_retries_a_dead_letter_and_shows_flows_and_conflicts(
    server: WebServer, store: StateStore, letter_ids: dict[str, int]
) -> None:
    from playwright.async_api import async_playwright

    letter = letter_ids[REFUSED_RECORD]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            blocked: list[str] = []
            page.on("console", lambda message: blocked.append(message.text) if message.type == "error" else None)
            await page.goto(server.url + "/")

            async with page.expect_navigation(timeout=9_000):  # the page refreshes itself every few seconds
                pass
            await page.uncheck("#autorefresh")  # the operator pauses it while acting

            contacts = page.locator('tr[data-flow="contacts"]')
            assert "idle" in await contacts.inner_text()
            assert "read 120" in await contacts.inner_text()
            conflict = page.locator(f'tr[data-conflict="{CONFLICT_CONTACT}"]')
            assert "campaign" in await conflict.inner_text()
            assert "adobe" in await conflict.inner_text()
            row = page.locator(f'tr[data-letter="{letter}"]')
            assert await row.locator(".letter-status").inner_text() == "open"
            assert await row.get_by_role("button", name="Retry").is_disabled()  # locked until the token is given

            await page.fill('input[name="token"]', DASHBOARD_TOKEN)
            async with page.expect_navigation():
                await page.click("text=Unlock actions")
            await page.uncheck("#autorefresh")
            async with page.expect_navigation():
                await page.click(f'[data-action="retry-{letter}"]')

            assert await page.locator(f'tr[data-letter="{letter}"] .letter-status').inner_text() == "retrying"
            stored = store.dead_letters.get(letter)
            assert stored is not None and stored.status is DeadLetterStatus.RETRYING
            assert not [text for text in blocked if "Content Security Policy" in text]
            assert await page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            await browser.close()
