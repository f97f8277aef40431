"""The Adobe I/O Events journaling API (§A) over the hub's event store, as Starlette routes.

``GET /events/organizations/{consumerOrgId}/integrations/{credentialId}/{registrationId}`` with ``since``,
``latest``, ``seek`` and ``limit``; 200 with ``events`` and ``_page``, 204 with ``retry-after`` at the end of
the journal, ``Link`` headers, 410 for an expired position, and the sibling ``…/validate?since=``.
"""

from __future__ import annotations

import hmac
import inspect
import json
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from crmbridge.emulators.campaign.events.hub import EventsHub
from crmbridge.emulators.campaign.events.journal_query import (
    JournalQuery,
    QueryError,
    format_position,
    parse_query,
)
from crmbridge.emulators.campaign.events.payload import addressed_to
from crmbridge.emulators.campaign.events.store import JournalRow

__all__ = ["BearerCheck", "JournalRegistration", "TokenInfo", "journal_routes"]

JOURNAL_PATH = "/events/organizations/{consumer_org}/integrations/{credential_id}/{registration_id}"
MAX_RESPONSE_BYTES = 1_500_000  # §A.4: a response is capped at 1.5 MB
DEFAULT_LIMIT = 100  # §A.4 only says "a default size" (inferred)


class TokenInfo(Protocol):
    """What the journal needs from a verified IMS token: the client it was issued to and its scopes."""

    @property
    def client_id(self) -> str: ...

    @property
    def scopes(self) -> Collection[str]: ...


# The gateway's bearer check, sync or async: the token's details, or the response refusing the caller.
BearerCheck = Callable[[Request], "Awaitable[TokenInfo | Response] | TokenInfo | Response"]


@dataclass(frozen=True, slots=True)
class JournalRegistration:
    """The ids of one journal registration (§A.1) and the credential allowed to read it."""

    consumer_org_id: str  # numeric consumer org id, in the path
    credential_id: str  # in the path's integrations/ segment
    registration_id: str
    client_id: str  # = API key; also the events' recipientclientid
    ims_org_id: str  # …@AdobeOrg, in x-ims-org-id

    @property
    def path(self) -> str:
        return f"/events/organizations/{self.consumer_org_id}/integrations/{self.credential_id}/{self.registration_id}"


def journal_routes(
    verify_bearer: BearerCheck,
    hub: EventsHub,
    registration: JournalRegistration,
    *,
    retry_after_s: int = 10,
    default_limit: int = DEFAULT_LIMIT,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    required_scope: str | None = "adobeio_api",
) -> list[BaseRoute]:
    """Routes serving ``registration``'s journal; other registrations' URLs answer 404 (inferred)."""
    answer = _Answerer(hub, registration, retry_after_s, default_limit, max_response_bytes)

    async def read(request: Request) -> Response:
        refused = await _check_caller(request, verify_bearer, registration, required_scope)
        if refused is not None:
            return refused
        params = dict(request.query_params)
        if request.url.path.endswith("/validate") and "since" not in params:
            return _bad_request("since is required")  # §A.2: the OpenAPI marks it required
        hub.release_due()
        try:
            query = parse_query(params, hub.store.journal_id)
        except QueryError as error:
            return _bad_request(str(error))
        return answer(request, query)

    return [
        Route(JOURNAL_PATH, read, methods=["GET"]),
        Route(JOURNAL_PATH + "/validate", read, methods=["GET"]),
    ]


async def _check_caller(
    request: Request, verify_bearer: BearerCheck, registration: JournalRegistration, required_scope: str | None
) -> Response | None:
    """Gateway order of campaign-standard-api.md §1.5: token, API key, then scope, org and path."""
    checked = verify_bearer(request)
    token = await checked if inspect.isawaitable(checked) else checked
    if isinstance(token, Response):
        return token
    api_key = request.headers.get("x-api-key")
    if not api_key:
        return JSONResponse({"error_code": "403000", "message": "Api Key is required"}, status_code=403)
    matches_token = hmac.compare_digest(api_key.encode(), token.client_id.encode())
    if not matches_token or api_key != registration.client_id:
        return JSONResponse({"error_code": "403003", "message": "Api Key is invalid"}, status_code=403)
    if required_scope and required_scope not in token.scopes:
        # §A.3: the journal needs the I/O Management API scope; §A.7 suggests 403 (inferred body)
        return JSONResponse(
            {"error_code": "403", "message": f"Token lacks the {required_scope} scope"}, status_code=403
        )
    # §A.3: optional in the OpenAPI, but every guide example sends it; refusing a wrong or missing one
    # catches client bugs early (inferred)
    if request.headers.get("x-ims-org-id") != registration.ims_org_id:
        return JSONResponse({"error_code": "403", "message": "x-ims-org-id does not match"}, status_code=403)
    ids = request.path_params
    if (ids["consumer_org"], ids["credential_id"], ids["registration_id"]) != (
        registration.consumer_org_id,
        registration.credential_id,
        registration.registration_id,
    ):
        return PlainTextResponse("Journal not found: check your journal URL", status_code=404)  # (inferred)
    return None


class _Answerer:
    """Turns a parsed query into the journal's 200, 204, 400 or 410 response."""

    def __init__(
        self,
        hub: EventsHub,
        registration: JournalRegistration,
        retry_after_s: int,
        default_limit: int,
        max_response_bytes: int,
    ) -> None:
        self.hub = hub
        self.registration = registration
        self.retry_after_s = retry_after_s
        self.default_limit = default_limit
        self.max_response_bytes = max_response_bytes

    def __call__(self, request: Request, query: JournalQuery) -> Response:
        store = self.hub.store
        if query.start == "since":
            refused = self._refuse_position(request, query.since_seq or 0)
            if refused is not None:
                return refused
        after = self._start_after(query)
        rows = self._capped(store.read_after(after, query.limit or self.default_limit))
        links = _Links(self.registration.path, store.journal_id, query.limit)
        if not rows:
            # §A.7: at the end of the journal the next link is the request itself; after latest/seek it is the
            # position reached, so following it does not jump again (inferred)
            next_target = links.since(after) if query.start in ("latest", "seek") else _relative(request)
            response = Response(status_code=204, headers={"retry-after": str(self.retry_after_s)})
            response.headers.append("link", f'<{next_target}>; rel="next"')
            response.headers.append("link", f'<{links.validate(after)}>; rel="validate"')
            return response
        response = Response(self._body(rows), status_code=200, media_type="application/json")
        for rel, target in links.all(rows[-1].seq):
            response.headers.append("link", f'<{target}>; rel="{rel}"')
        return response

    def _refuse_position(self, request: Request, seq: int) -> Response | None:
        store = self.hub.store
        position = request.query_params["since"]
        expired_through = store.purged_through()
        if expired_through and seq <= expired_through:
            return PlainTextResponse(f"Events at position {position} have expired.", status_code=410)  # §A.7
        if seq > store.head_seq():
            return _bad_request(f"Unknown position {position!r}")  # (inferred)
        return None

    def _start_after(self, query: JournalQuery) -> int:
        """The position to read after: the events returned are the ones published later."""
        store = self.hub.store
        if query.start == "since":
            return query.since_seq or 0
        if query.start == "latest":
            return store.head_seq()
        if query.start == "seek":
            return store.last_seq_published_before(self.hub.clock() + (query.seek or timedelta(0)))
        return store.purged_through()

    def _capped(self, rows: list[JournalRow]) -> list[JournalRow]:
        """At least one event, then as many as fit in the response cap (§A.4: 1.5 MB)."""
        kept: list[JournalRow] = []
        size = 0
        for row in rows:
            size += len(row.envelope_json) + 200  # the position and the separators around each event
            if kept and size > self.max_response_bytes:
                break
            kept.append(row)
        return kept

    def _body(self, rows: list[JournalRow]) -> str:
        journal_id, client_id = self.hub.store.journal_id, self.registration.client_id
        positions = [json.dumps(format_position(journal_id, row.seq)) for row in rows]
        events = ",".join(
            f'{{"position": {position}, "event": {addressed_to(row.envelope_json, client_id)}}}'
            for position, row in zip(positions, rows, strict=True)
        )
        page = json.dumps({"last": json.loads(positions[-1]), "count": len(rows)})
        return f'{{"events": [{events}], "_page": {page}}}'


class _Links:
    """The relations the JS SDK fixtures model (§A.6), relative to the journal root as the guide shows them."""

    def __init__(self, root: str, journal_id: str, limit: int | None) -> None:
        self.root, self.journal_id, self.limit = root, journal_id, limit

    def since(self, seq: int) -> str:
        params = {"since": format_position(self.journal_id, seq)}
        if self.limit is not None:
            params["limit"] = str(self.limit)  # §A.4: limit is carried forward into next links
        return f"{self.root}?{urlencode(params, safe=':')}"

    def validate(self, seq: int) -> str:
        return f"{self.root}/validate?since={quote(format_position(self.journal_id, seq), safe=':')}"

    def all(self, last_seq: int) -> list[tuple[str, str]]:
        return [
            ("events", self.root),
            ("next", self.since(last_seq)),
            ("latest", f"{self.root}?latest=true"),
            ("page", f"{self.root}?since={{position}}&limit={{count}}"),
            ("seek", f"{self.root}?seek={{duration}}&limit={{count}}"),
            ("validate", self.validate(last_seq)),
        ]


def _relative(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _bad_request(message: str) -> Response:
    return PlainTextResponse(message, status_code=400)  # §A.7: 400 is undocumented; body shape (inferred)
