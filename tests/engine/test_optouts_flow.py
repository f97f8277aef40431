"""The opt-out flow with in-memory Dynamics contacts and ACS profiles and a real SQLite state store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from crmbridge.config import OptOutSettings, parse_config
from crmbridge.engine.optouts import OptOutsFlow
from crmbridge.state import Batch, StateStore
from tests.engine.fakes import FakeContacts, FakeProfiles, FakeTable

pytestmark = pytest.mark.anyio


def settings(mode: str = "bidirectional", rule: str = "adobe", timestamps: str = "auto") -> OptOutSettings:
    return parse_config(
        f"""
version: 1
dynamics: {{org_url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: s3cr3t-value}}
campaign: {{organization: acme, client_id: c, client_secret: s3cr3t-value}}
optouts:
  mode: {mode}
  conflict_rule: {rule}
  timestamps: {timestamps}
  overlap: 2m
  pairs:
    - {{dynamics: donotbulkemail, campaign: blackListEmail}}
    - {{dynamics: donotphone, campaign: blackListPhone}}
"""
    ).optouts


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 10) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


class World:
    def __init__(self, store: StateStore, per_flag: bool = True) -> None:
        self.clock = Clock()
        self.contacts = FakeContacts(FakeTable("contact", "contactid"), self.clock)
        self.profiles = FakeProfiles(self.clock, per_flag_timestamps=per_flag)
        self.store = store
        for contact in ("c1", "c2", "c3"):
            self.contacts.edit(contact, donotbulkemail=False, donotphone=False)
            self.profiles.edit(contact, blackListEmail=False, blackListPhone=False)

    async def sync(self, optouts: OptOutSettings) -> object:
        self.clock.tick()
        flow = OptOutsFlow(optouts, self.contacts.table, self.contacts, self.profiles, self.store, clock=self.clock)
        return await flow.run_pass()


async def test_first_pass_takes_both_sides_as_they_are_and_writes_nothing(store: StateStore) -> None:
    world = World(store)
    world.contacts.edit("c1", donotbulkemail=True)  # a difference that predates crmbridge
    await world.sync(settings())
    assert world.contacts.writes == []
    assert world.profiles.writes == []


async def test_dynamics_opt_out_reaches_campaign_in_one_pass_and_its_echo_is_ignored(store: StateStore) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick()
    world.contacts.edit("c1", donotbulkemail=True)
    await world.sync(settings())
    assert world.profiles.writes == [("c1", {"blackListEmail": True})]
    world.clock.tick()
    await world.sync(settings())  # the echo of our own write comes back in the next reads
    await world.sync(settings())
    assert world.profiles.writes == [("c1", {"blackListEmail": True})]
    assert world.contacts.writes == []


async def test_campaign_opt_out_reaches_dynamics(store: StateStore) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick()
    world.profiles.edit("c2", blackListPhone=True)
    await world.sync(settings())
    assert world.contacts.writes == [("c2", {"donotphone": True})]
    assert world.contacts.table.rows["c2"]["donotphone"] is True


async def test_conflict_with_equal_timestamps_keeps_the_opt_out_and_is_logged(store: StateStore) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick()
    # Never agreed on a value for c3 (no base yet) and both sides changed at the same second.
    world.contacts.edit("c3", donotbulkemail=True)
    world.profiles.edit("c3", blackListEmail=False, blackListPhone=False)
    await world.sync(settings())
    assert world.profiles.writes == [("c3", {"blackListEmail": True})]
    conflicts = store.conflicts()
    assert [
        (c.contact_id, c.pair, c.dynamics_value, c.campaign_value, c.resolved_value, c.rule) for c in conflicts
    ] == [("c3", "donotbulkemail:blackListEmail", True, False, True, "adobe")]


async def test_change_in_campaign_between_poll_and_write_is_merged_not_overwritten(store: StateStore) -> None:
    world = World(store)
    optouts = settings(rule="campaign_wins")
    await world.sync(optouts)
    world.clock.tick()
    world.contacts.edit("c1", donotphone=True)

    def meanwhile(contact: str) -> None:
        if contact == "c1" and world.profiles.profiles["c1"]["blackListPhone"] is False:
            world.profiles.edit("c1", blackListPhone=True)  # someone opts out in Campaign at that moment

    world.profiles.before_read = meanwhile
    await world.sync(optouts)
    assert ("c1", {"blackListPhone": True}) not in world.profiles.writes[:-1]
    assert world.profiles.profiles["c1"]["blackListPhone"] is True
    assert world.contacts.table.rows["c1"]["donotphone"] is True


async def test_campaign_to_dynamics_mode_never_writes_campaign(store: StateStore) -> None:
    world = World(store)
    optouts = settings(mode="campaign_to_dynamics")
    await world.sync(optouts)
    world.clock.tick()
    world.contacts.edit("c1", donotbulkemail=True)
    world.profiles.edit("c2", blackListEmail=True)
    await world.sync(optouts)
    assert world.profiles.writes == []
    assert world.contacts.writes == [("c2", {"donotbulkemail": True})]


async def test_tenant_without_per_flag_timestamps_uses_the_profile_last_modified(store: StateStore) -> None:
    world = World(store, per_flag=False)
    await world.sync(settings())
    world.clock.tick()
    world.profiles.edit("c1", firstName="Ann")  # seen in agreement: the base is stored
    await world.sync(settings())
    world.clock.tick()
    world.contacts.edit("c1", donotbulkemail=True)
    world.clock.tick(60)
    world.profiles.edit("c1", firstName="Annie")  # a newer Campaign edit of another field moves lastModified only
    await world.sync(settings())
    # Against the stored base only Dynamics changed the flag: the opt-out propagates, no conflict.
    assert world.profiles.profiles["c1"]["blackListEmail"] is True
    assert store.conflicts() == []


async def test_never_agreed_sides_without_per_flag_timestamps_are_decided_by_the_profile_last_modified(
    store: StateStore,
) -> None:
    world = World(store, per_flag=False)
    await world.sync(settings())
    world.clock.tick()
    world.contacts.edit("c2", donotbulkemail=True)
    world.clock.tick(60)
    world.profiles.edit("c2", firstName="Bo")
    await world.sync(settings())
    [conflict] = store.conflicts()
    assert (conflict.contact_id, conflict.winner, conflict.resolved_value) == ("c2", "campaign", False)
    assert conflict.campaign_changed_at == world.clock.now - timedelta(seconds=10)


async def test_opt_out_made_in_campaign_while_crmbridge_is_down_is_found_after_restart(store: StateStore) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick(3600)  # an hour with crmbridge stopped
    world.profiles.edit("c3", blackListEmail=True)
    world.clock.tick(3600)
    await world.sync(settings())
    assert world.contacts.table.rows["c3"]["donotbulkemail"] is True


async def test_profile_seen_again_with_its_flags_unchanged_costs_no_dynamics_read(store: StateStore) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick()
    world.profiles.edit("c1", firstName="Ann")  # another field: the profile comes back in the modified read
    await world.sync(settings())
    world.contacts.reads.clear()
    await world.sync(settings())  # within the overlap: c1 is read from Campaign again, flags as recorded
    assert world.contacts.reads == []
    world.clock.tick()
    world.profiles.edit("c1", blackListEmail=True)
    await world.sync(settings())
    assert world.contacts.writes == [("c1", {"donotbulkemail": True})]


async def test_a_difference_older_than_the_first_pass_stays_when_its_profile_is_read_again(store: StateStore) -> None:
    world = World(store)
    world.contacts.edit("c1", donotbulkemail=True)  # opted out in Dynamics before crmbridge started
    optouts = settings(mode="campaign_to_dynamics")
    await world.sync(optouts)
    await world.sync(optouts)  # every profile is within the overlap: read again, unchanged
    assert world.contacts.writes == []
    assert world.contacts.table.rows["c1"]["donotbulkemail"] is True


async def test_dynamics_change_in_the_same_second_as_the_first_pass_counts_as_made_after_it(
    store: StateStore,
) -> None:
    world = World(store)
    optouts = settings(mode="campaign_to_dynamics")
    world.clock.now += timedelta(milliseconds=300)
    await world.sync(optouts)  # the baseline is taken at :10.3
    world.clock.now += timedelta(milliseconds=400)
    world.contacts.edit("c1", donotbulkemail=True)  # at :10.7, dated :10 by Dataverse
    await world.sync(optouts)
    # Campaign did not change: in campaign_to_dynamics the Dynamics-side opt-out stays.
    assert world.contacts.writes == []
    assert world.contacts.table.rows["c1"]["donotbulkemail"] is True


async def test_flag_never_changed_on_a_tenant_with_flag_timestamps_is_as_old_as_its_profile(store: StateStore) -> None:
    world = World(store)
    world.contacts.edit("c1", donotbulkemail=True)  # opted out in Dynamics before crmbridge started
    created = world.profiles.profiles["c1"]["lastModified"]
    world.profiles.profiles["c1"] |= {"created": created, "blackListEmailLastModified": ""}  # as ACS sends it
    optouts = settings(mode="campaign_to_dynamics")
    await world.sync(optouts)
    world.clock.tick(300)
    world.contacts.edit("c1", lastname="Øster")
    world.profiles.edit("c1", lastName="Øster")  # the tables flow follows: lastModified moves, the flag does not
    await world.sync(optouts)
    assert world.contacts.writes == []
    assert world.contacts.table.rows["c1"]["donotbulkemail"] is True


@pytest.mark.parametrize("mode", ["campaign_to_dynamics", "bidirectional"])
async def test_campaign_opt_out_taken_back_after_the_poll_is_not_written_to_dynamics(
    store: StateStore, mode: str
) -> None:
    world = World(store)
    optouts = settings(mode=mode)
    await world.sync(optouts)
    world.clock.tick()
    world.profiles.edit("c1", blackListEmail=True)

    def meanwhile(contact: str) -> None:  # the poll saw the opt-out; before the write the person opts back in
        if contact == "c1" and world.profiles.profiles["c1"]["blackListEmail"] is True:
            world.clock.tick(1)
            world.profiles.edit("c1", blackListEmail=False)

    world.profiles.before_read = meanwhile
    await world.sync(optouts)
    world.profiles.before_read = None
    await world.sync(optouts)
    assert world.contacts.writes == [] and world.profiles.writes == []
    assert store.conflicts() == []


@pytest.mark.parametrize("mode", ["dynamics_to_campaign", "bidirectional"])
async def test_dynamics_opt_out_taken_back_after_the_poll_is_not_written_to_campaign(
    store: StateStore, mode: str
) -> None:
    world = World(store)
    optouts = settings(mode=mode)
    await world.sync(optouts)
    world.clock.tick()
    world.contacts.edit("c1", donotbulkemail=True)

    def meanwhile(contact: str) -> None:
        if contact == "c1" and world.contacts.table.rows["c1"]["donotbulkemail"] is True:
            world.clock.tick(1)
            world.contacts.edit("c1", donotbulkemail=False)

    world.contacts.before_read = meanwhile
    await world.sync(optouts)
    world.contacts.before_read = None
    await world.sync(optouts)
    assert world.contacts.writes == [] and world.profiles.writes == []
    assert store.conflicts() == []


class _Killed(Exception):
    pass


class _KilledBeforeRecording:
    """The state store of a process killed after its writes were applied, before the pass recorded them."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def commit(self, batch: Batch) -> None:
        if batch.optout_writes:
            raise _Killed
        self.store.commit(batch)


async def test_own_write_not_recorded_before_a_kill_is_not_taken_for_a_change_next_time(store: StateStore) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick()
    world.profiles.edit("c1", firstName="Ann")
    await world.sync(settings())  # seen in agreement: the base (False) is stored
    world.clock.tick()
    world.profiles.edit("c1", blackListEmail=True)
    killed = _KilledBeforeRecording(store)
    flow = OptOutsFlow(settings(), world.contacts.table, world.contacts, world.profiles, cast(StateStore, killed))
    with pytest.raises(_Killed):
        await flow.run_pass()
    assert world.contacts.table.rows["c1"]["donotbulkemail"] is True  # the write landed, unrecorded
    world.clock.tick(60)
    world.profiles.edit("c1", blackListEmail=False)  # then the person opts back in on Campaign
    await world.sync(settings())
    # Not "Dynamics opted out" (our own write): Campaign's opt-in is the newer change, and it travels.
    assert world.contacts.table.rows["c1"]["donotbulkemail"] is False
    assert world.profiles.profiles["c1"]["blackListEmail"] is False


async def test_own_campaign_write_not_recorded_before_a_kill_then_opted_in_on_campaign_lets_the_opt_in_win(
    store: StateStore,
) -> None:
    world = World(store)
    await world.sync(settings())
    world.clock.tick()
    world.profiles.edit("c1", firstName="Ann")
    await world.sync(settings())  # seen in agreement: the base (False) is stored
    world.clock.tick()
    world.contacts.edit("c1", donotbulkemail=True)
    killed = _KilledBeforeRecording(store)
    flow = OptOutsFlow(
        settings(), world.contacts.table, world.contacts, world.profiles, cast(StateStore, killed), clock=world.clock
    )
    with pytest.raises(_Killed):
        await flow.run_pass()
    assert world.profiles.profiles["c1"]["blackListEmail"] is True  # the write landed, unrecorded
    world.clock.tick(60)
    world.profiles.edit("c1", blackListEmail=False)  # then the person opts back in on Campaign, the newer change
    await world.sync(settings())
    assert world.contacts.table.rows["c1"]["donotbulkemail"] is False
    assert world.profiles.profiles["c1"]["blackListEmail"] is False


def _skew_campaign(world: World, offset: timedelta) -> None:
    """Campaign's server clock differs from crmbridge's; its profiles are stamped by it from now on."""
    world.profiles.now = lambda: world.clock() + offset
    for contact in ("c1", "c2", "c3"):
        world.profiles.edit(contact, firstName=contact)


async def test_campaign_clock_ahead_of_crmbridge_does_not_make_old_profiles_look_changed(store: StateStore) -> None:
    world = World(store, per_flag=False)  # profiles dated by lastModified only
    _skew_campaign(world, timedelta(hours=1))
    world.contacts.edit("c1", donotbulkemail=True)  # a difference that predates crmbridge
    optouts = settings(mode="campaign_to_dynamics")
    await world.sync(optouts)
    world.clock.tick()
    world.contacts.edit("c1", lastname="Øster")  # Dynamics changes, Campaign does not
    await world.sync(optouts)
    assert world.contacts.writes == []


async def test_campaign_clock_behind_crmbridge_does_not_hide_an_opt_out_from_the_poll(store: StateStore) -> None:
    world = World(store)
    _skew_campaign(world, -timedelta(minutes=10))
    await world.sync(settings())
    world.clock.tick()
    world.profiles.edit("c2", blackListEmail=True)  # stamped ten minutes behind crmbridge's clock
    await world.sync(settings())
    assert world.contacts.writes == [("c2", {"donotbulkemail": True})]
