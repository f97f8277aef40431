"""CampaignClient: profiles and custom resources of Adobe Campaign Standard over its REST API.

Reads follow ``next.href`` verbatim (adding ``_forcePagination`` when a big table hides ``next``), lookups go
through custom ``by<Filter>`` filters with every value percent-encoded, and writes are made idempotent by
:meth:`CampaignClient.upsert_by_key` because ACS has no native upsert (campaign-standard-api.md §3, §4).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from crmbridge.campaign.auth import ImsTokenProvider, campaign_headers
from crmbridge.campaign.errors import classify_campaign_response, error_for_response
from crmbridge.campaign.links import LinkResolver
from crmbridge.campaign.metadata import PrivacyRequest, ResourceMetadata, parse_resource_metadata
from crmbridge.campaign.upsert import KeyedUpsert, UpsertOutcome, UpsertResult
from crmbridge.campaign.wire import (
    build_query,
    join_url,
    json_of,
    list_page,
    object_of,
    parse_acs_datetime,
    path_segment,
    resource_path,
)
from crmbridge.exceptions import ProtocolError
from crmbridge.http import Action, AdaptiveLimiter, HttpStats, RetryPolicy

__all__ = ["CampaignClient", "CampaignStats", "KeyLookup", "UpsertOutcome", "UpsertResult"]

JsonObject = dict[str, Any]


@dataclass
class CampaignStats:
    """Counters of one client; ``engine_calls`` follows the licence rule: insert 1, delete 1, update 2 (§8)."""

    http: HttpStats = field(default_factory=HttpStats)
    engine_calls: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    unchanged: int = 0  # upserts that found nothing to change and wrote nothing (0 engine calls)
    reads: int = 0  # list pages and single GETs
    recovered_after_lost_response: int = 0  # creates whose response was lost and were found by key


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """How to find a row by business key: ``GET <resource>/<filter>?<parameter>=<value>`` (§3.5, D3)."""

    filter_name: str  # e.g. "byExternalId"
    parameter: str  # e.g. "externalId_parameter"

    @classmethod
    def default_for(cls, key_field: str) -> KeyLookup:
        # Custom filter parameters are generated as "<name>_parameter" when the filter is authored [D3].
        return cls(f"by{key_field[:1].upper()}{key_field[1:]}", f"{key_field}_parameter")


class CampaignClient:
    """One Campaign tenant. ``api_url`` is ``https://mc.adobe.io/<ORGANIZATION>/campaign/``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: ImsTokenProvider,
        *,
        api_url: str,
        profile_api: str = "profileAndServicesExt",
        key_lookups: Mapping[tuple[str, str], KeyLookup] | None = None,
        retry: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | None = None,
        page_size: int = 200,
    ) -> None:
        self._http = http
        self._auth = auth
        self.api_url = api_url.rstrip("/") + "/"
        self._profile_api = profile_api
        self._key_lookups = dict(key_lookups or {})
        self._retry = retry or RetryPolicy(service="campaign")
        self._limiter = limiter
        self.page_size = page_size
        self.stats = CampaignStats()
        self._needs_force_pagination: set[str] = set()

    @property
    def limiter(self) -> AdaptiveLimiter | None:
        """The concurrency limiter of this tenant's calls (read its limit and peak; do not share it)."""
        return self._limiter

    @classmethod
    def for_tenant(
        cls, http: httpx.AsyncClient, auth: ImsTokenProvider, *, organization: str, base_url: str, **options: Any
    ) -> CampaignClient:
        return cls(http, auth, api_url=f"{base_url.rstrip('/')}/{organization}/campaign/", **options)

    # --- plumbing -----------------------------------------------------------------------------------------

    def _url_of(self, resource: str, *segments: str) -> str:
        path = resource_path(resource, profile_api=self._profile_api)
        return self.api_url + "/".join([path, *segments])

    def _key_lookup(self, resource: str, key_field: str) -> KeyLookup:
        path = resource_path(resource, profile_api=self._profile_api)
        name = path.rsplit("/", 1)[1]
        return self._key_lookups.get((name, key_field)) or KeyLookup.default_for(key_field)

    def link_resolver(self) -> LinkResolver:
        """A PKey cache for one pass: create a new one per pass so no PKey outlives it."""
        return LinkResolver(self.find_by_key)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        record_key: str | None = None,
        allow: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send one request with the required headers; a refused token is renewed once, then it stops."""
        content = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            token = await self._auth.token()
            request = self._http.build_request(
                method, url, headers=campaign_headers(token, self._auth.client_id), content=content
            )
            response = await self._retry.send(
                self._http,
                request,
                classify=classify_campaign_response,
                idempotent=idempotent,
                limiter=self._limiter,
                stats=self.stats.http,
            )
            if response.status_code in allow:
                return response
            action = classify_campaign_response(response)
            if action is Action.SUCCESS:
                return response
            if action is Action.REAUTHENTICATE and attempt == 1:
                self._auth.invalidate(token)
                continue
            raise error_for_response(response, action, record_key=record_key)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_json(self, url: str) -> Any:
        response = await self._call("GET", url)
        self.stats.reads += 1
        return json_of(response)

    # --- reads --------------------------------------------------------------------------------------------

    async def iter_records(
        self,
        resource: str,
        *,
        filter_path: Sequence[str] = (),
        params: Mapping[str, str] | None = None,
        order: str | None = None,
        page_size: int | None = None,
    ) -> AsyncGenerator[JsonObject, None]:
        """Every row of a resource (optionally through chained ``by*`` filters), each exactly once per call."""
        query: dict[str, str | int | bool] = dict(params or {})
        query["_lineCount"] = page_size or self.page_size
        if order:
            query["_order"] = order
        key = self._url_of(resource, *filter_path)
        if key in self._needs_force_pagination:
            query["_forcePagination"] = True
        url: str | None = f"{key}?{build_query(query)}"
        seen_urls: set[str] = set()
        first = True
        while url is not None:
            if url in seen_urls:
                raise ProtocolError(f"Campaign paging loops: next.href repeats {url}")
            seen_urls.add(url)
            rows, next_href = list_page(await self._get_json(url), url)
            if (
                first
                and next_href is None
                and len(rows) >= int(query["_lineCount"])
                and "_forcePagination" not in query
            ):
                # Above XtkBigTableThreshold ACS hides `next` unless asked (§3.2); a full first page without
                # `next` is taken as that sign (inferred): ask again with _forcePagination, remember the table.
                self._needs_force_pagination.add(key)
                query["_forcePagination"] = True
                rows, next_href = await self._refetch_first_page(key, query, rows)
            first = False
            for row in rows:
                yield row
            url = join_url(url, next_href) if next_href else None

    async def _refetch_first_page(
        self, key: str, query: Mapping[str, str | int | bool], already: list[Any]
    ) -> tuple[list[Any], str | None]:
        url = f"{key}?{build_query(query)}"
        rows, next_href = list_page(await self._get_json(url), url)
        yielded = {row.get("PKey") for row in already if isinstance(row, dict)}
        fresh = [row for row in rows if not (isinstance(row, dict) and row.get("PKey") in yielded)]
        # The first answer's rows are yielded too; the refetch only adds what moved into the page meanwhile.
        return already + fresh, next_href

    async def count(
        self, resource: str, *, filter_path: Sequence[str] = (), params: Mapping[str, str] | None = None
    ) -> int:
        query = build_query(dict(params or {}))
        url = self._url_of(resource, *filter_path, "_count") + (f"?{query}" if query else "")
        body = await self._get_json(url)
        if not isinstance(body, dict) or not isinstance(body.get("count"), int):
            raise ProtocolError(f"Campaign count response without an integer 'count' from {url}")
        return int(body["count"])

    async def get(self, resource: str, key: str) -> JsonObject | None:
        """One row by PKey or by custom key (§2.2); None when it does not exist."""
        response = await self._call("GET", self._url_of(resource, path_segment(key)), allow=frozenset({404}))
        self.stats.reads += 1
        if response.status_code == 404:
            return None
        return object_of(response)

    async def find(self, resource: str, filter_name: str, params: Mapping[str, str]) -> list[JsonObject]:
        """Rows matching a built-in or custom filter, e.g. ``find("profile", "byEmail", {"email": "a+b@x.com"})``."""
        return [row async for row in self.iter_records(resource, filter_path=(filter_name,), params=params)]

    async def find_by_key(self, resource: str, key_field: str, key_value: str) -> list[JsonObject]:
        lookup = self._key_lookup(resource, key_field)
        rows = await self.find(resource, lookup.filter_name, {lookup.parameter: key_value})
        # A custom filter may be authored as a prefix or case-insensitive match: keep exact matches only.
        return [row for row in rows if row.get(key_field) in (key_value, None)]

    async def iter_modified_since(
        self, resource: str, watermark: datetime, overlap: timedelta = timedelta(minutes=5)
    ) -> AsyncGenerator[JsonObject, None]:
        """Rows modified at or after ``watermark - overlap``, newest first (``_order=lastModified desc``).

        The caller's next watermark is the greatest ``lastModified`` it received: a row changed while this scan
        ran moves above the scan's start and carries a later time, so the next poll sees it.
        """
        floor = watermark - overlap
        seen: set[str] = set()
        # aclosing: stopping early must close the page iterator now, not whenever it is garbage-collected
        async with aclosing(self.iter_records(resource, order="lastModified desc")) as rows:
            async for row in rows:
                modified = parse_acs_datetime(str(row.get("lastModified") or ""))
                if modified is None:
                    continue
                if modified < floor:
                    return
                pkey = str(row.get("PKey") or "")
                if pkey not in seen:
                    seen.add(pkey)
                    yield row

    async def describe(self, resource: str) -> ResourceMetadata:
        """Fields and types of a resource from ``<api>/resourceType/<name>`` (§2.4), for ``crmbridge check``."""
        api, _, name = resource_path(resource, profile_api=self._profile_api).partition("/")
        return parse_resource_metadata(await self._get_json(f"{self.api_url}{api}/resourceType/{name}"), name)

    async def filter_names(self, metadata: ResourceMetadata) -> set[str]:
        """Names of the built-in and custom filters of a described resource (its ``filters.href``, §2.4)."""
        if metadata.filters_href is None:
            return set()
        body = await self._get_json(metadata.filters_href)
        return {str(name) for name in body} if isinstance(body, dict) else set()

    # --- writes -------------------------------------------------------------------------------------------

    async def create(self, resource: str, values: Mapping[str, Any], *, record_key: str | None = None) -> JsonObject:
        """POST a new row; 201 with the full record (§4.1). Never retried blindly: see :meth:`upsert_by_key`."""
        response = await self._call(
            "POST", self._url_of(resource), body=values, idempotent=False, record_key=record_key
        )
        self.stats.inserts += 1
        self.stats.engine_calls += 1
        return object_of(response)

    async def update(
        self,
        resource: str,
        record: Mapping[str, Any] | str,
        values: Mapping[str, Any],
        *,
        record_key: str | None = None,
    ) -> JsonObject:
        """PATCH only the given fields of a row (a record from a read, or its PKey); 200 ``{PKey, href}`` (§4.2)."""
        url = self._record_url(resource, record)
        response = await self._call("PATCH", url, body=values, idempotent=True, record_key=record_key)
        self.stats.updates += 1
        self.stats.engine_calls += 2
        return object_of(response)

    async def delete(self, resource: str, record: Mapping[str, Any] | str, *, record_key: str | None = None) -> bool:
        """DELETE a row; 200 or 204 (§4.3). A row already gone (404) counts as deleted and returns False."""
        url = self._record_url(resource, record)
        response = await self._call("DELETE", url, record_key=record_key, allow=frozenset({404}))
        if response.status_code == 404:
            return False
        self.stats.deletes += 1
        self.stats.engine_calls += 1
        return True

    async def upsert_by_key(
        self,
        resource: str,
        key_field: str,
        key_value: str,
        values: Mapping[str, Any],
        *,
        resolver: LinkResolver | None = None,
        create_first: bool = False,
    ) -> UpsertResult:
        """Create the row with this business key, or PATCH what differs; safe to repeat after any failure.

        Link fields given as :class:`~crmbridge.campaign.links.LinkTo` are resolved to the parent's current PKey.
        A create whose response was lost (``MaybeAppliedError``) or that hit the unique key (PGS-220000) is
        followed by a new lookup, so a retry never creates a duplicate (see :mod:`crmbridge.campaign.upsert`).
        ``create_first`` (one request per new row) is safe only where ``key_field`` is an identification key.
        """
        upsert = KeyedUpsert(self, resource, key_field, key_value)
        return await upsert.run(values, resolver or self.link_resolver(), create_first=create_first)

    def _record_url(self, resource: str, record: Mapping[str, Any] | str) -> str:
        if isinstance(record, str):
            return self._url_of(resource, path_segment(record))
        href = record.get("href")
        if isinstance(href, str) and href:
            return join_url(self.api_url, href)  # follow the href the API gave (§2.2)
        pkey = record.get("PKey")
        if not isinstance(pkey, str) or not pkey:
            raise ValueError(f"a {resource} record without PKey or href cannot be addressed")
        return self._url_of(resource, path_segment(pkey))

    # --- privacy ------------------------------------------------------------------------------------------

    async def create_privacy_request(self, request: PrivacyRequest) -> JsonObject:
        """``POST /privacy/privacyTool`` (§7.1); the answer carries the request's PKey, href and ``status``."""
        response = await self._call(
            "POST", f"{self.api_url}privacy/privacyTool", body=request.body(), idempotent=False, record_key=request.name
        )
        return object_of(response)

    async def privacy_request_status(self, request_name: str) -> str | None:
        """The status of a privacy request by its name (``new``, ``complete``, ``errorDataNotFound``...)."""
        async with aclosing(self._iter_url(f"{self.api_url}privacy/privacyTool")) as rows:
            async for row in rows:
                if row.get("name") == request_name:
                    return str(row.get("status", ""))
        return None

    async def privacy_access_data(self, request: Mapping[str, Any]) -> str:
        """The access file of a ``complete`` access request: a JSON string holding an XML document (§7.1).

        ``request`` is the record :meth:`create_privacy_request` returned (its ``privacyRequestData`` href is used).
        """
        node = request.get("privacyRequestData")
        href = node.get("href") if isinstance(node, Mapping) else None
        if not isinstance(href, str) or not href:
            raise ValueError("the privacy request record has no privacyRequestData href")
        # A POST by the documented shape, but it only reads: repeating it is harmless.
        response = await self._call("POST", join_url(self.api_url, href), body={"name": request.get("name", "")})
        data = json_of(response)
        return data if isinstance(data, str) else json.dumps(data)

    async def _iter_url(self, url: str) -> AsyncGenerator[JsonObject, None]:
        next_url: str | None = f"{url}?{build_query({'_lineCount': self.page_size})}"
        while next_url is not None:
            rows, href = list_page(await self._get_json(next_url), next_url)
            for row in rows:
                yield row
            next_url = join_url(next_url, href) if href else None
