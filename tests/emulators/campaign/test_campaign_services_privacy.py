"""Services and subscriptions (campaign-standard-api.md §2.7, §4.4) and privacyTool requests (§7.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

STD = "/acme/campaign/profileAndServices"
PRIVACY = "/acme/campaign/privacy/privacyTool"


async def post(client: httpx.AsyncClient, headers: dict[str, str], url: str, body: dict[str, Any]) -> Any:
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.anyio
async def test_service_create_subscribe_and_unsubscribe_with_204(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    service = await post(client, headers, f"{STD}/service",
                         {"label": "My newsletter", "messageType": "email", "name": "email_newsletter",
                          "start": "2019-10-06"})  # fmt: skip
    assert service["builtIn"] is False
    assert service["mode"] == "newsletter"
    profile = await post(client, headers, f"{STD}/profile", {"email": "reader@mail.com"})
    sub = await post(client, headers, profile["subscriptions"]["href"], {"service": {"PKey": service["PKey"]}})
    assert sub["serviceName"] == "email_newsletter"
    assert sub["subscriber"]["PKey"] == profile["PKey"]
    assert sub["href"].endswith(f"/service/{service['PKey']}/subscriptions/{sub['PKey']}")
    listed = (await client.get(service["subscriptions"]["href"], headers=headers)).json()["content"]
    assert [row["email"] for row in listed] == ["reader@mail.com"]
    assert (await client.delete(sub["href"], headers=headers)).status_code == 204
    assert (await client.get(profile["subscriptions"]["href"], headers=headers)).json()["content"] == []


@pytest.mark.anyio
async def test_service_name_is_a_unique_raw_key(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    service = await post(client, headers, f"{STD}/service", {"label": "SMS", "messageType": "sms", "name": "SVC4"})
    by_name = await client.get(f"{STD}/service/SVC4", headers=headers)
    assert by_name.json()["PKey"] == service["PKey"]
    duplicate = await client.post(f"{STD}/service", json={"label": "Again", "name": "SVC4"}, headers=headers)
    assert duplicate.status_code == 500
    assert "A 'Service' with the same key 'SVC4' already exists. PGS-220000" in duplicate.json()["message"]
    assert '"nmsservice_name"' in duplicate.json()["message"]
    missing = await client.get(f"{STD}/service/adobe_nl", headers=headers)
    assert missing.status_code == 404
    assert "Unable to find document with path 'Service' from key 'adobe_nl:0'" in missing.json()["message"]
    by_channel = await client.get(f"{STD}/service/byChannel?channel=sms", headers=headers)
    assert [row["name"] for row in by_channel.json()["content"]] == ["SVC4"]


@pytest.mark.anyio
async def test_privacy_delete_request_runs_new_processing_complete_and_removes_the_profile(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    profile = await post(client, headers, f"{STD}/profile", {"email": "forget.me@mail.com"})
    request = await post(client, headers, PRIVACY,
                         {"name": "PT11832", "namespaceName": "defaultNamespace1", "label": "Delete customers",
                          "reconciliationValue": "forget.me@mail.com", "regulation": "gdpr",
                          "type": "delete"})  # fmt: skip
    assert request["status"] == "new"
    assert request["title"] == "Delete customers (PT11832)"
    assert request["retryCount"] == 0
    step = app.state.campaign.settings.privacy_step_s
    await client.post("/_emulator/clock", json={"advanceSeconds": step})
    assert (await client.get(request["href"], headers=headers)).json()["status"] == "processing"
    assert (await client.get(f"{STD}/profile/{profile['PKey']}", headers=headers)).status_code == 200
    await client.post("/_emulator/clock", json={"advanceSeconds": step})
    assert (await client.get(request["href"], headers=headers)).json()["status"] == "complete"
    assert (await client.get(f"{STD}/profile/{profile['PKey']}", headers=headers)).status_code == 404


@pytest.mark.anyio
async def test_privacy_access_without_data_ends_in_error_data_not_found(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    request = await post(client, headers, PRIVACY,
                         {"name": "PT2", "namespaceName": "defaultNamespace1", "reconciliationValue": "nobody@x.com",
                          "regulation": "ccpa", "type": "access", "label": "Access"})  # fmt: skip
    await client.post("/_emulator/clock", json={"advanceSeconds": 3600})
    listed = (await client.get(PRIVACY, headers=headers)).json()["content"]
    assert [(r["name"], r["status"]) for r in listed] == [("PT2", "errorDataNotFound")]
    assert request["regulation"] == "ccpa"


@pytest.mark.anyio
async def test_privacy_access_file_holds_the_recipient_rows(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    await post(client, headers, f"{STD}/profile", {"email": "me@mail.com", "lastName": "D'Arcy"})
    request = await post(client, headers, PRIVACY,
                         {"name": "PT3", "namespaceName": "defaultNamespace1", "reconciliationValue": "me@mail.com",
                          "regulation": "gdpr", "type": "access", "label": "Access"})  # fmt: skip
    await client.post("/_emulator/clock", json={"advanceSeconds": 3600})
    data = await client.post(request["privacyRequestData"]["href"], json={"name": "PT3"}, headers=headers)
    assert data.status_code == 200
    document = data.json()
    assert document.startswith("<gdprRequestData>")
    assert '<table name="nms:recipient">' in document
    assert 'lastName="D\'Arcy"' in document


@pytest.mark.anyio
async def test_privacy_request_needs_a_regulation(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(
        PRIVACY, json={"name": "PT4", "reconciliationValue": "a@b.c", "type": "delete"}, headers=headers
    )
    assert response.status_code == 500
    assert "'regulation'" in response.json()["message"]


@pytest.mark.anyio
async def test_history_shows_subscription_events_of_the_profile(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    service = await post(client, headers, f"{STD}/service", {"label": "Weekly", "name": "SVC_W"})
    profile = await post(client, headers, f"{STD}/profile", {"email": "hist@mail.com"})
    sub = await post(client, headers, profile["subscriptions"]["href"], {"service": {"PKey": service["PKey"]}})
    await client.delete(sub["href"], headers=headers)
    history = (await client.get(f"{STD}/history/{profile['PKey']}", headers=headers)).json()
    assert history["email"] == "hist@mail.com"
    assert history["countSubHistoEvents"] == 2
    assert history["countBroadLogEvents"] == 0
    assert history["events"]["metadata"] == "subHisto"
    events = (await client.get(history["events"]["href"], headers=headers)).json()["content"]
    assert [e["label"] for e in events] == ["Subscription to 'Weekly'", "Unsubscription from 'Weekly'"]
    one = await client.get(events[0]["href"], headers=headers)
    assert one.json()["PKey"] == events[0]["PKey"]
    by_email = (await client.get(f"{STD}/history/byEmail?email=hist%40mail.com", headers=headers)).json()
    assert [h["PKey"] for h in by_email["content"]] == [profile["PKey"]]
