"""The real clients behind the flows' ports: Dataverse change feeds and writes, Campaign records and events.

Each adapter is thin: it turns a port call into client calls and client results into what the port promises
(pages, per-row errors, positions as text). No flow logic lives here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crmbridge.campaign.client import CampaignClient
from crmbridge.campaign.exports import ExportCursor, ExportReader
from crmbridge.campaign.journal import JournalConsumer, JournalCursor
from crmbridge.campaign.links import LinkResolver, LinkTo, resolve_links
from crmbridge.dynamics.client import DataverseClient
from crmbridge.dynamics.reader import TableRef
from crmbridge.dynamics.results import run_chunks
from crmbridge.engine.activities import ActivityRow, TaskRow
from crmbridge.engine.ports import ChangePage, EventBatch, MissingContact, ParentRef, RejectedEvent
from crmbridge.exceptions import ConfigError, RecordError

__all__ = [
    "CampaignProfiles",
    "CampaignRecordTarget",
    "DataverseActivitySink",
    "DataverseChangeFeed",
    "DataverseContacts",
    "ExportFeed",
    "JournalFeed",
    "campaign_resource",
]

PROFILE_RESOURCES = frozenset({"profile", "profileAndServices", "profileAndServicesExt"})
NOT_FOUND = "0x80040217"  # "<table> With Id = <id> Does Not Exist" (dataverse-web-api.md §7.4)
ACTIVITY_COMPLETED = {"statecode": 1, "statuscode": 2}  # activitypointer: Completed / Completed


def campaign_resource(resource: str) -> str:
    """The Campaign client's name for a mapping's resource: profiles are ``profile``, custom resources as given."""
    return "profile" if resource in PROFILE_RESOURCES else resource


class DataverseChangeFeed:
    """Change tracking of one table (full read, delta, resume from a nextLink), with picklist labels."""

    def __init__(self, client: DataverseClient, table: TableRef, *, formatted_values: bool = True) -> None:
        self.client = client
        self.table = table
        self.formatted_values = formatted_values

    async def read(
        self, *, columns: Sequence[str], delta_link: str | None, next_link: str | None
    ) -> AsyncIterator[ChangePage]:
        pages = self.client.iter_changes(
            self.table,
            columns,
            delta_link=delta_link,
            resume_next_link=next_link,
            formatted_values=self.formatted_values,
        )
        async for page in pages:
            yield ChangePage(page.changes, page.next_link, page.delta_link)

    async def fetch_rows(self, ids: Sequence[str], columns: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        rows: dict[str, Mapping[str, Any]] = {}
        for row_id in ids:
            # Picklist labels as the change feed gives them, so a retried row maps exactly like a synced one.
            row = await self.client.reader.get(
                self.table.entity_set, row_id, select=columns, formatted_values=self.formatted_values
            )
            if row is not None:
                rows[row_id] = row
        return rows


class CampaignRecordTarget:
    """One ACS resource by business key. Rows crmbridge wrote before are PATCHed by key in one call."""

    def __init__(self, client: CampaignClient, resource: str, key_field: str, *, create_first: bool = False) -> None:
        self.client = client
        self.resource = resource
        self.key_field = key_field
        self.create_first = create_first  # the key is an identification key: POST new rows without a lookup
        self.resolver: LinkResolver = client.link_resolver()

    def new_pass(self) -> None:
        """PKeys are cached for one pass at most: parents may be deleted and re-created between passes."""
        self.resolver = self.client.link_resolver()

    async def upsert(
        self, key: str, values: Mapping[str, Any], *, known: bool, parents: Mapping[str, ParentRef]
    ) -> None:
        payload: dict[str, Any] = dict(values)
        for field, parent in parents.items():
            payload[field] = LinkTo(campaign_resource(parent.resource), parent.key_field, parent.key)
        if known and await self._patch_by_key(key, payload):
            return
        # Upsert by key looks the key up before or after the create (safe against lost responses and pre-existing
        # profiles either way: see crmbridge.campaign.upsert).
        await self.client.upsert_by_key(
            self.resource, self.key_field, key, payload, resolver=self.resolver, create_first=self.create_first
        )

    async def _patch_by_key(self, key: str, payload: Mapping[str, Any]) -> bool:
        """A row crmbridge wrote before: one PATCH addressed by its custom key (campaign-standard-api.md §2.2).

        False when the row is gone (deleted in Campaign meanwhile): the caller falls back to upsert by key.
        """
        resolved = await resolve_links(payload, self.resolver)
        body = {name: value for name, value in resolved.items() if name != self.key_field}
        try:
            await self.client.update(self.resource, key, body, record_key=key)
        except (ConfigError, RecordError) as error:
            if error.details is not None and error.details.status == 404:
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        # One DELETE addressed by the custom key (campaign-standard-api.md §2.2), as PATCH is: it also reaches a child
        # hidden behind a 1-cardinality link whose parent is gone, which a lookup by key no longer finds (inferred).
        if await self.client.delete(self.resource, key, record_key=key):
            return
        for row in await self.client.find_by_key(self.resource, self.key_field, key):
            await self.client.delete(self.resource, row, record_key=key)

    async def fetch(self, key: str) -> Mapping[str, Any] | None:
        rows = await self.client.find_by_key(self.resource, self.key_field, key)
        return rows[0] if rows else None


def _missing_contact(error: RecordError) -> bool:
    details = error.details
    text = str(error).lower()
    return (details is not None and details.code == NOT_FOUND and "contact" in text) or (
        "contact" in text and "does not exist" in text
    )


def _as_port_error(error: RecordError) -> RecordError:
    return MissingContact(str(error), details=error.details) if _missing_contact(error) else error


class DataverseActivitySink:
    """Activities, tasks and contact roll-ups written in bulk (UpsertMultiple), split until a bad row stands alone."""

    def __init__(self, client: DataverseClient) -> None:
        self.client = client

    async def upsert_activities(self, rows: Sequence[ActivityRow]) -> Mapping[str, RecordError]:
        errors: dict[str, RecordError] = {}
        by_table: dict[tuple[str, str], list[ActivityRow]] = {}
        for row in rows:
            by_table.setdefault((row.logical_name, row.entity_set), []).append(row)

        async def write(group: tuple[tuple[str, str], list[ActivityRow]]) -> None:
            (logical, entity_set), table_rows = group
            table = TableRef(logical, entity_set, "activityid")
            errors.update(await self._upsert_closed(table, [(r.activity_id, r.values) for r in table_rows]))

        # One bulk call per activity table, the tables side by side (the session's limiter bounds what is in flight).
        await run_chunks(list(by_table.items()), write, len(by_table) or 1)
        return errors

    async def upsert_tasks(self, rows: Sequence[TaskRow]) -> Mapping[str, RecordError]:
        table = TableRef("task", "tasks", "activityid")
        return await self._upsert(table, [(r.activity_id, r.values) for r in rows])

    async def update_contacts(self, values: Mapping[str, Mapping[str, Any]]) -> Mapping[str, RecordError]:
        table = TableRef("contact", "contacts", "contactid")
        return await self._upsert(table, list(values.items()), create=False)

    async def _upsert_closed(
        self, table: TableRef, rows: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> dict[str, RecordError]:
        # Created open, then completed by a second bulk call. One call cannot do both: statecode is not valid for
        # create (IsValidForCreate=False in Microsoft's task table reference, MicrosoftDocs/powerapps-docs
        # reference/entities/task.md), a create's status must belong to the Open state (0x80048408 "… is not a valid
        # status code for state code …Active", community reports), and Create/UpsertMultiple create as Create does
        # (dataverse-web-api.md §5.4, §5.6, §5.7). (Inferred for custom activities: they share activitypointer.)
        errors = await self._upsert(table, rows)
        closing = [(row_id, ACTIVITY_COMPLETED) for row_id, _ in rows if row_id not in errors]
        if closing:
            errors.update(await self._upsert(table, closing, create=False))
        return errors

    async def _upsert(
        self, table: TableRef, rows: Sequence[tuple[str, Mapping[str, Any]]], *, create: bool = True
    ) -> dict[str, RecordError]:
        if not rows:
            return {}
        if create:
            results = await self.client.upsert_multiple(table, list(rows))
        else:
            results = await self.client.writer.update_multiple(
                table, [{table.primary_id: row_id, **values} for row_id, values in rows]
            )
        errors: dict[str, RecordError] = {}
        for result in results:
            if result.error is not None:
                errors[rows[result.index][0]] = _as_port_error(result.error)
        return errors


class DataverseContacts:
    """Contacts read with their ETag and written with ``If-Match`` (the opt-out flow's race guard)."""

    def __init__(self, client: DataverseClient) -> None:
        self.client = client

    async def read_contact(self, contact_id: str, columns: Sequence[str]) -> tuple[Mapping[str, Any], str] | None:
        row = await self.client.get("contacts", contact_id, select=list(columns))
        if row is None:
            return None
        return row, str(row.get("@odata.etag", "*"))

    async def write_contact(self, contact_id: str, values: Mapping[str, Any], *, etag: str) -> bool:
        from crmbridge.dynamics.errors import RequestKind

        try:
            await self.client.session.send(
                "PATCH",
                f"contacts({contact_id})",
                kind=RequestKind.WRITE,
                idempotent=True,
                payload=dict(values),
                headers={"If-Match": etag},
                record_key=contact_id,
            )
        except RecordError as error:
            if error.details is not None and error.details.status == 412:
                return False  # changed since it was read: the flow merges again
            raise
        return True


class CampaignProfiles:
    """ACS profiles by ``externalId`` for the opt-out flow."""

    def __init__(self, client: CampaignClient, resource: str = "profile") -> None:
        self.client = client
        self.resource = resource

    async def modified_since(self, watermark: datetime | None) -> AsyncIterator[Mapping[str, Any]]:
        floor = watermark or datetime(1970, 1, 1, tzinfo=UTC)
        async for row in self.client.iter_modified_since(self.resource, floor, overlap=floor - floor):
            yield row

    async def read_profile(self, contact_id: str) -> Mapping[str, Any] | None:
        rows = await self.client.find_by_key(self.resource, "externalId", contact_id)
        return rows[0] if rows else None

    async def write_profile(self, contact_id: str, values: Mapping[str, Any]) -> None:
        rows = await self.client.find_by_key(self.resource, "externalId", contact_id)
        for row in rows:
            await self.client.update(self.resource, row, values, record_key=contact_id)


class JournalFeed:
    """The I/O Events journal as an event feed; the position is the journal cursor as JSON."""

    def __init__(self, consumer: JournalConsumer) -> None:
        self.consumer = consumer

    async def batches(self, position: str | None, *, after_gap: bool = False) -> AsyncIterator[EventBatch]:
        if position is not None:
            cursor: JournalCursor | None = JournalCursor.from_json(position)
        elif after_gap:
            cursor = JournalCursor(self.consumer.journal_url)  # no since/latest: the oldest event still kept (§A.4)
        else:
            cursor = None
        async for batch in self.consumer.batches(cursor):
            rejected = [
                RejectedEvent(r.position, r.reason, r.raw if isinstance(r.raw, Mapping) else {"raw": r.raw})
                for r in batch.rejected
            ]
            yield EventBatch(
                batch.events,
                batch.cursor.to_json(),
                rejected,
                caught_up=batch.caught_up,
                lag=batch.lag.behind if batch.lag is not None else None,
                repeats=batch.duplicates,
            )


class ExportFeed:
    """Workflow export files as an event feed; the position is (files done, file in progress, line) as JSON."""

    def __init__(self, reader: ExportReader) -> None:
        self.reader = reader

    async def batches(self, position: str | None, *, after_gap: bool = False) -> AsyncIterator[EventBatch]:
        cursor = ExportCursor.from_json(position) if position else None
        last: str | None = position
        async for batch in self.reader.batches(cursor):
            last = batch.cursor.to_json()
            rejected = [RejectedEvent(f"{m.file}:{m.line}", m.reason, {"raw": m.raw}) for m in batch.malformed]
            yield EventBatch(batch.events, last, rejected)
        yield EventBatch([], last or ExportCursor().to_json(), caught_up=True)
