"""A stop request (SIGTERM in ``crmbridge run``) ends a tables pass at once and cleanly, against in-memory ports.

The batch in hand either commits whole (every write was sent) or is abandoned whole (no new write starts, nothing
of it commits); the next pass resumes from the last committed page and ends with every row written exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crmbridge.config import parse_config
from crmbridge.engine.ports import ParentRef
from crmbridge.engine.table_spec import build_table_spec
from crmbridge.engine.tables import TablesFlow
from crmbridge.state import Flow, StateStore
from tests.engine.fakes import FakeResource, FakeTable

pytestmark = pytest.mark.anyio

CONFIG = """
version: 1
dynamics: {org_url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: s3cr3t-value}
campaign: {organization: acme, client_id: c, client_secret: s3cr3t-value}
mappings:
  - name: contacts
    table: contact
    resource: profileAndServicesExt
    key: {dynamics: contactid, campaign: externalId}
    fields:
      - {dynamics: firstname, campaign: firstName}
"""

ROWS = [f"c{n:02d}" for n in range(1, 11)]  # 10 rows, 4 per page: pages of c01-c04, c05-c08, c09-c10


@dataclass
class StoppingResource(FakeResource):
    """A Campaign resource whose writes take a moment; raises the stop flag when write number ``stop_at`` starts."""

    stop_at: int | None = None
    stop: bool = False
    started: list[str] = field(default_factory=list)
    started_after_stop: list[str] = field(default_factory=list)

    async def upsert(
        self, key: str, values: Mapping[str, Any], *, known: bool, parents: Mapping[str, ParentRef]
    ) -> None:
        if self.stop:
            self.started_after_stop.append(key)
        self.started.append(key)
        if len(self.started) == self.stop_at:
            self.stop = True
        await asyncio.sleep(0.001)  # the other writes of the page are in flight meanwhile
        await super().upsert(key, values, known=known, parents=parents)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def table() -> FakeTable:
    contacts = FakeTable("contact", "contactid", page_size=4)
    for n, row_id in enumerate(ROWS):
        contacts.put(row_id, firstname=f"Name {n}")
    return contacts


def flow(source: FakeTable, target: StoppingResource, store: StateStore) -> TablesFlow:
    config = parse_config(CONFIG)
    spec = build_table_spec(config, config.mappings[0])
    return TablesFlow(spec, source, target, store, write_concurrency=2, should_stop=lambda: target.stop)


async def test_a_stop_during_a_page_abandons_that_page_whole_and_the_next_pass_redoes_it(store: StateStore) -> None:
    source, target = table(), StoppingResource("profile", stop_at=6)  # the 2nd write of the 2nd page
    stats = await flow(source, target, store).run_pass()

    assert stats.stopped
    assert target.started_after_stop == []  # the writes in flight finished, none started after the stop
    assert target.started == ["c01", "c02", "c03", "c04", "c05", "c06"]  # c05 was in flight; c07 never started
    assert sorted(store.links_for("contacts", ROWS)) == ["c01", "c02", "c03", "c04"]  # only the 1st page committed
    checkpoint = store.checkpoint(Flow.TABLES, "contacts")
    assert checkpoint is not None and checkpoint.value is None and checkpoint.in_flight is not None
    assert store.last_runs()[("tables", "contacts")].status == "interrupted"

    target.stop_at, target.stop, target.started = None, False, []
    resumed = await flow(source, target, store).run_pass()
    assert not resumed.stopped
    assert source.reads[-1] == "full:0:4"  # resumed after the committed page, not from the start
    assert target.started == ["c05", "c06", "c07", "c08", "c09", "c10"]  # the abandoned page again, then the rest
    assert sorted(target.records) == ROWS
    assert sorted(store.links_for("contacts", ROWS)) == ROWS


async def test_a_stop_once_every_write_of_a_page_was_sent_commits_that_page_and_reads_no_further(
    store: StateStore,
) -> None:
    source, target = table(), StoppingResource("profile", stop_at=4)  # the last write of the 1st page
    stats = await flow(source, target, store).run_pass()

    assert stats.stopped and (stats.read, stats.created, stats.pages) == (4, 4, 1)
    assert sorted(target.records) == ["c01", "c02", "c03", "c04"]
    assert sorted(store.links_for("contacts", ROWS)) == ["c01", "c02", "c03", "c04"]

    target.stop_at, target.stop = None, False
    await flow(source, target, store).run_pass()
    assert [call for call in target.calls if call[0] == "update"] == []  # nothing was written twice
    assert sorted(target.records) == ROWS
