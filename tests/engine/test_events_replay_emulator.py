"""A replay after a crash against the Dataverse emulator, which refuses updates of closed activities as a real org.

The crash is simulated by a second state store: the rows were written and closed, the position never committed.
Expectations are read from the emulator's own API (row versions, states), never computed with crmbridge's code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crmbridge.engine.adapters import DataverseActivitySink
from crmbridge.engine.events import EventsFlow
from crmbridge.engine.provision import provision
from crmbridge.records import EmailEvent, EventSourceKind, EventType
from crmbridge.state import Flow, StateStore
from tests.engine.fakes import FakeEventFeed
from tests.engine.ops_env import load, make_emulators

pytestmark = pytest.mark.anyio

EVENTS = """\
events:
  source:
    exports: {folder: /tmp}
  types: {send: false, open: true, click: true, bounce: hard}
  followup_tasks: {on_click: true}
"""
TABLES = {EventType.OPEN: "cmb_emailopens", EventType.CLICK: "cmb_emailclicks"}


def email_event(kind: EventType, contact: str, broadlog: str, minute: int, **kw: Any) -> EmailEvent:
    return EmailEvent(
        kind,
        datetime(2026, 3, 1, 9, minute, tzinfo=UTC),
        EventSourceKind.ACS_EXPORT,
        f"tracking:{broadlog}:{minute}",
        f"tracking_2026-03-01.csv#L{minute}",
        external_id=contact,
        campaign_id="2019LoyaltyCamp",
        delivery_id="DM190",
        broadlog_id=broadlog,
        **kw,
    )


async def test_a_replayed_batch_of_written_and_closed_rows_writes_nothing_and_fails_nothing(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(2)
    config = load(tmp_path / "state.db", extra=EVENTS)
    assert config.events is not None
    async with emulators.services(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)
        page = await anext(services.dataverse.iter_pages("contacts", select=["contactid"]))
        first, second = (row["contactid"] for row in page.rows[:2])
        events = [
            email_event(EventType.OPEN, first, "b1", 5),
            email_event(EventType.CLICK, first, "b1", 6, url="https://example.com/offer"),
            email_event(EventType.OPEN, second, "b2", 7),
        ]
        sink = DataverseActivitySink(services.dataverse)

        async def rows() -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            for e in events:
                row = await services.dataverse.get(
                    TABLES[e.event_type], str(e.activity_id), select=["statecode", "versionnumber"]
                )
                assert row is not None
                found[str(e.activity_id)] = row
            return found

        crashed = EventsFlow(config.events, FakeEventFeed(list(events), batch_size=2), sink, services.store, scope="x")
        written = await crashed.run_pass()
        assert (written.written, written.failed, written.tasks) == (3, 0, 1)
        before = await rows()
        assert {row["statecode"] for row in before.values()} == {1}  # completed
        tasks = (await anext(services.dataverse.iter_pages("tasks", select=["activityid"]))).rows
        assert len(tasks) == 1

        # The crash: rows written and closed, position not committed. A new process replays the same batches.
        with StateStore.open(f"sqlite:///{tmp_path / 'replay.db'}") as replay_store:
            replay = EventsFlow(config.events, FakeEventFeed(list(events), batch_size=2), sink, replay_store, scope="x")
            again = await replay.run_pass()
            letters = replay_store.dead_letters.list(flow=Flow.EVENTS)
            recorded = replay_store.ledger_contains({e.event_key for e in events})
        after = await rows()
        tasks_after = (await anext(services.dataverse.iter_pages("tasks", select=["activityid"]))).rows

    assert (again.written, again.failed, again.tasks) == (3, 0, 1)
    assert letters == []
    assert recorded == {e.event_key for e in events}
    assert after == before  # same versionnumber: not one row was written again
    assert tasks_after == tasks


async def test_a_replayed_row_left_open_by_the_crash_is_closed_without_rewriting_it(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(1)
    config = load(tmp_path / "state.db", extra=EVENTS)
    assert config.events is not None
    async with emulators.services(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)
        page = await anext(services.dataverse.iter_pages("contacts", select=["contactid"]))
        contact = page.rows[0]["contactid"]
        opened = email_event(EventType.OPEN, contact, "b1", 5)
        sink = DataverseActivitySink(services.dataverse)
        await EventsFlow(config.events, FakeEventFeed([opened]), sink, services.store, scope="x").run_pass()
        row_id = str(opened.activity_id)
        # The crash came between the upsert and the close: the row is open (reopened here through the API).
        await services.dataverse.update("cmb_emailopens", row_id, {"statecode": 0, "statuscode": 1})
        reopened = await services.dataverse.get("cmb_emailopens", row_id, select=["versionnumber"])
        assert reopened is not None
        with StateStore.open(f"sqlite:///{tmp_path / 'replay.db'}") as replay_store:
            stats = await EventsFlow(config.events, FakeEventFeed([opened]), sink, replay_store, scope="x").run_pass()
        row = await services.dataverse.get(
            "cmb_emailopens", row_id, select=["subject", "statecode", "statuscode", "versionnumber"]
        )
    assert (stats.written, stats.failed) == (1, 0)
    assert row is not None
    assert (row["statecode"], row["statuscode"]) == (1, 2)
    assert row["subject"] == "Campaign Name: 2019LoyaltyCamp; Delivery Name: DM190"
    assert int(row["versionnumber"]) == int(reopened["versionnumber"]) + 1  # one write, the close (not two)
