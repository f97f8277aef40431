"""``DataverseClient``: the one object flows use to read from and write to a Dataverse org.

It wires settings into a session (MSAL tokens, one httpx client, RetryPolicy, AdaptiveLimiter capped at the
configured concurrency) and exposes the reader, writer, ``$batch`` writer and metadata through a small facade.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from crmbridge.config import DynamicsSettings
from crmbridge.dynamics.auth import ClientCertificate, MsalTokenProvider, TokenProvider
from crmbridge.dynamics.batch import BatchOperation, BatchWriter
from crmbridge.dynamics.errors import RequestKind
from crmbridge.dynamics.metadata import DataverseMetadata
from crmbridge.dynamics.reader import ChangePage, DataverseReader, Page, TableRef
from crmbridge.dynamics.results import WriteResult
from crmbridge.dynamics.session import DataverseSession
from crmbridge.dynamics.writer import DataverseWriter, RowKey
from crmbridge.http import AdaptiveLimiter, HttpStats, RetryPolicy, create_client

__all__ = ["DataverseClient", "WhoAmI"]


@dataclass(frozen=True, slots=True)
class WhoAmI:
    user_id: str
    business_unit_id: str
    organization_id: str


def _tokens_from_settings(settings: DynamicsSettings) -> MsalTokenProvider:
    credential: str | ClientCertificate
    if settings.certificate is not None:
        passphrase = settings.certificate.passphrase
        credential = ClientCertificate.from_pem_file(
            settings.certificate.path,
            passphrase.get_secret_value() if passphrase else None,
            thumbprint=settings.certificate.thumbprint,
        )
    else:
        assert settings.client_secret is not None  # the settings model requires exactly one credential
        credential = settings.client_secret.get_secret_value()
    return MsalTokenProvider(
        authority=settings.authority,
        client_id=settings.client_id,
        credential=credential,
        scope=settings.scope,
        verify=str(settings.ca_bundle) if settings.ca_bundle else True,
        proxy=str(settings.proxy) if settings.proxy else None,
        timeout_seconds=settings.timeout_seconds,
    )


class DataverseClient:
    """Reads (pages, changes), writes (single, bulk, ``$batch``) and metadata of one org.

    Use as ``async with DataverseClient.from_settings(settings) as client:``; tests build the session themselves
    (ASGI transport into the emulator) and pass it to the constructor.
    """

    def __init__(
        self, session: DataverseSession, *, page_size: int = 5000, bulk_size: int = 1000, batch_size: int = 100
    ) -> None:
        self.session = session
        self.reader = DataverseReader(session, page_size=page_size)
        self.writer = DataverseWriter(session, bulk_size=bulk_size)
        self.batch = BatchWriter(session, batch_size=batch_size)
        self.metadata = DataverseMetadata(session)

    @classmethod
    def from_settings(
        cls,
        settings: DynamicsSettings,
        *,
        tokens: TokenProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> DataverseClient:
        """A client for the configured org: MSAL tokens, timeouts, and at most ``max_concurrency`` requests."""
        http = create_client(
            timeout=settings.timeout_seconds,
            verify=str(settings.ca_bundle) if settings.ca_bundle else True,
            proxy=str(settings.proxy) if settings.proxy else None,
            transport=transport,
            max_connections=settings.max_concurrency,
        )
        maximum = settings.max_concurrency
        limiter = AdaptiveLimiter(initial=min(4, maximum), maximum=maximum)
        session = DataverseSession(
            http,
            settings.api_url,
            tokens if tokens is not None else _tokens_from_settings(settings),
            retry=retry if retry is not None else RetryPolicy(service="dataverse"),
            limiter=limiter,
            stats=HttpStats(),
            max_parallel=maximum,
        )
        return cls(session, page_size=settings.page_size)

    async def __aenter__(self) -> DataverseClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.session.http.aclose()
        self.session.tokens.close()

    async def who_am_i(self) -> WhoAmI:
        """Checks the credentials end to end; PermissionDenied says when the app is not an application user."""
        response = await self.session.send("GET", "WhoAmI", kind=RequestKind.READ, idempotent=True)
        body = response.json()
        return WhoAmI(str(body["UserId"]), str(body["BusinessUnitId"]), str(body["OrganizationId"]))

    def iter_pages(self, entity_set: str, *, select: Sequence[str], **options: Any) -> AsyncIterator[Page]:
        """Pages of a query (see :meth:`DataverseReader.iter_pages` for filter, orderby, resume_next_link, ...)."""
        return self.reader.iter_pages(entity_set, select=select, **options)

    def iter_changes(
        self,
        table: TableRef,
        columns: Sequence[str],
        *,
        delta_link: str | None = None,
        resume_next_link: str | None = None,
        formatted_values: bool = False,
    ) -> AsyncIterator[ChangePage]:
        """Pages of changes; store ``next_link`` after each page and ``delta_link`` after the last."""
        return self.reader.iter_changes(
            table,
            columns,
            delta_link=delta_link,
            resume_next_link=resume_next_link,
            formatted_values=formatted_values,
        )

    async def get(self, entity_set: str, key: RowKey, *, select: Sequence[str]) -> dict[str, Any] | None:
        return await self.reader.get(entity_set, key, select=select)

    async def create(self, entity_set: str, values: Mapping[str, Any]) -> str:
        return await self.writer.create(entity_set, values)

    async def update(self, entity_set: str, key: RowKey, values: Mapping[str, Any]) -> None:
        await self.writer.update(entity_set, key, values)

    async def upsert(self, entity_set: str, key: RowKey, values: Mapping[str, Any]) -> None:
        await self.writer.upsert(entity_set, key, values)

    async def delete(self, entity_set: str, key: RowKey) -> bool:
        return await self.writer.delete(entity_set, key)

    async def upsert_multiple(
        self, table: TableRef, rows: Sequence[tuple[RowKey, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Bulk upsert; create_multiple and update_multiple are on :attr:`writer`."""
        return await self.writer.upsert_multiple(table, rows)

    async def write_batch(self, operations: Sequence[BatchOperation], *, atomic: bool) -> list[WriteResult]:
        return await self.batch.write(operations, atomic=atomic)
