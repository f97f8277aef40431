"""Reading Dataverse rows: paged queries (§3.5) and change tracking (§4) as async iterators of pages.

A change read yields one :class:`ChangePage` per service page. After each page the caller may store
``page.next_link`` (where to resume after a crash); the last page carries ``page.delta_link`` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from crmbridge.dynamics.errors import RequestKind
from crmbridge.dynamics.odata import format_key
from crmbridge.dynamics.session import DataverseSession
from crmbridge.exceptions import ProtocolError, RecordError
from crmbridge.records import SourceChange, Tombstone

__all__ = [
    "FORMATTED_VALUE",
    "MAX_PAGE_SIZE",
    "ChangePage",
    "DataverseReader",
    "Page",
    "TableRef",
    "build_query",
    "formatted_value",
]

MAX_PAGE_SIZE = 5000
FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
_DELETED_ENTITY = "/$deletedEntity"
# Characters OData uses as syntax inside query option values; everything else is percent-encoded.
_QUERY_SAFE = "$,'()*=:/@"


@dataclass(frozen=True, slots=True)
class TableRef:
    """How to address a table: logical name (``contact``), entity set (``contacts``) and primary id (``contactid``)."""

    logical_name: str
    entity_set: str
    primary_id: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: the rows as returned (annotations included) and the link to the next page."""

    rows: list[dict[str, Any]]
    next_link: str | None


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of a change read.

    ``next_link`` is the in-flight link to resume from once this page is committed (None on the last page);
    ``delta_link`` is set on the last page only and replaces every stored link.
    """

    changes: list[SourceChange | Tombstone] = field(default_factory=list)
    next_link: str | None = None
    delta_link: str | None = None


def formatted_value(values: Mapping[str, Any], column: str) -> str | None:
    """The label Dataverse sent for a column (picklist label, lookup name, "Do Not Allow"), if requested."""
    label = values.get(f"{column}@{FORMATTED_VALUE}")
    return label if isinstance(label, str) else None


def build_query(
    *,
    select: Sequence[str] = (),
    filter: str | None = None,
    orderby: str | None = None,
    expand: str | None = None,
    top: int | None = None,
    count: bool = False,
) -> str:
    """A query string (without ``?``) with the system query options in Dataverse's spelling (``$select``, ...)."""
    options: list[tuple[str, str]] = []
    if select:
        options.append(("$select", ",".join(select)))
    if filter:
        options.append(("$filter", filter))
    if orderby:
        options.append(("$orderby", orderby))
    if expand:
        options.append(("$expand", expand))
    if top is not None:
        options.append(("$top", str(top)))
    if count:
        options.append(("$count", "true"))
    return "&".join(f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in options)


def _prefer(page_size: int, *, track_changes: bool, formatted_values: bool) -> str:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    preferences = [f"odata.maxpagesize={page_size}"]
    if track_changes:
        preferences.insert(0, "odata.track-changes")
    if formatted_values:
        preferences.append(f'odata.include-annotations="{FORMATTED_VALUE}"')
    return ",".join(preferences)


class DataverseReader:
    """Paged queries, single-row reads and change tracking against one org."""

    def __init__(self, session: DataverseSession, *, page_size: int = MAX_PAGE_SIZE) -> None:
        _prefer(page_size, track_changes=False, formatted_values=False)  # validates the size up front
        self._session = session
        self._page_size = page_size

    async def iter_pages(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        orderby: str | None = None,
        expand: str | None = None,
        formatted_values: bool = False,
        resume_next_link: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Page]:
        """Every page of a query, following ``@odata.nextLink`` verbatim with the same page-size preference."""
        query = build_query(select=select, filter=filter, orderby=orderby, expand=expand)
        first = resume_next_link or f"{entity_set}?{query}"
        prefer = _prefer(page_size or self._page_size, track_changes=False, formatted_values=formatted_values)
        first_kind = RequestKind.STORED_LINK if resume_next_link else RequestKind.READ
        async for body in self._follow(first, prefer, first_kind):
            yield Page(rows=list(body.get("value", [])), next_link=body.get("@odata.nextLink"))

    async def iter_rows(
        self, entity_set: str, *, select: Sequence[str], **options: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The rows of :meth:`iter_pages`, one at a time."""
        async for page in self.iter_pages(entity_set, select=select, **options):
            for row in page.rows:
                yield row

    async def get(
        self, entity_set: str, key: str | Mapping[str, Any], *, select: Sequence[str], formatted_values: bool = False
    ) -> dict[str, Any] | None:
        """One row by primary key (GUID) or alternate key, or None when it does not exist."""
        headers = {}
        if formatted_values:
            headers["Prefer"] = f'odata.include-annotations="{FORMATTED_VALUE}"'
        path = f"{entity_set}{format_key(key)}?{build_query(select=select)}"
        try:
            # Classified like a write: a 404 here is about this row (it is absent), not about the mapping.
            response = await self._session.send("GET", path, kind=RequestKind.WRITE, idempotent=True, headers=headers)
        except RecordError as error:
            if error.details is not None and error.details.status == 404:
                return None
            raise
        row: dict[str, Any] = response.json()
        return row

    async def iter_changes(
        self,
        table: TableRef,
        columns: Sequence[str],
        *,
        delta_link: str | None = None,
        resume_next_link: str | None = None,
        formatted_values: bool = False,
        page_size: int | None = None,
    ) -> AsyncIterator[ChangePage]:
        """Changed rows and tombstones since ``delta_link`` (or every row when None), page by page.

        Raises :class:`~crmbridge.exceptions.CheckpointExpired` when a stored link (``delta_link`` or
        ``resume_next_link``) is refused with a 4xx other than 401/403/429: the caller re-baselines.
        """
        stored = resume_next_link or delta_link
        first = stored or f"{table.entity_set}?{build_query(select=columns)}"
        prefer = _prefer(page_size or self._page_size, track_changes=True, formatted_values=formatted_values)
        first_kind = RequestKind.STORED_LINK if stored else RequestKind.READ
        async for body in self._follow(first, prefer, first_kind):
            yield ChangePage(
                changes=[_change(table, item) for item in body.get("value", [])],
                next_link=body.get("@odata.nextLink"),
                delta_link=body.get("@odata.deltaLink"),
            )

    async def _follow(self, first: str, prefer: str, first_kind: RequestKind) -> AsyncIterator[dict[str, Any]]:
        seen: set[str] = set()
        link: str | None = first
        kind = first_kind
        while link is not None:
            response = await self._session.send("GET", link, kind=kind, idempotent=True, headers={"Prefer": prefer})
            body = response.json()
            if not isinstance(body, dict) or not isinstance(body.get("value", []), list):
                raise ProtocolError(f"Dataverse answered a query with something other than a collection: {link}")
            seen.add(link)
            link = body.get("@odata.nextLink")
            if link is not None and link in seen:
                raise ProtocolError(f"Dataverse returned the same nextLink twice (paging loop): {link}")
            kind = RequestKind.READ  # links the service just issued are not stored checkpoints
            yield body


def _change(table: TableRef, item: Mapping[str, Any]) -> SourceChange | Tombstone:
    context = item.get("@odata.context")
    if isinstance(context, str) and context.endswith(_DELETED_ENTITY):
        return Tombstone(table=table.logical_name, id=str(item["id"]))
    row_id = item.get(table.primary_id)
    if row_id is None:
        raise ProtocolError(f"a {table.logical_name} row in a change page has no {table.primary_id}")
    return SourceChange(table=table.logical_name, id=str(row_id), values=dict(item))
