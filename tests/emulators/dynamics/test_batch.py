"""§6 $batch: the documented request, change-set atomicity, Content-ID references, errors, continue-on-error.

Responses are checked on their raw bytes (status lines, boundaries, headers) so this test does not lean on the
codec under test for what it asserts.
"""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import BASE, create_contact

BATCH_TYPE = 'multipart/mixed; boundary="batch_AAA123"'


def part(method: str, url: str, body: str = "", content_id: str | None = None, headers: tuple[str, ...] = ()) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    lines += [f"Content-ID: {content_id}"] if content_id else []
    lines += ["", f"{method} {url} HTTP/1.1", *headers]
    if body:
        lines += ["Content-Type: application/json; type=entry", "", body]
    else:
        lines += ["", ""]
    return "\r\n".join(lines)


def batch(*parts: str) -> bytes:
    return ("".join(f"--batch_AAA123\r\n{p}\r\n" for p in parts) + "--batch_AAA123--\r\n").encode()


def change_set(*parts: str) -> str:
    inner = "".join(f"--changeset_BBB456\r\n{p}\r\n" for p in parts) + "--changeset_BBB456--"
    return f'Content-Type: multipart/mixed; boundary="changeset_BBB456"\r\n\r\n{inner}'


async def post_batch(api: httpx.AsyncClient, body: bytes, prefer: str | None = None) -> httpx.Response:
    headers = {"Content-Type": BATCH_TYPE}
    if prefer:
        headers["Prefer"] = prefer
    return await api.post(f"{BASE}$batch", content=body, headers=headers)


def statuses(response: httpx.Response) -> list[int]:
    return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3})", response.content)]


@pytest.mark.anyio
async def test_documented_batch_creates_a_contact_and_a_task_regarding_it(api: httpx.AsyncClient) -> None:
    existing = await create_contact(api, firstname="Read", lastname="Me")
    body = batch(
        part("GET", f"/api/data/v9.2/contacts({existing})?$select=fullname"),
        change_set(
            part("POST", "/api/data/v9.2/contacts", '{"firstname":"A","lastname":"B"}', "1"),
            part(
                "POST",
                "/api/data/v9.2/tasks",
                '{"subject":"Follow up","regardingobjectid_contact_task@odata.bind":"$1"}',
                "2",
            ),
        ),
    )
    response = await post_batch(api, body)
    assert response.status_code == 200
    assert re.fullmatch(r"multipart/mixed; boundary=batchresponse_[0-9a-f-]{36}", response.headers["Content-Type"])
    assert statuses(response) == [200, 204, 204]
    text = response.content.decode()
    assert "\r\n" in text
    assert "\n" not in text.replace("\r\n", "")
    assert "Content-Type: multipart/mixed; boundary=changesetresponse_" in text
    assert "Content-ID: 1\r\n" in text
    assert "Content-ID: 2\r\n" in text
    assert '"fullname":"Read Me"' in text
    assert "Content-Type: application/json; odata.metadata=minimal; odata.streaming=true" in text
    assert re.search(r"OData-EntityId: \S+/api/data/v9\.2/tasks\([0-9a-f-]{36}\)", text)
    assert re.search(r"Location: \S+/api/data/v9\.2/contacts\([0-9a-f-]{36}\)", text)
    contact = (await api.get(f"{BASE}contacts?$select=contactid&$filter=lastname eq 'B'")).json()["value"][0]
    tasks = (
        await api.get(f"{BASE}tasks?$select=subject&$filter=_regardingobjectid_value eq {contact['contactid']}")
    ).json()
    assert [t["subject"] for t in tasks["value"]] == ["Follow up"]


@pytest.mark.anyio
async def test_failing_change_set_is_rolled_back_and_stops_the_batch(api: httpx.AsyncClient) -> None:
    body = batch(
        change_set(
            part("POST", "/api/data/v9.2/contacts", '{"lastname":"Rolled back"}', "1"),
            part("POST", "/api/data/v9.2/tasks", '{"subject":"' + "x" * 250 + '"}', "2"),
        ),
        part("POST", "/api/data/v9.2/contacts", '{"lastname":"Never"}'),
    )
    response = await post_batch(api, body)
    assert response.status_code == 400
    assert statuses(response) == [400]
    assert b"0x80044331" in response.content
    assert (await api.get(f"{BASE}contacts?$select=lastname")).json()["value"] == []


@pytest.mark.anyio
async def test_continue_on_error_runs_every_part(api: httpx.AsyncClient) -> None:
    body = batch(
        part("POST", "/api/data/v9.2/contacts", '{"lastname":"First"}'),
        part(
            "PATCH",
            "/api/data/v9.2/contacts(00000000-0000-0000-0000-0000000000aa)",
            '{"lastname":"X"}',
            headers=("If-Match: *",),
        ),
        part("POST", "/api/data/v9.2/contacts", '{"lastname":"Third"}'),
    )
    response = await post_batch(api, body, prefer="odata.continue-on-error")
    assert response.status_code == 200
    assert statuses(response) == [204, 404, 204]
    names = {r["lastname"] for r in (await api.get(f"{BASE}contacts?$select=lastname")).json()["value"]}
    assert names == {"First", "Third"}


@pytest.mark.anyio
async def test_undeclared_content_id_reference_is_an_error(api: httpx.AsyncClient) -> None:
    body = batch(change_set(part("PATCH", "$7", '{"lastname":"X"}', "1")))
    response = await post_batch(api, body)
    assert response.status_code == 400
    assert b"Content-ID Reference: '$7' does not exist in the batch context." in response.content


@pytest.mark.anyio
async def test_get_inside_a_change_set_is_refused(api: httpx.AsyncClient) -> None:
    response = await post_batch(api, batch(change_set(part("GET", "/api/data/v9.2/contacts", content_id="1"))))
    assert response.status_code == 400


@pytest.mark.anyio
async def test_lf_only_body_is_refused_as_not_readable(api: httpx.AsyncClient) -> None:
    body = batch(part("GET", "/api/data/v9.2/contacts?$select=lastname")).replace(b"\r\n", b"\n")
    response = await post_batch(api, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"
    assert "Stream was not readable" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_more_than_1000_operations_are_refused(api: httpx.AsyncClient) -> None:
    body = batch(*[part("GET", "/api/data/v9.2/WhoAmI") for _ in range(1001)])
    response = await post_batch(api, body)
    assert response.status_code == 400
    assert "1000" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_content_id_references_work_in_urls_and_per_part_headers(api: httpx.AsyncClient) -> None:
    body = batch(
        change_set(
            part("POST", "/api/data/v9.2/contacts", '{"firstname":"Grace","lastname":"Hopper"}', "1"),
            part("PATCH", "$1", '{"jobtitle":"Rear Admiral"}', "2", headers=("If-Match: *",)),
            part("PUT", "$1/lastname", '{"value":"Hopper (USN)"}', "3"),
        ),
        part(
            "POST",
            "/api/data/v9.2/accounts?$select=name",
            '{"name":"Navy"}',
            headers=("Prefer: return=representation",),
        ),
    )
    response = await post_batch(api, body)
    assert response.status_code == 200
    assert statuses(response) == [204, 204, 204, 201]
    assert b'"name":"Navy"' in response.content
    rows = (await api.get(f"{BASE}contacts?$select=fullname,jobtitle")).json()["value"]
    assert [(r["fullname"], r["jobtitle"]) for r in rows] == [("Grace Hopper (USN)", "Rear Admiral")]
