"""Change tracking of the Dataverse emulator (§4): full read with a delta link, delta reads with tombstones.

A delta token is ``<version>!<MM/dd/yyyy HH:mm:ss>``: the highest version the reader has seen and when the
token was issued. A read is bounded by the version at its first page (the snapshot, kept in the paging cookie),
so a change made while a client pages is delivered by the next delta, never lost.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from crmbridge.dynamics.odata import PagingCookie, decode_delta_token, encode_delta_token, format_datetime
from crmbridge.emulators.dynamics.filters import OrderBy
from crmbridge.emulators.dynamics.protocol import ApiRequest, ApiResponse, ODataError, json_response, parse_prefer
from crmbridge.emulators.dynamics.queries import (
    applied_preferences,
    check_options,
    context_url,
    decode_cookie,
    keyset_condition,
    make_cookie,
    next_link,
    page_size,
    select_columns,
    serialize_rows,
    sql_projection,
)
from crmbridge.emulators.dynamics.schema import Table
from crmbridge.emulators.dynamics.service import Org

__all__ = ["FORBIDDEN_WITH_TRACKING", "is_change_tracking_request", "read_changes"]

FORBIDDEN_WITH_TRACKING = ("$filter", "$orderby", "$expand", "$top")


def is_change_tracking_request(req: ApiRequest) -> bool:
    """Track-changes preference, a delta token, or a nextLink whose paging cookie says ``istracking="True"``."""
    query = req.query
    tracking_page = 'istracking="True"' in query.get("$skiptoken", "")
    return parse_prefer(req.header("Prefer")).track_changes or "$deltatoken" in query or tracking_page


def read_changes(org: Org, table: Table, req: ApiRequest) -> ApiResponse:
    query = req.query
    check_options(query)
    for option in FORBIDDEN_WITH_TRACKING:
        if option in query:
            # Message from §4.4; status 400 and code (inferred).
            raise ODataError(
                400, "0x0", f"The {option} query parameter isn't supported when Change Tracking is enabled."
            )
    cookie = decode_cookie(query.get("$skiptoken"))
    if "$deltatoken" in query:
        return _delta_page(org, table, req, query["$deltatoken"], cookie)
    return _initial_page(org, table, req, cookie)


def _snapshot(org: Org, cookie: PagingCookie | None) -> int:
    extra = dict(cookie.extra) if cookie else {}
    return int(extra.get("snapshot", org.storage.version))


def _delta_link(org: Org, req: ApiRequest, snapshot: int) -> str:
    kept = [
        p
        for p in req.query_string.split("&")
        if p and not p.startswith(("$skiptoken=", "%24skiptoken=", "$deltatoken=", "%24deltatoken="))
    ]
    # Lower-case escapes as in the documented example: 919042%2108%2f22%2f2017%2008%3a10%3a44 (§4.2).
    token = re.sub(
        r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(encode_delta_token(snapshot, org.clock.now()), safe="")
    )
    return f"{req.base_url}{req.path}?{'&'.join([*kept, f'$deltatoken={token}'])}"


def _initial_page(org: Org, table: Table, req: ApiRequest, cookie: PagingCookie | None) -> ApiResponse:
    prefer = parse_prefer(req.header("Prefer"))
    columns = select_columns(table, req.query)
    snapshot = _snapshot(org, cookie)
    orders = [OrderBy(table.primary_id, False)]
    keyset, params = keyset_condition(table, orders, cookie)
    size = page_size(prefer)
    projection = sql_projection(table, columns, orders)
    rows = org.storage.query(
        f"SELECT {projection} FROM {table.sql_name} WHERE {keyset} ORDER BY {table.primary_id} LIMIT ?",
        [*params, size + 1],
    )
    more, rows = len(rows) > size, rows[:size]
    req.charge("rows_read", len(rows))
    body: dict[str, Any] = {
        "@odata.context": context_url(req, table, columns, "$select" in req.query),
        "value": serialize_rows(org, table, rows, columns, prefer, None, req),
    }
    if more:
        page = cookie.page_number + 1 if cookie else 2
        body["@odata.nextLink"] = next_link(
            req, make_cookie(table, orders, rows, page, tracking=True, extra=[("snapshot", str(snapshot))])
        )
    elif table.change_tracking:
        # Without change tracking on the table there is simply no delta link (§4.1, community).
        body["@odata.deltaLink"] = _delta_link(org, req, snapshot)
    extra = ("odata.track-changes",) if table.change_tracking else ()
    return json_response(200, body, applied_preferences(prefer, *extra))


def _check_token(org: Org, token: str) -> int:
    try:
        version, issued = decode_delta_token(token)
    except ValueError as exc:
        raise ODataError(400, "0x0", f"The delta token '{token}' is not valid.") from exc  # (inferred)
    retention = timedelta(days=org.expire_change_tracking_in_days)
    if issued < org.clock.now() - retention:
        # Status and code undocumented (§4.5, §11.1); message as reported by users (inferred).
        raise ODataError(
            400, "0x0", "Version stamp associated with the client has expired. Please perform a full sync."
        )
    return version


def _delta_page(org: Org, table: Table, req: ApiRequest, token: str, cookie: PagingCookie | None) -> ApiResponse:
    if not table.change_tracking:
        raise ODataError(400, "0x0", f"Change tracking is not enabled for the entity '{table.logical_name}'.")
    since = _check_token(org, token)
    prefer = parse_prefer(req.header("Prefer"))
    columns = select_columns(table, req.query)
    snapshot = _snapshot(org, cookie)
    extra = dict(cookie.extra) if cookie else {}
    phase, after = extra.get("phase", "rows"), int(extra.get("after", since))
    size = page_size(prefer)
    values: list[dict[str, Any]] = []
    if phase == "rows":
        projection = sql_projection(table, columns, [])
        rows = org.storage.query(
            f"SELECT {projection} FROM {table.sql_name} WHERE versionnumber > ? AND versionnumber <= ?"
            " ORDER BY versionnumber LIMIT ?",
            [after, snapshot, size + 1],
        )
        if len(rows) > size:
            rows = rows[:size]
            values = serialize_rows(org, table, rows, columns, prefer, None, req)
            req.charge("rows_read", len(rows))
            return _delta_response(org, req, table, values, snapshot, ("rows", rows[-1]["versionnumber"]), cookie)
        values = serialize_rows(org, table, rows, columns, prefer, None, req)
        req.charge("rows_read", len(rows))
        phase, after = "deleted", since
    deleted = org.storage.query(
        "SELECT id, version FROM tombstones WHERE tbl = ? AND version > ? AND version <= ? ORDER BY version LIMIT ?",
        [table.logical_name, after, snapshot, size - len(values) + 1],
    )
    room = size - len(values)
    context = f"{req.base_url}$metadata#{table.entity_set}/$deletedEntity"
    values += [{"@odata.context": context, "id": d["id"], "reason": "deleted"} for d in deleted[:room]]
    position = ("deleted", deleted[room - 1]["version"]) if len(deleted) > room else None
    return _delta_response(org, req, table, values, snapshot, position, cookie)


def _delta_response(
    org: Org,
    req: ApiRequest,
    table: Table,
    values: list[dict[str, Any]],
    snapshot: int,
    position: tuple[str, int] | None,
    cookie: PagingCookie | None,
) -> ApiResponse:
    prefer = parse_prefer(req.header("Prefer"))
    columns = select_columns(table, req.query)
    body: dict[str, Any] = {"@odata.context": context_url(req, table, columns, "$select" in req.query, "/$delta")}
    body["value"] = values
    if position is None:
        body["@odata.deltaLink"] = _delta_link(org, req, snapshot)
    else:
        page = cookie.page_number + 1 if cookie else 2
        extra = (("snapshot", str(snapshot)), ("phase", position[0]), ("after", str(position[1])))
        paging = PagingCookie(page, (("versionnumber", str(position[1]), None),), True, extra)
        body["@odata.nextLink"] = next_link(req, paging)
    return json_response(200, body, applied_preferences(prefer))


def purge_expired_tombstones(org: Org) -> int:
    """Drop tombstones older than the retention; a token that old is refused anyway."""
    cutoff = org.clock.now() - timedelta(days=org.expire_change_tracking_in_days)
    return org.storage.purge_tombstones(format_datetime(cutoff))
