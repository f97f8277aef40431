"""§4 Change tracking: full read with a delta link on the last page, deltas with tombstones, restrictions, expiry."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import BASE, create_contact, renew_token

TRACK = {"Prefer": "odata.track-changes,odata.maxpagesize=40"}


async def follow(api: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], str, int]:
    """All rows of a (paged) read and its delta link; asserts the delta link only comes on the last page."""
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = await api.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["value"]
        pages += 1
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            url = body["@odata.nextLink"]
            continue
        return rows, body["@odata.deltaLink"], pages


@pytest.mark.anyio
async def test_initial_read_is_paged_and_ends_with_a_delta_link(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 100, "seed": 1})
    first = await api.get(f"{BASE}contacts?$select=fullname,emailaddress1", headers=TRACK)
    assert first.headers["Preference-Applied"] == "odata.track-changes,odata.maxpagesize=40"
    rows, delta_link, pages = await follow(api, f"{BASE}contacts?$select=fullname,emailaddress1", TRACK)
    assert (len(rows), len({r["contactid"] for r in rows}), pages) == (100, 100, 3)
    assert delta_link.startswith(f"{BASE}contacts?$select=fullname,emailaddress1&$deltatoken=")
    token = delta_link.split("$deltatoken=", 1)[1]
    assert "%21" in token  # "<version>!<MM/dd/yyyy HH:mm:ss>" URL-encoded (§4.2)
    assert "%2f" in token


@pytest.mark.anyio
async def test_delta_returns_changed_rows_then_tombstones(api: httpx.AsyncClient) -> None:
    keep = await create_contact(api, lastname="Keep")
    change = await create_contact(api, lastname="Change")
    gone = await create_contact(api, lastname="Gone")
    _, delta_link, _ = await follow(api, f"{BASE}contacts?$select=lastname", {"Prefer": "odata.track-changes"})
    await api.patch(f"{BASE}contacts({change})", json={"lastname": "Changed"}, headers={"If-Match": "*"})
    await api.delete(f"{BASE}contacts({gone})")
    created = await create_contact(api, lastname="New")
    brief = await create_contact(api, lastname="Brief")
    await api.delete(f"{BASE}contacts({brief})")
    body = (await api.get(delta_link)).json()
    assert body["@odata.context"] == f"{BASE}$metadata#contacts(lastname)/$delta"
    changed = [(r["contactid"], r["lastname"]) for r in body["value"] if "lastname" in r]
    assert changed == [(change, "Changed"), (created, "New")]
    tombstones = [r for r in body["value"] if "reason" in r]
    assert tombstones == [
        {"@odata.context": f"{BASE}$metadata#contacts/$deletedEntity", "id": gone, "reason": "deleted"},
        {"@odata.context": f"{BASE}$metadata#contacts/$deletedEntity", "id": brief, "reason": "deleted"},
    ]
    assert keep not in {r.get("contactid") for r in body["value"]}
    again = (await api.get(body["@odata.deltaLink"])).json()
    assert again["value"] == []


@pytest.mark.anyio
async def test_changes_made_while_paging_arrive_in_the_next_delta(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 90, "seed": 2})
    first = (await api.get(f"{BASE}contacts?$select=lastname", headers=TRACK)).json()
    last_seen = first["value"][0]["contactid"]
    await api.patch(f"{BASE}contacts({last_seen})", json={"lastname": "Edited mid-read"}, headers={"If-Match": "*"})
    _, delta_link, _ = await follow(api, first["@odata.nextLink"], TRACK)
    delta = (await api.get(delta_link)).json()
    assert [(r["contactid"], r["lastname"]) for r in delta["value"]] == [(last_seen, "Edited mid-read")]


@pytest.mark.anyio
async def test_large_delta_is_paged(api: httpx.AsyncClient) -> None:
    await api.post("/_emulator/seed", json={"contacts": 60, "seed": 4})
    _, delta_link, _ = await follow(api, f"{BASE}contacts?$select=lastname", TRACK)
    await api.post("/_emulator/mutate", json={"table": "contact", "updates": 50, "deletes": 10, "seed": 1})
    rows, _, pages = await follow(api, delta_link, {"Prefer": "odata.maxpagesize=40"})
    assert pages == 2
    assert len([r for r in rows if "reason" in r]) == 10
    assert len([r for r in rows if "reason" not in r]) == 50


@pytest.mark.anyio
@pytest.mark.parametrize(
    "option", ["$filter=lastname eq 'x'", "$orderby=lastname", "$top=5", "$expand=parentcustomerid_account"]
)
async def test_query_options_are_refused_with_track_changes(api: httpx.AsyncClient, option: str) -> None:
    response = await api.get(f"{BASE}contacts?$select=lastname&{option}", headers={"Prefer": "odata.track-changes"})
    assert response.status_code == 400
    name = option.split("=", 1)[0]
    assert (
        response.json()["error"]["message"]
        == f"The {name} query parameter isn't supported when Change Tracking is enabled."
    )


@pytest.mark.anyio
async def test_delta_token_older_than_the_retention_is_refused(api: httpx.AsyncClient) -> None:
    await create_contact(api, lastname="Old")
    _, delta_link, _ = await follow(api, f"{BASE}contacts?$select=lastname", {"Prefer": "odata.track-changes"})
    assert (await api.post("/_emulator/clock", json={"advance_days": 6})).status_code == 200
    await renew_token(api)
    fresh = await api.get(delta_link)
    assert fresh.status_code == 200
    await api.post("/_emulator/clock", json={"advance_days": 2})
    await renew_token(api)
    expired = await api.get(delta_link)
    assert expired.status_code == 400
    assert "expired" in expired.json()["error"]["message"]


@pytest.mark.anyio
async def test_retention_is_readable_from_the_organization_row(api: httpx.AsyncClient) -> None:
    body = (await api.get(f"{BASE}organizations?$select=expirechangetrackingindays")).json()
    assert body["value"][0]["expirechangetrackingindays"] == 7
    await api.put("/_emulator/settings", json={"expire_change_tracking_in_days": 3})
    body = (await api.get(f"{BASE}organizations?$select=expirechangetrackingindays")).json()
    assert body["value"][0]["expirechangetrackingindays"] == 3
