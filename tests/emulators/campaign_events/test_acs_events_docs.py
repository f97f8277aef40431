"""The examples of docs/emulator-campaign.md run against the test app, so the documentation cannot drift."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from acs_events_app import HEADERS

from crmbridge.emulators.campaign.events import ManualClock

pytestmark = pytest.mark.anyio
DOC = Path(__file__).parents[3] / "docs" / "emulator-campaign.md"


def code_blocks(section: str, language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.DOTALL)


async def test_the_documented_delivery_request_simulates_what_its_rates_say(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    body = json.loads(code_blocks("Simulate a delivery", "json")[0])
    response = await http.post("/_emulator/deliveries", json=body)
    assert response.status_code == 201
    report = response.json()
    assert report["messages"] == 200
    assert report["bouncesByType"] == {"Hard": 6, "Soft": 4}  # round(0.05 × 200) = 10, 60 % hard


async def test_the_documented_journal_request_reads_the_journal(http: httpx.AsyncClient, clock: ManualClock) -> None:
    request_line = code_blocks("Point a journal consumer at it", "")[0].splitlines()[0]
    method, target = request_line.split(" ", 1)
    await http.post("/_emulator/deliveries", json=json.loads(code_blocks("Simulate a delivery", "json")[0]))
    clock.advance(timedelta(days=4))
    response = await http.request(method, target, headers=HEADERS)
    assert response.status_code == 200
    assert response.json()["_page"]["count"] == 50


async def test_the_documented_export_settings_are_accepted(http: httpx.AsyncClient, tmp_path: Path) -> None:
    settings = json.loads(code_blocks("Point an export reader (SFTP) at it", "json")[0])
    settings["folder"] = str(tmp_path / "exports")
    response = await http.put("/_emulator/exports", json=settings)
    assert response.status_code == 200
    assert response.json()["separator"] == "\t"
