"""How the complete emulator wires the events package to the core: targets resolved from the profile store, the
journal behind the core's IMS tokens and fault middleware, its registration and database derived from settings,
and the journal faults taken from settings (adobe-io-events-and-exports.md §A.3, §A.8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from crmbridge.emulators.campaign import EventsSettings, ImsClientConfig, create_campaign_emulator
from crmbridge.emulators.campaign.emulator import events_db_path, journal_registration
from crmbridge.emulators.campaign.targets import TargetSpec, storage_target_resolver
from tests.emulators.campaign.conftest import BASE, CLIENT_ID, OTHER_CLIENT, make_settings, token_for

DELIVERY = {"campaign": {"id": "Spring"}, "delivery": {"id": "DM1"}}


@pytest.fixture
def emulator() -> Starlette:
    return create_campaign_emulator(make_settings(seed_profiles=40))


@pytest.fixture
async def http(emulator: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url=BASE) as client:
        yield client


def opted_out_pkey(emulator: Starlette) -> str:
    context = emulator.state.campaign
    row = context.storage.db.execute("SELECT id FROM r_profile WHERE blackListEmail = 1 LIMIT 1").fetchone()
    assert row is not None, "the seed makes a few opted-out profiles"
    return str(context.pkeys.encode("profile", int(row[0])))


@pytest.mark.anyio
async def test_a_delivery_to_an_unknown_or_opted_out_pkey_is_refused_naming_it(
    emulator: Starlette, http: httpx.AsyncClient
) -> None:
    good = emulator.state.campaign.storage.delivery_targets(count=1)[0].pkey
    blocked = opted_out_pkey(emulator)
    response = await http.post("/_emulator/deliveries", json={**DELIVERY, "target": {"pkeys": [good, blocked, "@x"]}})
    assert response.status_code == 400
    message = response.json()["error"]
    assert blocked in message and "@x" in message and good not in message
    accepted = await http.post("/_emulator/deliveries", json={**DELIVERY, "target": {"pkeys": [good]}})
    assert accepted.json()["messages"] == 1


def test_a_count_target_picks_targetable_profiles_chosen_by_its_seed(emulator: Starlette) -> None:
    resolve = storage_target_resolver(emulator.state.campaign.storage)
    first = resolve(TargetSpec(count=10, seed=4))
    assert first == resolve(TargetSpec(count=10, seed=4))
    assert {t.pkey for t in first} != {t.pkey for t in resolve(TargetSpec(count=10, seed=5))}
    assert opted_out_pkey(emulator) not in {t.pkey for t in resolve(TargetSpec(count=40, seed=4))}
    assert resolve(TargetSpec(pkeys=(first[1].pkey, first[0].pkey))) == [first[1], first[0]]


@pytest.mark.anyio
async def test_the_journal_checks_the_core_ims_tokens_and_sits_behind_the_fault_middleware(
    emulator: Starlette, http: httpx.AsyncClient
) -> None:
    registration = journal_registration(emulator.state.campaign.settings)
    own = {"x-api-key": CLIENT_ID, "x-ims-org-id": registration.ims_org_id}
    assert (await http.get(registration.path, headers=own)).json()["error_code"] == "403010"
    token = await token_for(http)  # campaign scopes only: no adobeio_api
    assert (await http.get(registration.path, headers={**own, "Authorization": f"Bearer {token}"})).status_code == 403
    other = await token_for(http, OTHER_CLIENT, "other-secret")
    refused = await http.get(registration.path, headers={"Authorization": f"Bearer {other}", "x-api-key": OTHER_CLIENT})
    assert refused.json()["error_code"] == "403003"
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "s3cret-value"}
    journal_token = (await http.post("/ims/token/v3", data=form)).json()["access_token"]
    reader = {**own, "Authorization": f"Bearer {journal_token}"}
    assert (await http.get(registration.path, headers=reader)).status_code == 204
    await http.post("/_emulator/config", json={"faults": {"error_rate": 1.0}})
    assert (await http.get(registration.path, headers=reader)).status_code == 503


@pytest.mark.anyio
async def test_events_follow_the_instance_clock_and_release_publishes_them_without_the_pump(
    http: httpx.AsyncClient,
) -> None:
    report = (await http.post("/_emulator/deliveries", json={**DELIVERY, "target": {"count": 20}})).json()
    published_at_once = (await http.get("/_emulator/journal")).json()["events"]
    await http.post("/_emulator/clock", json={"advanceSeconds": 4 * 86400})
    released = (await http.post("/_emulator/journal/release")).json()["released"]
    stats = (await http.get("/_emulator/journal")).json()
    assert 0 < published_at_once < sum(report["counts"].values())
    assert published_at_once + released == stats["events"] == sum(report["counts"].values())
    assert stats["pendingEvents"] == 0


@pytest.mark.anyio
async def test_journal_duplicate_setting_publishes_some_events_twice() -> None:
    app = create_campaign_emulator(make_settings(seed_profiles=40, events=EventsSettings(duplicate_rate=0.5)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        report = (await http.post("/_emulator/deliveries", json={**DELIVERY, "target": {"count": 30}})).json()
        await http.post("/_emulator/clock", json={"advanceSeconds": 4 * 86400})
        await http.post("/_emulator/journal/release")
        stats = (await http.get("/_emulator/journal")).json()
    assert stats["faults"]["duplicate_rate"] == 0.5
    assert stats["events"] > sum(report["counts"].values())


def test_the_events_database_sits_next_to_the_core_database_or_in_memory_with_it(tmp_path: Path) -> None:
    assert events_db_path(make_settings(db_path=str(tmp_path / "acs.db"))) == str(tmp_path / "acs.events.db")
    assert events_db_path(make_settings(db_path=str(tmp_path / "acs"))) == str(tmp_path / "acs.events.db")
    assert events_db_path(make_settings()) == ":memory:"
    chosen = make_settings(db_path=str(tmp_path / "acs.db"), events=EventsSettings(db_path=str(tmp_path / "e.db")))
    assert events_db_path(chosen) == str(tmp_path / "e.db")


def test_the_journal_registration_defaults_to_the_first_ims_client_and_its_org() -> None:
    reader = ImsClientConfig("reader", "pw", ims_org="READER@AdobeOrg")
    settings = make_settings(clients=(reader, ImsClientConfig("other", "pw", ims_org="OTHER@AdobeOrg")))
    default = journal_registration(settings)
    assert (default.client_id, default.ims_org_id) == ("reader", "READER@AdobeOrg")
    assert default.path == "/events/organizations/23294/integrations/54108/f89067f2-0d50-4bb2-bf78-209d0eacb6eb"
    settings.events = EventsSettings(client_id="other", consumer_org_id="1", credential_id="2", registration_id="3")
    chosen = journal_registration(settings)
    assert (chosen.client_id, chosen.ims_org_id, chosen.path) == (
        "other",
        "OTHER@AdobeOrg",
        "/events/organizations/1/integrations/2/3",
    )
