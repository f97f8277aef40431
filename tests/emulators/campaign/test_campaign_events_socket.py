"""The complete emulator served over real sockets on 127.0.0.1: IMS tokens, seeded profiles, simulated deliveries,
the Adobe I/O Events journal read as a consumer reads it (adobe-io-events-and-exports.md §A.3–§A.7) and the
export files fetched over SFTP (§C.4–§C.6).

Expectations come from the delivery reports and the profiles read back through the REST API, not from the
emulator's code."""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from crmbridge.emulators.campaign import EventsSettings, create_campaign_emulator
from tests.emulators.campaign.conftest import CLIENT_ID, CLIENT_SECRET, make_settings

pytestmark = pytest.mark.anyio

PROFILES = "/acme/campaign/profileAndServices/profile"
JOURNAL_SCOPES = "openid,AdobeID,read_organizations,adobeio_api"  # what crmbridge's journal reader asks for
FAST_RATES = {
    "bounce_rate": 0.1,
    "open_rate": 0.5,
    "click_rate": 0.5,
    "open_delay_mean_s": 600,
    "async_bounce_delay_mean_s": 600,
    "max_reaction_delay_s": 3600,
}
SFTP_PASSWORD = "sftp pass"


async def eventually(condition: Callable[[], object], timeout_s: float = 10) -> None:
    """Polls what offers nothing to wait on (uvicorn's ``started``)."""
    with anyio.fail_after(timeout_s):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Serve the app with uvicorn (lifespan on) on a free port; yield a client addressed to it."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        await eventually(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                yield client
        finally:
            server.should_exit = True


async def token(client: httpx.AsyncClient, scope: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    response = await client.post("/ims/token/v3", data={**form, "scope": scope})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def all_profiles(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {await token(client, 'openid,AdobeID,campaign_sdk')}", "X-Api-Key": CLIENT_ID}
    rows: list[dict[str, Any]] = []
    url: str | None = f"{PROFILES}?_lineCount=100"
    while url:
        page = (await client.get(url, headers=headers)).json()
        rows += page["content"]
        url = (page.get("next") or {}).get("href")
    return {row["PKey"]: row for row in rows}


async def read_whole_journal(client: httpx.AsyncClient, endpoints: dict[str, Any]) -> list[dict[str, Any]]:
    """Oldest to end, following Link rel="next" until the 204, with the headers of §A.3."""
    headers = {"Authorization": f"Bearer {await token(client, JOURNAL_SCOPES)}", **endpoints["journalHeaders"]}
    url, events = f"{endpoints['journal']}?limit=40", []
    while True:
        response = await client.get(url, headers=headers)
        if response.status_code == 204:
            return events
        assert response.status_code == 200, response.text
        events += [entry["event"] for entry in response.json()["events"]]
        url = str(response.url.join(response.links["next"]["url"]))


async def delivery(client: httpx.AsyncClient, delivery_id: str, target: dict[str, Any], seed: int) -> dict[str, Any]:
    body = {"campaign": {"id": "Spring"}, "delivery": {"id": delivery_id}, "target": target, "rates": FAST_RATES}
    response = await client.post("/_emulator/deliveries", json={**body, "seed": seed})
    assert response.status_code == 201, response.text
    report: dict[str, Any] = response.json()
    return report


async def sftp_files(sftp: dict[str, Any]) -> dict[str, bytes]:
    known_hosts = asyncssh.import_known_hosts(f"[{sftp['host']}]:{sftp['port']} {sftp['hostKey']}")
    async with (
        asyncssh.connect(
            sftp["host"],
            sftp["port"],
            username=sftp["username"],
            password=SFTP_PASSWORD,
            known_hosts=known_hosts,
            client_keys=None,
            agent_path=None,
        ) as connection,
        connection.start_sftp_client() as client,
    ):
        files = {}
        for name in await client.listdir("."):
            if name not in (".", ".."):
                async with client.open(name, "rb") as remote:
                    files[name] = await remote.read()
        return files


def export_rows(files: dict[str, bytes], prefix: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name, data in sorted(files.items()):
        if name.startswith(prefix):
            rows += csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8")), delimiter="\t")
    return rows


async def test_simulated_deliveries_reach_the_journal_and_the_sftp_exports_of_a_served_emulator(
    tmp_path: Path,
) -> None:
    events_settings = EventsSettings(
        exports_folder=tmp_path / "exports", sftp_password=SFTP_PASSWORD, pump_interval_s=0.05
    )
    settings = make_settings(db_path=str(tmp_path / "acs.db"), events=events_settings)
    announced: list[str] = []
    async with served(create_campaign_emulator(settings, announce=announced.append)) as client:
        endpoints = (await client.get("/_emulator/endpoints")).json()
        assert (await client.post("/_emulator/seed", json={"profiles": 60, "seed": 5})).status_code == 200
        profiles = await all_profiles(client)
        targetable = [k for k, p in profiles.items() if p["email"] and not p["blackList"] and not p["blackListEmail"]]
        chosen = targetable[:25]
        reports = [
            await delivery(client, "DM1", {"pkeys": chosen}, seed=1),
            await delivery(client, "DM2", {"count": 15}, seed=2),
        ]
        await client.post("/_emulator/clock", json={"advanceSeconds": 2 * 86400})
        await client.post("/_emulator/journal/release")
        assert (await client.get("/_emulator/journal")).json()["pendingEvents"] == 0
        await client.post("/_emulator/exports/run")
        journal = await read_whole_journal(client, endpoints)
        files = await sftp_files(endpoints["sftp"])

    assert f"SFTP exports: {endpoints['sftp']['url']} (folder {tmp_path / 'exports'})" in announced
    assert endpoints["journal"].startswith(str(client.base_url).rstrip("/") + "/events/organizations/")
    assert [r["messages"] for r in reports] == [25, 15]
    expected = {(r["deliveryId"], kind): n for r in reports for kind, n in r["counts"].items() if n}
    assert Counter((e["data"]["deliveryID"], e["data"]["eventType"]) for e in journal) == expected
    assert len({e["id"] for e in journal}) == len(journal)
    for event in journal:
        recipient = event["data"]["profile"]
        assert recipient["PKey"] in profiles
        assert recipient["externalId"] == (profiles[recipient["PKey"]]["externalId"] or None)
        assert recipient["email"] == profiles[recipient["PKey"]]["email"]
    assert {e["data"]["profile"]["PKey"] for e in journal if e["data"]["deliveryID"] == "DM1"} == set(chosen)
    assert len({e["data"]["profile"]["PKey"] for e in journal if e["data"]["deliveryID"] == "DM2"}) == 15

    delivery_logs, tracking_logs = export_rows(files, "delivery_logs_"), export_rows(files, "tracking_logs_")
    assert len(delivery_logs) == sum(r["counts"]["send"] + r["counts"]["bounce"] for r in reports)
    assert len(tracking_logs) == sum(r["counts"]["open"] + r["counts"]["click"] for r in reports)
    assert {row["profile_key"] for row in delivery_logs} <= set(profiles)
    assert sorted(files) == sorted(path.name for path in (tmp_path / "exports").iterdir())
