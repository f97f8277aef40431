"""Tables flow gaps: a fixed record closes its dead letter; children of a deleted parent do not linger in Campaign.

Expected Campaign contents and letters are written out literally (not computed with crmbridge.mapping).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.state import DeadLetterStatus, StateStore
from tests.engine.fakes import FakeResource
from tests.engine.test_tables_flow import CONFIG, Clock, contacts_table, flow

pytestmark = pytest.mark.anyio


@pytest.fixture
def config() -> CrmbridgeConfig:
    return parse_config(CONFIG)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_record_fixed_in_dynamics_closes_its_dead_letter_in_the_pass_that_writes_it(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", refuse={"c2"})
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    (letter,) = store.dead_letters.list()
    assert letter.id is not None

    profiles.refuse.clear()
    table.put("c2", firstname="Bob")  # the user fixed the record in Dynamics
    stats = await flow(config, "contacts", table, profiles, store, clock).run_pass()

    assert stats.created == 1
    assert profiles.records["c2"]["firstName"] == "Bob"
    assert store.dead_letters.list() == []
    closed = store.dead_letters.get(letter.id)
    assert closed is not None
    assert closed.status is DeadLetterStatus.RESOLVED
    assert closed.close_reason == "written by a later pass or retry"
    assert closed.closed_at is not None and closed.closed_at > letter.failed_at


async def test_a_record_still_refused_keeps_its_letter_open_with_one_more_attempt(
    config: CrmbridgeConfig, store: StateStore, clock: Clock
) -> None:
    table, profiles = contacts_table(), FakeResource("profile", refuse={"c2"})
    await flow(config, "contacts", table, profiles, store, clock).run_pass()
    table.put("c2", firstname="Bob")
    await flow(config, "contacts", table, profiles, store, clock).run_pass()

    (letter,) = store.dead_letters.list()
    assert (letter.record_key, letter.attempts, letter.closed_at) == ("c2", 2, None)
