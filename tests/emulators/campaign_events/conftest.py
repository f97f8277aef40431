"""Fixtures of the events emulator tests: a manual clock, a hub on a temporary SQLite file, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from acs_events_app import START, client_for

from crmbridge.emulators.campaign.events import EventsHub, ExportSettings, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def hub(clock: ManualClock, tmp_path: Path) -> Iterator[EventsHub]:
    events_hub = EventsHub(tmp_path / "events.db", clock=clock, exports=ExportSettings())
    yield events_hub
    events_hub.close()


@pytest.fixture
async def http(hub: EventsHub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(hub) as client:
        yield client
