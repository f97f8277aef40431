"""Builds the Campaign-side readers and writers from the validated configuration (``crmbridge.config``).

The engine and the CLI call these; tests build the classes directly with literal values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.request import getproxies

import httpx

from crmbridge.campaign.auth import ImsCredentials, ImsTokenProvider
from crmbridge.campaign.client import CampaignClient, KeyLookup
from crmbridge.campaign.exports import ExportReader, FolderSource, SftpSource
from crmbridge.campaign.journal import JournalConsumer
from crmbridge.campaign.payload import PayloadMapping
from crmbridge.config.connections import CampaignSettings
from crmbridge.config.events import ExportsSource, JournalSource
from crmbridge.exceptions import ConfigError
from crmbridge.http import AdaptiveLimiter, RetryPolicy, create_client
from crmbridge.http11 import Http11Transport

__all__ = ["campaign_client", "campaign_http_client", "export_reader", "journal_consumer"]


def campaign_http_client(
    settings: CampaignSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one ``httpx.AsyncClient`` of Campaign, IMS and I/O Events calls, with the configured timeouts.

    Without a proxy it runs on :class:`~crmbridge.http11.Http11Transport`: a sync sends one request per record,
    and that transport needs about half the CPU per request of httpx's own pool (see its module docstring).
    """
    verify = str(settings.ca_bundle) if settings.ca_bundle else True
    if transport is None and settings.proxy is None and not getproxies():
        transport = Http11Transport(max_connections=settings.max_concurrency, verify=verify)
    return create_client(
        timeout=settings.timeout_seconds,
        verify=verify,
        proxy=settings.proxy,
        transport=transport,
        max_connections=settings.max_concurrency,
    )


def _token_provider(settings: CampaignSettings, http: httpx.AsyncClient, scopes: list[str]) -> ImsTokenProvider:
    credentials = ImsCredentials(
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        scopes=tuple(scopes),
        ims_url=settings.ims_url,
    )
    return ImsTokenProvider(http, credentials, retry=RetryPolicy(service="ims"))


def campaign_client(settings: CampaignSettings, http: httpx.AsyncClient) -> CampaignClient:
    lookups = {("profile", "externalId"): KeyLookup(settings.external_id_filter, "externalId_parameter")}
    return CampaignClient(
        http,
        _token_provider(settings, http, settings.scopes),
        api_url=settings.api_url,
        profile_api=settings.profile_resource,
        key_lookups=lookups,
        retry=RetryPolicy(service="campaign"),
        limiter=AdaptiveLimiter(initial=min(4, settings.max_concurrency), maximum=settings.max_concurrency),
    )


def journal_consumer(settings: CampaignSettings, journal: JournalSource, http: httpx.AsyncClient) -> JournalConsumer:
    ims_org_id = journal.ims_org_id or settings.ims_org_id
    if ims_org_id is None:
        raise ConfigError("set events.source.journal.ims_org_id or campaign.ims_org_id (the …@AdobeOrg id)")
    return JournalConsumer(
        http,
        _token_provider(settings, http, journal.scopes),
        journal_url=journal.url,
        ims_org_id=ims_org_id,
        mapping=PayloadMapping.from_settings(journal),
        start=journal.start,
        limit=journal.page_limit,
        retry=RetryPolicy(service="io-events"),
    )


@asynccontextmanager
async def export_reader(
    exports: ExportsSource, *, batch_size: int = 500, settle_seconds: float = 60.0
) -> AsyncIterator[ExportReader]:
    """A reader over the configured folder, or over SFTP for the duration of the ``async with`` block."""

    def reader(source: FolderSource | SftpSource) -> ExportReader:
        return ExportReader(
            source,
            delimiter=exports.delimiter,
            encoding=exports.encoding,
            batch_size=batch_size,
            settle_seconds=settle_seconds,
        )

    if exports.folder is not None:
        yield reader(FolderSource(exports.folder, exports.file_pattern))
        return
    sftp = exports.sftp
    if sftp is None:  # pragma: no cover - the settings model requires exactly one of folder or sftp
        raise ConfigError("events exports: give a folder or an sftp location")
    source = SftpSource(
        sftp.host,
        port=sftp.port,
        username=sftp.username,
        password=sftp.password.get_secret_value() if sftp.password else None,
        client_keys=[str(sftp.private_key)] if sftp.private_key else None,
        passphrase=sftp.private_key_passphrase.get_secret_value() if sftp.private_key_passphrase else None,
        known_hosts=str(sftp.known_hosts) if sftp.known_hosts else (),
        remote_dir=sftp.remote_dir,
        pattern=exports.file_pattern,
    )
    async with source:
        yield reader(source)
