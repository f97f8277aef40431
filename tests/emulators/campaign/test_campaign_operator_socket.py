"""Operator endpoints under /_emulator/ (ARCHITECTURE "Emulators"), the events plug-in seams, and the emulator
served over a real socket by the CLI (campaign-standard-api.md §1.3, §3.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crmbridge.emulators.campaign import create_app, ims
from crmbridge.emulators.campaign.seed import seed_profiles
from tests.emulators.campaign.conftest import BASE, CLIENT_ID, make_settings, token_for

STD = "/acme/campaign/profileAndServices/profile"


@pytest.mark.anyio
async def test_seed_makes_varied_profiles_with_and_without_external_id(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    seeded = await client.post("/_emulator/seed", json={"profiles": 300, "seed": 7})
    assert seeded.json() == {"seeded": 300, "profiles": 300}
    rows = []
    url = f"{STD}?_lineCount=100"
    while url:
        page = (await client.get(url, headers=headers)).json()
        rows += page["content"]
        url = (page.get("next") or {}).get("href")
    assert len({r["email"] for r in rows}) == 300
    assert any("+" in r["email"] for r in rows)
    assert any("'" in r["lastName"] for r in rows)
    assert any(not r["lastName"].isascii() or not r["firstName"].isascii() for r in rows)
    with_external = [r for r in rows if r["externalId"]]
    assert 0 < len(with_external) < 300
    stats = (await client.get("/_emulator/stats")).json()
    assert stats["rows"]["profile"] == 300


@pytest.mark.anyio
async def test_landing_page_opt_out_by_external_id_stamps_flag_and_last_modified(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = (await client.post(STD, json={"email": "p@mail.com", "externalId": "crm-7"}, headers=headers)).json()
    app.state.campaign.settings.clock.advance(60)
    changed = await client.post("/_emulator/optouts", json={"externalId": "crm-7", "flags": {"blackListEmail": True}})
    assert changed.json() == {"updated": [created["PKey"]]}
    newest = (await client.get(f"{STD}?_order=lastModified%20desc&_lineCount=1", headers=headers)).json()["content"]
    assert newest[0]["blackListEmail"] is True
    assert newest[0]["blackListEmailLastModified"] == newest[0]["lastModified"] > created["lastModified"]
    by_email = await client.post("/_emulator/optouts", json={"email": "p@mail.com", "flags": {"ccpaOptOut": True}})
    assert by_email.json() == {"updated": [created["PKey"]]}
    unknown = await client.post("/_emulator/optouts", json={"pkey": "@nope", "flags": {"blackList": True}})
    assert unknown.status_code == 404


@pytest.mark.anyio
async def test_landing_page_opt_out_at_a_given_moment_stamps_that_moment(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = (await client.post(STD, json={"email": "q@mail.com", "externalId": "crm-8"}, headers=headers)).json()
    body = {"externalId": "crm-8", "flags": {"blackListEmail": True}, "at": "2026-11-26T10:00:05Z"}
    assert (await client.post("/_emulator/optouts", json=body)).status_code == 200
    row = (await client.get(f"{STD}/{created['PKey']}", headers=headers)).json()
    assert row["lastModified"] == row["blackListEmailLastModified"] == "2026-11-26 10:00:05.000Z"
    bad = await client.post("/_emulator/optouts", json=body | {"at": "yesterday"})
    assert bad.status_code == 400


@pytest.mark.anyio
async def test_reset_empties_the_instance(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await client.post("/_emulator/seed", json={"profiles": 5})
    await client.post("/_emulator/reset")
    assert (await client.get(f"{STD}/_count", headers=headers)).json() == {"count": 0}


@pytest.mark.anyio
async def test_delivery_targets_skip_opted_out_profiles_and_are_reproducible(app: Starlette) -> None:
    storage = app.state.campaign.storage
    seed_profiles(storage, 200, now=app.state.campaign.now(), seed=3)
    first = storage.delivery_targets(count=50, seed=11)
    assert first == storage.delivery_targets(count=50, seed=11)
    assert len({t.pkey for t in first}) == 50
    opted_out = {int(r[0]) for r in storage.db.execute("SELECT id FROM r_profile WHERE blackListEmail = 1")}
    assert not {app.state.campaign.pkeys.decode("profile", t.pkey) for t in first} & opted_out
    chosen = storage.delivery_targets(pkeys=[first[0].pkey, "@bogus"])
    assert chosen == [first[0]]


@pytest.mark.anyio
async def test_plug_in_routes_share_the_ims_tokens_and_sit_behind_the_fault_middleware() -> None:
    async def journal(request: Request) -> Response:
        verdict = ims.verify_bearer(request)
        if isinstance(verdict, Response):
            return verdict
        return JSONResponse({"client": verdict.client_id, "scopes": list(verdict.scopes)})

    async def deliveries(request: Request) -> Response:
        return JSONResponse({"targets": len(request.app.state.campaign.storage.delivery_targets(count=1))})

    app = create_app(
        make_settings(seed_profiles=3),
        extra_routes=[Route("/events/journal", journal)],
        extra_operator_routes=[Route("/deliveries", deliveries, methods=["POST"])],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        assert (await http.get("/events/journal")).json()["error_code"] == "403010"
        token = await token_for(http)
        ok = await http.get("/events/journal", headers={"Authorization": f"Bearer {token}"})
        assert ok.json()["client"] == CLIENT_ID
        assert (await http.post("/_emulator/deliveries")).json() == {"targets": 1}
        await http.post("/_emulator/config", json={"faults": {"error_rate": 1.0}})
        assert (await http.get("/events/journal", headers={"Authorization": f"Bearer {token}"})).status_code == 503


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_serves_ims_api_journal_and_sftp_prints_their_addresses_and_keeps_data_in_the_db_file(
    tmp_path: Path,
) -> None:
    port = _free_port()
    clients = tmp_path / "clients.json"
    clients.write_text('[{"client_id": "sock", "client_secret": "pw", "tenants": ["acme"]}]')
    command = [sys.executable, "-m", "crmbridge", "emulate", "campaign", "--port", str(port),
               "--db", str(tmp_path / "acs.db"), "--seed", "30", "--clients", str(clients),
               "--pkey-salt", "s", "--exports", str(tmp_path / "exports"), "--sftp-user", "reader",
               "--journal-registration-id", "reg-1", "--journal-pump-interval", "0.1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
        while True:
            try:
                httpx.get(f"{base}/_emulator/stats", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=5) as http:
            token = http.post(
                "/ims/token/v3", data={"grant_type": "client_credentials", "client_id": "sock", "client_secret": "pw"}
            ).json()["access_token"]
            page = http.get(
                f"{STD}?_lineCount=10", headers={"Authorization": f"Bearer {token}", "X-Api-Key": "sock"}
            ).json()
            endpoints = http.get("/_emulator/endpoints").json()
            http.post("/_emulator/deliveries", json={"campaign": {"id": "C"}, "delivery": {"id": "D"},
                                                     "target": {"count": 3}})  # fmt: skip
            journal = http.get(
                endpoints["journal"], headers={"Authorization": f"Bearer {token}", **endpoints["journalHeaders"]}
            )
        assert len(page["content"]) == 10
        assert page["next"]["href"].startswith(f"{base}{STD}?")
        assert journal.status_code == 200
        assert journal.json()["events"][0]["event"]["data"]["deliveryID"] == "D"
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert f"{base}/acme/campaign " in output
    assert f"{base}/ims/token/v3" in output
    journal_url = f"{base}/events/organizations/23294/integrations/54108/reg-1"
    assert endpoints["journal"] == journal_url
    assert f"Events journal: {journal_url}\n" in output
    assert f"SFTP exports: sftp://reader@127.0.0.1:{endpoints['sftp']['port']}/" in output
    assert endpoints["journalHeaders"] == {"x-api-key": "sock", "x-ims-org-id": "0123456789ABCDEF01234567@AdobeOrg"}
    assert (tmp_path / "acs.db").stat().st_size > 0
    assert (tmp_path / "acs.events.db").stat().st_size > 0


@pytest.mark.anyio
async def test_latency_is_configurable_at_run_time_and_applies_to_api_requests_only(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    config = await client.post("/_emulator/config", json={"latencyMs": 120})
    assert config.json()["faults"]["latency_ms"] == 120
    started = time.monotonic()
    await client.get(f"{STD}/_count", headers=headers)
    assert time.monotonic() - started >= 0.12
    bad = await client.post("/_emulator/config", json={"faults": {"error_rate": 2}})
    assert bad.status_code == 400


@pytest.mark.anyio
async def test_json_suffix_asks_for_the_same_json(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await client.post(STD, json={"email": "suffix@mail.com"}, headers=headers)
    plain = (await client.get(STD, headers=headers)).json()
    suffixed = (await client.get(f"{STD}.json", headers=headers)).json()
    assert [r["PKey"] for r in suffixed["content"]] == [r["PKey"] for r in plain["content"]]
