"""An events dead letter retried from the dashboard (status retrying) or ``dlq retry``, against both emulators.

The letter is planted as the events flow stores one (the event's fields as payload); the expected activity is read
back from the Dataverse emulator under the event's deterministic id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crmbridge.engine.deadletters import retry_letters
from crmbridge.engine.event_records import event_payload
from crmbridge.engine.provision import provision
from crmbridge.engine.runner import Runner
from crmbridge.records import EmailEvent, EventSourceKind, EventType
from crmbridge.state import Batch, DeadLetter, DeadLetterStatus, Flow
from tests.engine.ops_env import load, make_emulators

EVENTS = """\
events:
  source:
    exports: {folder: /tmp}
  types: {send: false, open: true, click: true, bounce: hard}
  rollups: {enabled: true}
"""


@pytest.mark.anyio
async def test_a_retrying_events_letter_is_written_by_the_next_pass_and_resolved(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(2)
    config = load(tmp_path / "state.db", extra=EVENTS)
    async with emulators.services(config) as services:
        await provision(services.dataverse.metadata, config, dry_run=False)
        page = await anext(services.dataverse.iter_pages("contacts", select=["contactid"]))
        contact = page.rows[0]["contactid"]
        opened = EmailEvent(
            EventType.OPEN,
            datetime(2026, 3, 1, 9, 5, tzinfo=UTC),
            EventSourceKind.ACS_EXPORT,
            "tracking:77",
            "tracking_2026-03-01.csv#L2",
            external_id=contact,
            campaign_id="2019LoyaltyCamp",
            delivery_id="DM190",
            broadlog_id="b1",
        )
        batch = Batch(Flow.EVENTS, "exports")
        letter = DeadLetter(
            Flow.EVENTS,
            "exports",
            opened.event_key,
            event_payload(opened),
            "RecordError",
            "refused",
            opened.occurred_at,
        )
        batch.dead_letter(letter)
        services.store.commit(batch)
        (stored,) = services.store.dead_letters.list()
        assert stored.id is not None
        services.store.dead_letters.mark([stored.id], DeadLetterStatus.RETRYING)  # the dashboard's retry button

        await Runner(services).tables_pass()

        row = await services.dataverse.get(
            "cmb_emailopens", str(opened.activity_id), select=["subject", "cmb_occurredon"]
        )
        contact_row = await services.dataverse.get("contacts", contact, select=["cmb_emailopencount"])
        resolved = services.store.dead_letters.get(stored.id)
        again = await retry_letters(Runner(services), [stored.id])
    assert row is not None
    assert row["subject"] == "Campaign Name: 2019LoyaltyCamp; Delivery Name: DM190"
    assert row["cmb_occurredon"].startswith("2026-03-01T09:05:00")
    assert contact_row is not None and contact_row["cmb_emailopencount"] == 1
    assert resolved is not None and resolved.status is DeadLetterStatus.RESOLVED
    assert [(r.outcome, r.detail) for r in again] == [("skipped", "already resolved")]
