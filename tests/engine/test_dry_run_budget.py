"""``sync --dry-run``'s API budget equals what the real pass then sends, counted on the emulators' side.

Both emulators run in-process behind a counting ASGI wrapper: it sees every request the clients send, whatever
crmbridge believes it sent, and counts ACS engine calls from the answered writes (insert 1, update 2, delete 1;
campaign-standard-api.md §8). The estimator is never used to compute an expectation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.engine.budget import estimate_dry_run
from crmbridge.engine.commands import sync_report
from crmbridge.engine.plan import PlannedLinks
from crmbridge.engine.runner import Runner, Services
from tests.engine.ops_env import Emulators, config_text, make_emulators

pytestmark = pytest.mark.anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ENGINE_CALLS = {("POST", 201): 1, ("PATCH", 200): 2, ("DELETE", 200): 1, ("DELETE", 204): 1}


@dataclass
class Counted:
    """An ASGI app that counts the API requests (paths starting with ``api``) and ACS engine calls it answers."""

    app: Any
    api: str
    requests: int = 0
    engine_calls: int = 0
    seen: list[str] = field(default_factory=list)

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.api):
            await self.app(scope, receive, send)
            return
        self.requests += 1

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.engine_calls += ENGINE_CALLS.get((scope["method"], message["status"]), 0)
                self.seen.append(f"{scope['method']} {scope['path']} {message['status']}")
            await send(message)

        await self.app(scope, receive, counting_send)

    def snapshot(self) -> tuple[int, int]:
        return self.requests, self.engine_calls


def config(state: Path, *, identification_keys: bool, entity_sets: bool = True) -> CrmbridgeConfig:
    text = config_text(state).replace("\ncampaign:\n", "\n  page_size: 5\ncampaign:\n")  # several pages per read
    if not entity_sets:  # looked up in the table metadata instead
        text = text.replace("    entity_set: contacts\n", "").replace("    entity_set: new_vehicles\n", "")
    if identification_keys:
        text = text.replace("\ncampaign:\n", "\ncampaign:\n  keys_are_identification_keys: true\n")
    return parse_config(text)


async def dry_run_then_real_pass(
    services: Services, dynamics: Counted, campaign: Counted
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Per mapping: the dry run's estimate, and what the real pass of that mapping sent (parents first)."""
    planned = PlannedLinks()
    results = await Runner(services).tables_pass(dry_run=True, planned=planned)
    report = sync_report(results, None, None, estimate_dry_run(services.config, results, planned))
    estimated = {entry["mapping"]: entry["budget"] for entry in report["tables"]}
    assert report["budget_total"] == {
        name: sum(budget[name] for budget in estimated.values()) for name in report["budget_total"]
    }
    sent = {}
    for mapping in ("contacts", "vehicles"):
        dv_before, (acs_before, calls_before) = dynamics.requests, campaign.snapshot()
        await Runner(services).tables_pass(only=mapping)
        sent[mapping] = {
            "dataverse_requests": dynamics.requests - dv_before,
            "campaign_requests": campaign.requests - acs_before,
            "engine_calls": campaign.engine_calls - calls_before,
        }
    return estimated, sent


async def make_changes(services: Services) -> None:
    """In Dynamics: one contact edited, one edited in an unmapped column, one deleted, one created; a vehicle
    renamed (its write links to its parent)."""
    dv = services.dataverse
    vehicles = [
        row
        async for page in dv.iter_pages("new_vehicles", select=["new_vehicleid", "_new_contactid_value"])
        for row in page.rows
    ]
    owners = {str(v["_new_contactid_value"]) for v in vehicles}
    contacts = [
        str(row["contactid"]) async for page in dv.iter_pages("contacts", select=["contactid"]) for row in page.rows
    ]
    lonely = [c for c in contacts if c not in owners]
    await dv.update("contacts", contacts[0], {"firstname": "Edited"})
    await dv.update("contacts", contacts[1], {"telephone1": "+47 555 0100"})  # not mapped: skipped by its hash
    await dv.delete("contacts", lonely[0])
    await dv.create("contacts", {"firstname": "New", "lastname": "Person", "emailaddress1": "new@example.com"})
    await dv.update("new_vehicles", str(vehicles[0]["new_vehicleid"]), {"new_name": "Renamed"})


@pytest.mark.parametrize(("identification_keys", "entity_sets"), [(False, True), (True, True), (False, False)])
async def test_the_dry_run_budget_is_what_the_real_pass_then_sends(
    tmp_path: Path, identification_keys: bool, entity_sets: bool
) -> None:
    plain = make_emulators()
    await plain.seed(12)
    dynamics, campaign = Counted(plain.dynamics, "/api/data/"), Counted(plain.campaign, "/acme/campaign/")
    emulators = Emulators(cast(Any, dynamics), cast(Any, campaign))
    settings = config(tmp_path / "state.db", identification_keys=identification_keys, entity_sets=entity_sets)
    assert settings.mapping("contacts").entity_set == ("contacts" if entity_sets else None)
    async with emulators.services(settings) as services:
        initial_estimate, initial_sent = await dry_run_then_real_pass(services, dynamics, campaign)
        assert initial_estimate == initial_sent, campaign.seen
        # 12 contacts, 5 a page; and the table's metadata when the entity set is not configured
        assert initial_sent["contacts"]["dataverse_requests"] == (3 if entity_sets else 4)

        await make_changes(services)
        estimate, sent = await dry_run_then_real_pass(services, dynamics, campaign)
        assert estimate == sent, campaign.seen
        assert sent["contacts"]["engine_calls"] == 2 + 1 + 1  # the edit, the delete, the new contact


async def test_the_dry_run_prints_the_budget_per_mapping_and_in_total_in_json(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(4)
    async with emulators.services(config(tmp_path / "state.db", identification_keys=False)) as services:
        planned = PlannedLinks()
        results = await Runner(services).tables_pass(dry_run=True, planned=planned)
        report = sync_report(results, None, None, estimate_dry_run(services.config, results, planned))
    printed = json.loads(json.dumps(report))
    contacts = printed["tables"][0]
    # 4 contacts on one page: 1 Dataverse GET; per create a lookup and a POST; one engine call per insert.
    assert (contacts["mapping"], contacts["created"]) == ("contacts", 4)
    assert contacts["budget"] == {"dataverse_requests": 1, "campaign_requests": 8, "engine_calls": 4}
    assert printed["budget_total"]["engine_calls"] == 4 + printed["tables"][1]["created"]
