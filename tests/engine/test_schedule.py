"""``crmbridge run``'s schedule: one loop per flow on its own interval, parents before children, reload plans.

The runner here is a stand-in whose passes block until the test lets them finish, so the order of passes is
observed exactly (no timing is asserted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.engine.schedule import Schedule, loop_specs, plan_reload

pytestmark = pytest.mark.anyio

CONFIG = """
version: 1
dynamics: {org_url: "https://contoso.crm.dynamics.com", tenant_id: t, client_id: c, client_secret: s3cr3t-value}
campaign: {organization: acme, client_id: c, client_secret: s3cr3t-value}
service: {interval: 1h}
mappings:
  - name: vehicles
    table: new_vehicle
    resource: cusVehicle
    key: {dynamics: new_vehicleid, campaign: vehicleId}
    fields: [{dynamics: new_name, campaign: name}]
    links: [{lookup: new_contactid, mapping: contacts, campaign_link: profile}]
    interval: CONTACTS_CHILD_INTERVAL
  - name: contacts
    table: contact
    resource: profileAndServicesExt
    key: {dynamics: contactid, campaign: externalId}
    fields: [{dynamics: firstname, campaign: firstName}]
    interval: CONTACTS_INTERVAL
  - name: leads
    table: lead
    resource: cusLead
    key: {dynamics: leadid, campaign: leadId}
    fields: [{dynamics: subject, campaign: subject}]
    interval: PT0.01S
"""


def config(
    contacts: str = "1h", vehicles: str = "1h", edit: Callable[[str], str] = lambda text: text
) -> CrmbridgeConfig:
    text = CONFIG.replace("CONTACTS_CHILD_INTERVAL", vehicles).replace("CONTACTS_INTERVAL", contacts)
    return parse_config(edit(text))


class StandInRunner:
    """What the schedule uses of a runner; a flow with a closed gate blocks in its pass until the gate opens."""

    def __init__(self, config: CrmbridgeConfig) -> None:
        self.config = config
        self.status: dict[str, Any] = {}
        self.stopping = asyncio.Event()
        self.gates: dict[str, asyncio.Event] = {}
        self.log: list[tuple[str, str]] = []
        self.stop_checks: dict[str, Callable[[], bool]] = {}  # the should_stop of each flow's latest pass

    def stop(self) -> None:
        self.stopping.set()

    def reconfigure(self, config: CrmbridgeConfig) -> None:
        self.config = config

    async def run_flow(self, key: str, *, should_stop: Callable[[], bool]) -> None:
        self.log.append(("start", key))
        self.stop_checks[key] = should_stop
        gate = self.gates.get(key)
        if gate is not None:
            await gate.wait()
        self.log.append(("end", key))

    def passes(self, key: str) -> int:
        return self.log.count(("end", key))


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):  # 30 s at most on a loaded machine; a condition never met fails instead of hanging
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_slow_mapping_holds_back_its_children_only_and_they_run_once_the_parent_pass_ended() -> None:
    runner = StandInRunner(config())
    runner.gates["tables:contacts"] = asyncio.Event()
    schedule = Schedule(cast(Any, runner))
    task = asyncio.create_task(schedule.run())

    await until(lambda: runner.passes("tables:leads") >= 3, "three passes of leads while contacts is busy")
    assert ("start", "tables:vehicles") not in runner.log  # the child waits for its parent's first pass
    assert runner.log.count(("start", "tables:contacts")) == 1

    runner.gates["tables:contacts"].set()
    await until(lambda: runner.passes("tables:vehicles") == 1, "the child's first pass")
    assert runner.log.index(("end", "tables:contacts")) < runner.log.index(("start", "tables:vehicles"))

    runner.stop()
    await task
    assert {loop.task.done() for loop in schedule.loops.values()} == {True}


async def test_a_parent_keeps_its_own_interval_while_a_pass_of_its_child_is_slow() -> None:
    runner = StandInRunner(config(contacts="PT0.01S"))
    runner.gates["tables:vehicles"] = asyncio.Event()
    task = asyncio.create_task(Schedule(cast(Any, runner)).run())

    await until(lambda: ("start", "tables:vehicles") in runner.log, "the child's pass")
    started = runner.passes("tables:contacts")
    await until(lambda: runner.passes("tables:contacts") >= started + 3, "parent passes during the child's pass")
    assert runner.passes("tables:vehicles") == 0  # still in its first pass

    runner.gates["tables:vehicles"].set()
    runner.stop()
    await task


async def test_a_reload_restarts_only_the_changed_loops_and_starts_and_stops_the_others() -> None:
    runner = StandInRunner(config())
    schedule = Schedule(cast(Any, runner))
    task = asyncio.create_task(schedule.run())
    await until(lambda: runner.passes("tables:vehicles") == 1, "the first passes")
    before = {key: loop.task for key, loop in schedule.loops.items()}

    def change(text: str) -> str:
        text = text.replace(
            "fields: [{dynamics: new_name, campaign: name}]", "fields: [{dynamics: new_model, campaign: model}]"
        )
        leads_at = text.index("  - name: leads")
        return text[:leads_at] + text[leads_at:].replace("leads", "prospects")

    plan = await schedule.reload(config(edit=change))

    assert (plan.start, plan.stop, plan.restart) == (("tables:prospects",), ("tables:leads",), ("tables:vehicles",))
    assert set(plan.keep) == {"tables:contacts", "retention"}
    assert schedule.loops["tables:contacts"].task is before["tables:contacts"]
    assert schedule.loops["retention"].task is before["retention"]
    assert schedule.loops["tables:vehicles"].task is not before["tables:vehicles"]
    assert before["tables:vehicles"].done() and before["tables:leads"].done()
    assert "tables:leads" not in schedule.loops
    await until(lambda: runner.passes("tables:prospects") >= 1, "the new mapping's first pass")
    runner.stop()
    await task


def test_an_interval_change_restarts_that_loop_and_nothing_else() -> None:
    old, new = loop_specs(config()), loop_specs(config(vehicles="5m"))
    plan = plan_reload(old, new)
    assert (plan.start, plan.stop, plan.restart) == ((), (), ("tables:vehicles",))
    assert new["tables:vehicles"].interval == timedelta(minutes=5)
    assert new["tables:contacts"].interval == timedelta(hours=1)  # service.interval when a mapping has none
    assert new["tables:vehicles"].parents == ("tables:contacts",)


async def test_a_stop_reaches_the_passes_in_progress_and_a_reload_only_those_of_the_loops_it_ends() -> None:
    runner = StandInRunner(config(contacts="PT0.01S"))
    runner.gates["tables:leads"] = asyncio.Event()
    runner.gates["tables:vehicles"] = asyncio.Event()
    schedule = Schedule(cast(Any, runner))
    task = asyncio.create_task(schedule.run())
    await until(lambda: {"tables:leads", "tables:vehicles"} <= set(runner.stop_checks), "both blocked passes")

    # A reload that removes leads asks its pass in progress to stop, and nothing else.
    without_leads = config(contacts="PT0.01S", edit=lambda text: text[: text.index("  - name: leads")])
    reload = asyncio.create_task(schedule.reload(without_leads))
    await until(lambda: runner.stop_checks["tables:leads"](), "the stop request to the removed loop's pass")
    assert not runner.stop_checks["tables:vehicles"]()
    assert not reload.done()  # the removed loop's batch in hand ends first
    runner.gates["tables:leads"].set()
    assert (await reload).stop == ("tables:leads",)

    runner.stop()  # SIGTERM: the pass in progress is asked to stop, the service waits for it
    assert runner.stop_checks["tables:vehicles"]()
    runner.gates["tables:vehicles"].set()
    await task
