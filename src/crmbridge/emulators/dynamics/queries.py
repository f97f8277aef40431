"""Reads of the Dataverse emulator: collections with query options and paging, single rows, properties, counts.

Paging is keyset paging over (``$orderby`` columns, primary key); the ``$skiptoken`` carries the last row's
values in Dataverse's XML paging cookie (§3.5), so the last page of a million rows costs what the first costs.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote, unquote

from crmbridge.dynamics.odata import PagingCookie, decode_skiptoken, encode_skiptoken, parse_key
from crmbridge.emulators.dynamics.filters import OrderBy, parse_orderby, translate_filter
from crmbridge.emulators.dynamics.protocol import (
    ApiRequest,
    ApiResponse,
    ODataError,
    Prefer,
    invalid_property,
    json_response,
    parse_prefer,
)
from crmbridge.emulators.dynamics.rows import etag, lookup_names, make_serializer, not_found, to_json
from crmbridge.emulators.dynamics.schema import Column, Table
from crmbridge.emulators.dynamics.service import Org
from crmbridge.emulators.dynamics.storage import Row

__all__ = ["MAX_PAGE_SIZE", "find_row", "read_collection", "read_count", "read_property", "read_row"]

MAX_PAGE_SIZE = 5000
COUNT_CAP = 5000
SUPPORTED_OPTIONS = {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken", "$deltatoken"}
KEY_UNSAFE_CHARACTERS = set("/<>*%&:\\?+")
UNSUPPORTED_OPTIONS = {"$skip", "$search", "$format", "$levels"}


def check_options(query: dict[str, str]) -> None:
    for name in query:
        if name == "$apply":
            raise ODataError(501, "0x0", "The emulator does not implement $apply (aggregation).")
        if name in UNSUPPORTED_OPTIONS or (name.startswith("$") and name not in SUPPORTED_OPTIONS):
            # Dataverse does not support $skip/$search/$format (§3.1); status and wording (inferred).
            raise ODataError(400, "0x0", f"The query parameter {name} is not supported")


def select_columns(table: Table, query: dict[str, str]) -> list[Column]:
    text = query.get("$select")
    if not text:
        return list(table.columns.values())
    columns = []
    for name in (n.strip() for n in text.split(",")):
        column = table.column_by_property(name)
        if column is None:
            raise invalid_property(table, name)
        columns.append(column)
    return columns


def context_url(req: ApiRequest, table: Table, columns: list[Column], select_given: bool, suffix: str = "") -> str:
    projection = f"({','.join(c.property_name for c in columns)})" if select_given else ""
    return f"{req.base_url}$metadata#{table.entity_set}{projection}{suffix}"


def page_size(prefer: Prefer) -> int:
    return min(prefer.max_page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)


def read_collection(org: Org, table: Table, req: ApiRequest) -> ApiResponse:
    query = req.query
    check_options(query)
    prefer = parse_prefer(req.header("Prefer"))
    columns = select_columns(table, query)
    where, params = ("1", []) if "$filter" not in query else translate_filter(table, query["$filter"])
    orders = parse_orderby(table, query["$orderby"]) if query.get("$orderby") else []
    orders.append(OrderBy(table.primary_id, orders[-1].descending if orders else False))
    size = page_size(prefer)
    top = _top(query)
    if top is not None and prefer.max_page_size is None:
        size = min(top, MAX_PAGE_SIZE)  # $top is ignored when odata.maxpagesize is sent (§3.5)
    cookie = decode_cookie(query.get("$skiptoken"))
    keyset, keyset_params = keyset_condition(table, orders, cookie)
    order_sql = ", ".join(f"{o.column} {'DESC' if o.descending else 'ASC'}" for o in orders)
    projection = sql_projection(table, columns, orders, bool(query.get("$expand")))
    rows = org.storage.query(
        f"SELECT {projection} FROM {table.sql_name} WHERE ({where}) AND ({keyset}) ORDER BY {order_sql} LIMIT ?",
        [*params, *keyset_params, size + 1],
    )
    more = len(rows) > size and (top is None or prefer.max_page_size is not None)
    rows = rows[:size]
    req.charge("rows_read", len(rows))
    body: dict[str, Any] = {"@odata.context": context_url(req, table, columns, "$select" in query)}
    if query.get("$count") == "true":
        _add_count(org, table, where, params, prefer, body)
    body["value"] = serialize_rows(org, table, rows, columns, prefer, query.get("$expand"), req)
    if more:
        page_number = cookie.page_number + 1 if cookie else 2
        body["@odata.nextLink"] = next_link(req, make_cookie(table, orders, rows, page_number))
    headers = applied_preferences(prefer)
    return json_response(200, body, headers)


def sql_projection(table: Table, columns: list[Column], orders: list[OrderBy], everything: bool = False) -> str:
    """Only the stored columns a page needs: a wide ``SELECT *`` dominates the cost of a 5,000-row page."""
    if everything:
        return "*"
    names = {table.primary_id, "versionnumber", *(o.column for o in orders)}
    for column in columns:
        names.add(column.name)
        if column.type == "Lookup":
            names.add(f"{column.name}__target")
    return ", ".join(sorted(names))


def _top(query: dict[str, str]) -> int | None:
    if "$top" not in query:
        return None
    if not query["$top"].isdigit():
        raise ODataError(400, "0x0", f"Invalid value '{query['$top']}' for $top query option found.")
    return int(query["$top"])


def _add_count(org: Org, table: Table, where: str, params: list[Any], prefer: Prefer, body: dict[str, Any]) -> None:
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {table.sql_name} WHERE ({where}) LIMIT {COUNT_CAP + 1})"
    total = int(org.storage.scalar(sql, params))
    body["@odata.count"] = min(total, COUNT_CAP)  # capped at 5,000 (§3.6)
    if prefer.wants_annotation("Microsoft.Dynamics.CRM.totalrecordcount"):
        body["@Microsoft.Dynamics.CRM.totalrecordcount"] = min(total, COUNT_CAP)
    if prefer.wants_annotation("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"):
        body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = total > COUNT_CAP


def applied_preferences(prefer: Prefer, *extra: str) -> list[tuple[str, str]]:
    applied = list(extra)
    if prefer.max_page_size is not None:
        applied.append(f"odata.maxpagesize={page_size(prefer)}")
    if prefer.annotations:
        applied.append(f'odata.include-annotations="{prefer.annotations}"')
    return [("Preference-Applied", ",".join(applied))] if applied else []


def serialize_rows(
    org: Org, table: Table, rows: list[Row], columns: list[Column], prefer: Prefer, expand: str | None, req: ApiRequest
) -> list[dict[str, Any]]:
    names = lookup_names(org.storage, table, rows, columns) if prefer.annotations else {}
    serialize = make_serializer(table, columns, prefer, names)
    out = [serialize(row) for row in rows]
    if expand:
        _expand(org, table, rows, out, expand, prefer, req)
    return out


# --- paging cookies -----------------------------------------------------------------------------------------


def cookie_value(column: Column, value: Any) -> str | None:
    if value is None:
        return None
    if column.type in ("Uniqueidentifier", "Lookup"):
        return "{" + str(value).upper() + "}"  # Dataverse writes braced upper-case GUIDs in cookies (§3.5)
    return str(value)


def _stored_value(column: Column, text: str | None) -> Any:
    if text is None:
        return None
    if column.type in ("Uniqueidentifier", "Lookup"):
        return str(uuid.UUID(text.strip("{}")))
    if column.sql_type == "INTEGER":
        return int(text)
    if column.sql_type == "REAL":
        return float(text)
    return text


def make_cookie(
    table: Table, orders: list[OrderBy], rows: list[Row], page_number: int, tracking: bool = False, extra: Any = ()
) -> PagingCookie:
    columns = []
    for order in orders:
        column = table.columns[order.column]
        columns.append(
            (order.column, cookie_value(column, rows[-1][order.column]), cookie_value(column, rows[0][order.column]))
        )
    return PagingCookie(page_number, tuple(columns), tracking, tuple(extra))


def decode_cookie(token: str | None) -> PagingCookie | None:
    if token is None:
        return None
    try:
        return decode_skiptoken(token)
    except ValueError as exc:
        # Malformed paging cookie (inferred wording).
        raise ODataError(400, "0x80040203", "Invalid paging cookie in $skiptoken.") from exc


def keyset_condition(table: Table, orders: list[OrderBy], cookie: PagingCookie | None) -> tuple[str, list[Any]]:
    """Rows strictly after the cookie's last row in the (nulls-first ascending) order."""
    if cookie is None:
        return "1", []
    last = {name: value for name, value, _first in cookie.columns}
    if [o.column for o in orders] != list(last):
        raise ODataError(400, "0x80040203", "The paging cookie does not match the query's ordering.")  # (inferred)
    alternatives: list[str] = []
    params: list[Any] = []
    for index, order in enumerate(orders):
        parts: list[str] = []
        for previous in orders[:index]:
            value = _stored_value(table.columns[previous.column], last[previous.column])
            if value is None:
                parts.append(f"{previous.column} IS NULL")
            else:
                parts.append(f"{previous.column} = ?")
                params.append(value)
        value = _stored_value(table.columns[order.column], last[order.column])
        if order.descending:
            parts.append("0" if value is None else f"({order.column} < ? OR {order.column} IS NULL)")
        else:
            parts.append(f"{order.column} IS NOT NULL" if value is None else f"{order.column} > ?")
        if value is not None:
            params.append(value)
        alternatives.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(alternatives), params


def next_link(req: ApiRequest, cookie: PagingCookie) -> str:
    """The request URL with its options kept verbatim and a new ``$skiptoken`` (§3.5)."""
    kept = [p for p in req.query_string.split("&") if p and not p.startswith(("$skiptoken=", "%24skiptoken="))]
    token = quote(encode_skiptoken(cookie), safe="=/")
    return f"{req.base_url}{req.path}?{'&'.join([*kept, f'$skiptoken={token}'])}"


# --- $expand -------------------------------------------------------------------------------------------------

_EXPAND_ITEM = re.compile(r"([A-Za-z0-9_]+)(?:\((.*)\))?$")


def _split_top_level(text: str, separator: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == separator and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def _expand(
    org: Org, table: Table, rows: list[Row], out: list[dict[str, Any]], text: str, prefer: Prefer, req: ApiRequest
) -> None:
    for item in _split_top_level(text, ","):
        match = _EXPAND_ITEM.match(item)
        found = table.navigation(match.group(1)) if match else None
        if match is None or found is None:
            name = match.group(1) if match else item
            raise invalid_property(table, name)
        column, target_name = found
        target = org.storage.schema.tables[target_name]
        options = dict(o.split("=", 1) for o in _split_top_level(match.group(2) or "", ";") if "=" in o)
        if set(options) - {"$select"}:
            raise ODataError(501, "0x0", "The emulator supports only $select inside $expand.")
        target_columns = select_columns(target, options)
        ids = [r[column.name] for r in rows if r.get(f"{column.name}__target") == target_name and r[column.name]]
        related = _rows_by_id(org, target, ids)
        req.charge("rows_read", len(related))
        for row, body in zip(rows, out, strict=True):
            child = related.get(row[column.name]) if row.get(f"{column.name}__target") == target_name else None
            body[match.group(1)] = None if child is None else to_json(target, child, target_columns, prefer)


def _rows_by_id(org: Org, table: Table, ids: list[str]) -> dict[str, Row]:
    found: dict[str, Row] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        sql = f"SELECT * FROM {table.sql_name} WHERE {table.primary_id} IN ({', '.join('?' for _ in chunk)})"
        found.update({r[table.primary_id]: r for r in org.storage.query(sql, chunk)})
    return found


# --- single rows --------------------------------------------------------------------------------------------


def invalid_key(table: Table) -> ODataError:
    name = f"Microsoft.Dynamics.CRM.{table.logical_name}"
    return ODataError(
        400,
        "0x80060888",
        f"The key in the request URI is not valid for resource '{name}'. Ensure that the names and number of key"
        f" properties match the declared or alternate key properties for the resource '{name}'.",
    )


def key_values(table: Table, key_text: str) -> tuple[str | None, dict[str, Any]]:
    """(primary id, None) or (None, alternate key values) for the text inside ``set(...)`` (§5.4)."""
    try:
        key = parse_key(key_text)
    except ValueError as exc:
        raise invalid_key(table) from exc
    if isinstance(key, str):
        return key, {}
    if set(key) == {table.primary_id}:
        return str(uuid.UUID(str(key[table.primary_id]))), {}
    for declared in table.keys:
        if set(declared.attributes) == set(key):
            if any(isinstance(v, str) and set(v) & KEY_UNSAFE_CHARACTERS for v in key.values()):
                # Documented: such key values do not work in URLs (§5.4); the exact failure is (inferred).
                raise ODataError(
                    400, "0x80060888", "Alternate key values with / < > * % & : \\ ? + are not supported in the URL."
                )
            return None, key
    raise invalid_key(table)


def find_row(org: Org, table: Table, key_text: str) -> tuple[Row | None, str | None, dict[str, Any]]:
    row_id, alternate = key_values(table, key_text)
    if row_id is not None:
        return org.storage.get(table, row_id), row_id, {}
    return org.storage.find_by_values(table, alternate), None, alternate


def read_row(org: Org, table: Table, key_text: str, req: ApiRequest) -> ApiResponse:
    query = req.query
    check_options(query)
    prefer = parse_prefer(req.header("Prefer"))
    row, row_id, _alternate = find_row(org, table, key_text)
    if row is None:
        raise not_found(table, row_id or unquote(key_text))
    req.charge("rows_read", 1)
    if_none_match = req.header("If-None-Match")
    if if_none_match == etag(row) and "$expand" not in query and not prefer.annotations:
        return ApiResponse(304, [("ETag", etag(row))])  # conditional GET (§2.7)
    columns = select_columns(table, query)
    body = {"@odata.context": context_url(req, table, columns, "$select" in query, "/$entity")}
    body.update(serialize_rows(org, table, [row], columns, prefer, query.get("$expand"), req)[0])
    return json_response(200, body, [("ETag", etag(row)), *applied_preferences(prefer)])


def read_property(org: Org, table: Table, key_text: str, name: str, req: ApiRequest) -> ApiResponse:
    row, row_id, _alternate = find_row(org, table, key_text)
    if row is None:
        raise not_found(table, row_id or unquote(key_text))
    column = table.column_by_property(name)
    if column is None:
        raise invalid_property(table, name)
    value = to_json(table, row, [column], Prefer())[column.property_name if column.name != table.primary_id else name]
    if value is None:
        return ApiResponse(204)
    context = f"{req.base_url}$metadata#{table.entity_set}({row[table.primary_id]})/{name}"
    return json_response(200, {"@odata.context": context, "value": value})


def read_count(org: Org, table: Table, req: ApiRequest) -> ApiResponse:
    total = int(org.storage.scalar(f"SELECT count(*) FROM (SELECT 1 FROM {table.sql_name} LIMIT {COUNT_CAP + 1})"))
    # A bare number as text/plain, preceded by a UTF-8 BOM like the real service (§2.6, §3.6).
    body = "\ufeff" + str(min(total, COUNT_CAP))
    return ApiResponse(200, [("Content-Type", "text/plain")], body.encode("utf-8"))
