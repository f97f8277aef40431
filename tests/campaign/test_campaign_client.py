"""CampaignClient against the Campaign emulator in-process: reads, lookups, writes, upserts, metadata, privacy.

Expected values come from literals and from the emulator's own storage, never from the client under test.
"""

from __future__ import annotations

import httpx
import pytest
from acs_env import Emulator, campaign_client, in_process_http

from crmbridge.campaign.client import CampaignClient, UpsertOutcome
from crmbridge.campaign.links import LinkTo
from crmbridge.campaign.metadata import PrivacyRequest, PrivacyRequestType
from crmbridge.exceptions import RecordError

TRICKY_EMAIL = "o'brien+news@exämple.com"


def rows_in(emulator: Emulator, resource: str) -> int:
    return int(emulator.context.storage.stats()[resource])


@pytest.mark.anyio
async def test_create_then_find_by_external_id_and_by_email_with_plus_at_and_quote(client: CampaignClient) -> None:
    created = await client.create("profile", {"email": TRICKY_EMAIL, "externalId": "c+1@x'y", "lastName": "O'Brien"})
    assert created["PKey"].startswith("@")
    by_key = await client.find_by_key("profile", "externalId", "c+1@x'y")
    assert [row["PKey"] for row in by_key] == [created["PKey"]]
    by_email = await client.find("profile", "byEmail", {"email": TRICKY_EMAIL})
    assert [row["lastName"] for row in by_email] == ["O'Brien"]
    assert await client.find_by_key("profile", "externalId", "c 1@x'y") == []


@pytest.mark.anyio
async def test_every_call_carries_the_four_required_headers(emulator: Emulator) -> None:
    seen: list[httpx.Headers] = []

    async def record(request: httpx.Request) -> None:
        if "/campaign/" in request.url.path:
            seen.append(request.headers)

    async with in_process_http(emulator.app) as http:
        http.event_hooks["request"].append(record)  # observes requests, does not alter them
        campaign = campaign_client(http)
        await campaign.create("profile", {"email": "a@example.com"})
        await campaign.find_by_key("profile", "externalId", "nobody")
    assert len(seen) == 2
    for headers in seen:
        assert headers["authorization"].startswith("Bearer ")
        assert headers["x-api-key"] == "crmbridge-emulator"
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-cache"


@pytest.mark.anyio
async def test_upsert_creates_then_updates_only_what_changed_then_writes_nothing(
    client: CampaignClient, emulator: Emulator
) -> None:
    first = await client.upsert_by_key("profile", "externalId", "c-1", {"email": "a@example.com", "firstName": "Ann"})
    again = await client.upsert_by_key("profile", "externalId", "c-1", {"email": "a@example.com", "firstName": "Anna"})
    same = await client.upsert_by_key("profile", "externalId", "c-1", {"email": "a@example.com", "firstName": "Anna"})
    assert [first.outcome, again.outcome, same.outcome] == [
        UpsertOutcome.CREATED,
        UpsertOutcome.UPDATED,
        UpsertOutcome.UNCHANGED,
    ]
    assert rows_in(emulator, "profile") == 1
    stored = await client.get("profile", "c-1")  # by custom key (§2.2)
    assert stored is not None
    assert stored["firstName"] == "Anna"
    # licence engine calls: insert 1 + update 2 + skipped no-op 0 (§8)
    assert client.stats.engine_calls == 3
    assert (client.stats.inserts, client.stats.updates, client.stats.unchanged) == (1, 1, 1)


@pytest.mark.anyio
async def test_update_and_delete_follow_the_record_and_a_second_delete_is_not_an_error(
    client: CampaignClient, emulator: Emulator
) -> None:
    created = await client.create("profile", {"email": "b@example.com", "externalId": "c-2"})
    await client.update("profile", created, {"blackListEmail": True})
    stored = await client.get("profile", created["PKey"])
    assert stored is not None
    assert stored["blackListEmail"] is True
    assert await client.delete("profile", created) is True
    assert await client.delete("profile", created["PKey"]) is False
    assert rows_in(emulator, "profile") == 0
    assert client.stats.engine_calls == 1 + 2 + 1


@pytest.mark.anyio
async def test_validation_error_is_a_record_error_with_the_campaign_code(client: CampaignClient) -> None:
    with pytest.raises(RecordError) as caught:
        await client.create("profile", {"email": "c@example.com", "gender": "robot"}, record_key="c-3")
    assert caught.value.record_key == "c-3"
    assert caught.value.details is not None
    assert caught.value.details.status == 500


@pytest.mark.anyio
async def test_link_to_a_profile_is_resolved_from_its_business_key(client: CampaignClient, emulator: Emulator) -> None:
    owner = await client.create("profile", {"email": "owner@example.com", "externalId": "contact-9"})
    resolver = client.link_resolver()
    values = {"name": "Blue car", "profile": LinkTo("profile", "externalId", "contact-9")}
    await client.upsert_by_key("cusVehicle", "vehicleId", "V-1", values, resolver=resolver)
    await client.upsert_by_key("cusVehicle", "vehicleId", "V-2", values, resolver=resolver)
    assert resolver.lookups == 1  # cached for the pass
    vehicle = await client.get("cusVehicle", "V-2")
    assert vehicle is not None
    assert vehicle["profile"]["PKey"] == owner["PKey"]
    assert rows_in(emulator, "cusVehicle") == 2


@pytest.mark.anyio
async def test_link_to_a_missing_parent_raises_parent_not_found_and_writes_nothing(
    client: CampaignClient, emulator: Emulator
) -> None:
    from crmbridge.campaign.errors import ParentNotFound

    with pytest.raises(ParentNotFound):
        await client.upsert_by_key("cusVehicle", "vehicleId", "V-3", {"profile": LinkTo("profile", "externalId", "no")})
    assert rows_in(emulator, "cusVehicle") == 0


@pytest.mark.anyio
async def test_metadata_lists_fields_types_and_enum_names(client: CampaignClient) -> None:
    profile = await client.describe("profile")
    assert profile.fields["email"].type == "string"
    assert profile.fields["blackListEmail"].type == "boolean"
    assert "male" in profile.fields["gender"].enum_values
    assert "cusLoyaltyTier" in profile.fields  # an extension field, visible on the Ext API
    vehicle = await client.describe("cusVehicle")
    assert vehicle.fields["profile"].is_link
    assert vehicle.missing(["vin", "color", "location.city"]) == ["color", "location.city"]


@pytest.mark.anyio
async def test_privacy_request_is_created_and_its_status_read_back(client: CampaignClient) -> None:
    request = PrivacyRequest(
        name="PT11832", reconciliation_value="customers@example.com", type=PrivacyRequestType.DELETE
    )
    created = await client.create_privacy_request(request)
    assert created["status"] == "new"
    assert await client.privacy_request_status("PT11832") == "new"
    assert await client.privacy_request_status("PT0") is None


@pytest.mark.anyio
async def test_count_matches_the_rows_iterated(client: CampaignClient, emulator: Emulator) -> None:
    for index in range(7):
        await client.create("profile", {"email": f"p{index}@example.com"})
    rows = [row async for row in client.iter_records("profile", page_size=3)]
    assert len({row["PKey"] for row in rows}) == 7
    assert await client.count("profile") == 7


@pytest.mark.anyio
async def test_privacy_access_file_is_fetched_once_the_request_is_complete(
    client: CampaignClient, emulator: Emulator
) -> None:
    await client.create("profile", {"email": "subject@example.com", "lastName": "Subject"})
    request = PrivacyRequest(
        name="PT2", reconciliation_value="subject@example.com", type=PrivacyRequestType.ACCESS, namespace="email"
    )
    created = await client.create_privacy_request(request)
    with pytest.raises(RecordError):  # not complete yet
        await client.privacy_access_data(created)
    emulator.settings.clock.advance(10 * emulator.settings.privacy_step_s)
    assert await client.privacy_request_status("PT2") == "complete"
    document = await client.privacy_access_data(created)
    assert document.startswith("<gdprRequestData>")
    assert "subject@example.com" in document
