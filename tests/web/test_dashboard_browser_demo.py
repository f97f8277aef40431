"""The dashboard of a running `crmbridge demo` in a real headless Chromium: every flow with its state, the contact
Campaign refused as a dead letter (retried by clicking, with the token the demo printed), the opt-out conflict the
demo made, and a screenshot (tests/artifacts/dashboard-demo.png, not committed) for a human to look at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.demo_process import RunningDemo, process_running, running_demo
from tests.web.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

SCREENSHOT = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard-demo.png"
FLOWS = ("contacts", "vehicles", "events", "optouts")
RETRIED_WITHIN_MS = 90_000  # the demo runs every flow every 15 s; a loaded machine may take a few passes longer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's Chromium is not at /usr/bin/chromium (apt-get install chromium)"
    ),
]


def test_dashboard_of_a_running_demo_retries_its_dead_letter_and_shows_flows_and_the_conflict(
    tmp_path: Path,
) -> None:
    with running_demo(tmp_path / "demo", size=60) as demo:
        _check_dashboard(demo)
        children = demo.child_pids()
        assert demo.stop() == 0, demo.output()
        assert [pid for pid in children if process_running(pid)] == []


def _check_dashboard(demo: RunningDemo) -> None:
    from playwright.sync_api import expect, sync_playwright

    refused = str(demo.summary["problem_contact"])
    conflict_contact = str(demo.summary["live_changes"]["campaign_opt_ins"][0])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(str(demo.summary["dashboard"]) + "/")
            page.uncheck("#autorefresh")  # the operator pauses the refresh while acting

            for flow in FLOWS:
                row = page.locator(f'tr[data-flow="{flow}"]')
                expect(row.locator(".badge")).to_have_text(re.compile(r"^(idle|running)$"))
                expect(row).to_contain_text(" ago")  # when its last pass ran
            conflict = page.locator(f'tr[data-conflict="{conflict_contact}"] td')
            expect(conflict.nth(3)).to_contain_text("opted out")  # Dynamics kept its opt-out
            expect(conflict.nth(4)).to_contain_text("opted in")  # the marketer re-subscribed the profile
            expect(conflict.nth(5)).to_have_text("campaign")  # Campaign's change is newer: it wins (Adobe's rule)
            expect(conflict.nth(6)).to_have_text("adobe")

            letter = page.locator("tr[data-letter]", has=page.locator(f'code:text-is("{refused}")'))
            expect(letter).to_have_count(1)
            expect(letter).to_contain_text("Invalid value 'mira.kowalska@example.com; mira@work.example'")
            expect(letter.locator(".letter-status")).to_have_text("open")
            letter_id = letter.get_attribute("data-letter")
            assert letter_id is not None
            before = int(letter.locator("td.num").inner_text())
            expect(letter.get_by_role("button", name="Retry")).to_be_disabled()  # locked until the token is given

            page.fill('input[name="token"]', demo.token)
            with page.expect_navigation():
                page.click("text=Unlock actions")
            page.uncheck("#autorefresh")
            with page.expect_navigation():
                page.click(f'[data-action="retry-{letter_id}"]')
            row = page.locator(f'tr[data-letter="{letter_id}"]')
            status, attempts = row.locator(".letter-status"), row.locator("td.num")
            if status.inner_text() != "retrying":  # the runner's pass came before the page did
                expect(attempts).to_have_text(str(before + 1))

            # The page refreshes itself: the runner re-reads the contact, Campaign refuses it again, the letter
            # is open once more with one more attempt (the email was not fixed in Dynamics).
            page.check("#autorefresh")
            expect(attempts).to_have_text(str(before + 1), timeout=RETRIED_WITHIN_MS)
            expect(status).to_have_text("open", timeout=RETRIED_WITHIN_MS)
            page.uncheck("#autorefresh")
            assert not [text for text in errors if "Content Security Policy" in text], errors

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
