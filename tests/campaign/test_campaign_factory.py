"""The Campaign readers and writers built from validated settings work against the emulator unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from acs_env import BASE, CLIENT_ID, CLIENT_SECRET, IMS_ORG, JOURNAL_PATH, make_emulator
from pydantic import SecretStr
from test_campaign_journal import EMULATOR_MAPPING

from crmbridge.campaign.factory import campaign_client, campaign_http_client, export_reader, journal_consumer
from crmbridge.config.connections import CampaignSettings
from crmbridge.config.events import ExportsSource, JournalSource
from crmbridge.emulators.faults import asgi_transport
from crmbridge.exceptions import ConfigError


def settings() -> CampaignSettings:
    return CampaignSettings(
        organization="acme",
        base_url=BASE,
        ims_url=BASE,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        scopes=["openid", "AdobeID", "campaign_sdk"],
        ims_org_id=IMS_ORG,
    )


@pytest.mark.anyio
async def test_client_built_from_settings_finds_profiles_through_the_configured_filter() -> None:
    env = make_emulator()
    async with campaign_http_client(settings(), transport=asgi_transport(env.app)) as http:
        campaign = campaign_client(settings(), http)
        result = await campaign.upsert_by_key("profile", "externalId", "c-1", {"email": "a+b@example.com"})
        [row] = await campaign.find_by_key("profile", "externalId", "c-1")
    assert row["PKey"] == result.pkey
    assert row["email"] == "a+b@example.com"
    env.hub.close()


@pytest.mark.anyio
async def test_journal_consumer_built_from_settings_reads_the_journal() -> None:
    env = make_emulator()
    journal = JournalSource(
        url=BASE + JOURNAL_PATH,
        scopes=["openid", "AdobeID", "adobeio_api"],
        start="oldest",
        payload_mapping=dict(EMULATOR_MAPPING.fields),
    )
    async with campaign_http_client(settings(), transport=asgi_transport(env.app)) as http:
        consumer = journal_consumer(settings(), journal, http)
        assert "limit=500" in consumer.first_cursor().next_url
        batch = await consumer.read_batch(None)
    assert batch.caught_up  # nothing delivered yet: 204
    env.hub.close()


def test_journal_without_an_ims_org_is_a_configuration_error() -> None:
    campaign = settings().model_copy(update={"ims_org_id": None})
    journal = JournalSource(url=BASE + JOURNAL_PATH, scopes=["adobeio_api"])
    with pytest.raises(ConfigError, match="ims_org_id"):
        journal_consumer(campaign, journal, http=None)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_export_reader_built_from_settings_reads_the_folder(tmp_path: Path) -> None:
    (tmp_path / "tracking_logs_20250301_091500.txt").write_text(
        "tracking_log_id;event_date;url_type;url_source\n99;2025-03-01T09:15:02.000Z;Email click;https://x.example/a\n",
        encoding="utf-8",
    )
    async with export_reader(ExportsSource(folder=tmp_path, delimiter=";"), settle_seconds=0) as reader:
        [batch] = [batch async for batch in reader.batches()]
    [event] = batch.events
    assert (event.tracking_log_id, event.url) == ("99", "https://x.example/a")
