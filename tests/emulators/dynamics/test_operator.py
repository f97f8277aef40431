"""Operator routes under /_emulator/ (seed, mutate, reset, stats, clock) and fault injection on the API only."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from crmbridge.emulators.faults import FaultConfig

from .conftest import BASE, ORIGIN, make_app, renew_token


@pytest.mark.anyio
async def test_seed_creates_realistic_linked_rows(api: httpx.AsyncClient) -> None:
    report = (await api.post("/_emulator/seed", json={"contacts": 400, "seed": 7})).json()
    assert report["contacts"] == 400
    assert 0 < report["opted_out"] < 400
    assert report["vehicles"] > 0
    rows = (await api.get(f"{BASE}contacts?$select=firstname,lastname,emailaddress1,donotbulkemail")).json()["value"]
    names = " ".join(f"{r['firstname']} {r['lastname']}" for r in rows)
    assert "'" in names
    assert any(ord(ch) > 127 for ch in names)
    emails = [r["emailaddress1"] for r in rows]
    assert all(re.fullmatch(r"[a-z0-9.+]+@[a-z.]+", e) for e in emails)
    assert any("+" in e for e in emails)
    assert len(set(emails)) == 400
    assert any(r["donotbulkemail"] for r in rows)
    vehicles = (await api.get(f"{BASE}new_vehicles?$select=new_vin&$expand=new_contactid($select=lastname)")).json()
    assert all(v["new_contactid"]["lastname"] for v in vehicles["value"])


@pytest.mark.anyio
async def test_mutate_updates_and_deletes_like_a_crm_user(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 50})
    result = (await api.post("/_emulator/mutate", json={"table": "contact", "updates": 5, "deletes": 3})).json()
    assert (len(result["updated"]), len(result["deleted"])) == (5, 3)
    stats = (await api.get("/_emulator/stats")).json()
    assert stats["counts"]["contact"] == 47
    assert stats["counts"]["tombstones"] == 3
    given = result["updated"][:1]
    changed = await api.post(
        "/_emulator/mutate", json={"table": "contact", "ids": given, "changes": {"jobtitle": "CEO"}}
    )
    assert changed.json()["updated"] == given
    assert (await api.get(f"{BASE}contacts({given[0]})/jobtitle")).json()["value"] == "CEO"


@pytest.mark.anyio
async def test_reset_drops_rows_and_tables_created_through_metadata(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 10})
    table = {
        "SchemaName": "new_Click",
        "IsActivity": True,
        "Attributes": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "SchemaName": "Subject",
                "IsPrimaryName": True,
            }
        ],
    }
    assert (await api.post(f"{BASE}EntityDefinitions", json=table)).status_code == 204
    await api.post("/_emulator/reset")
    assert (await api.get(f"{BASE}contacts?$select=lastname")).json()["value"] == []
    assert (await api.get(f"{BASE}new_clicks")).status_code == 404


@pytest.mark.anyio
async def test_faults_hit_the_api_but_never_the_operator_routes() -> None:
    app = make_app(faults=FaultConfig(error_rate=1.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as client:
        await renew_token(client)
        assert (await client.get(f"{BASE}WhoAmI")).status_code == 503
        assert (await client.get("/_emulator/stats")).json()["faults"]["injected"] == {"error": 1}


@pytest.mark.anyio
async def test_rows_and_created_tables_survive_a_restart_on_the_same_file(tmp_path: Path) -> None:
    db = str(tmp_path / "org.db")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(db_path=db)), base_url=ORIGIN) as client:
        await renew_token(client)
        table = {
            "SchemaName": "new_Bounce",
            "IsActivity": True,
            "Attributes": [{"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "Subject"}],
        }
        assert (await client.post(f"{BASE}EntityDefinitions", json=table)).status_code == 204
        assert (await client.post(f"{BASE}new_bounces", json={"subject": "Hard bounce"})).status_code == 204
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(db_path=db)), base_url=ORIGIN) as client:
        await renew_token(client)
        rows = (await client.get(f"{BASE}new_bounces?$select=subject,versionnumber")).json()["value"]
        assert [r["subject"] for r in rows] == ["Hard bounce"]
        created = await client.post(f"{BASE}contacts", json={"lastname": "After restart"})
        versions = (await client.get(f"{BASE}contacts?$select=versionnumber")).json()["value"]
        assert created.status_code == 204
        # The version counter continues after a restart, so delta tokens issued before it stay meaningful.
        assert versions[0]["versionnumber"] > rows[0]["versionnumber"]
