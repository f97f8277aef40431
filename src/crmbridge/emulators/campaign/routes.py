"""The REST API under ``/{ORGANIZATION}/campaign/``: path dispatch, lists, items and writes (§2-§4).

Paths are parsed by hand because ACS chains filters as path segments (``/service/byChannel/byText``) and
accepts PKeys, custom keys, field names and ``_count`` in the same position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crmbridge.emulators.campaign import errors, history, metadata, subscriptions
from crmbridge.emulators.campaign.context import EmulatorContext
from crmbridge.emulators.campaign.filters import filter_sql, is_filter, parse_order
from crmbridge.emulators.campaign.gateway import check_gateway
from crmbridge.emulators.campaign.keys import decode_cursor, encode_cursor
from crmbridge.emulators.campaign.resources import RowView, finish_write, parse_body, serialize
from crmbridge.emulators.campaign.schema import API_CUSTOM, API_EXT, API_STANDARD, FieldSpec, ResourceSpec
from crmbridge.emulators.campaign.storage import DuplicateKey, Query

__all__ = ["Call", "campaign_routes"]

APIS = (API_STANDARD, API_EXT, API_CUSTOM)
DEFAULT_LINE_COUNT = 25  # §3.2


@dataclass(frozen=True, slots=True)
class Call:
    """One API request after the gateway: where it came from and which API it addresses."""

    request: Request
    context: EmulatorContext
    base: str  # https://host/<ORG>/campaign
    api: str

    def href(self, resource: str, pkey: str, api: str | None = None) -> str:
        return f"{self.base}/{api or self.api}/{resource}/{pkey}"

    def view(self, spec: ResourceSpec, row: dict[str, Any], *, with_href: bool) -> RowView:
        pkey = self.context.pkeys.encode(spec.name, int(row["id"]))
        return RowView(
            api=self.api,
            pkey=pkey,
            href=self.href(spec.name, pkey) if with_href else None,
            collection_base=self.href(spec.name, pkey),
            flag_timestamps=self.context.settings.flag_timestamps,
            today=self.context.now().date(),
            link_object=lambda link, target_id: self.link_object(link, target_id),
        )

    def link_object(self, link: FieldSpec, target_id: int) -> dict[str, Any]:
        target = self.context.schema.resources[str(link.target)]
        pkey = self.context.pkeys.encode(target.name, target_id)
        row = self.context.storage.get(target, target_id, include_hidden=True)
        title = ""
        if row is not None:
            title = str(serialize(target, row, self.view(target, row, with_href=False)).get("title", ""))
            title = title or str(row.get(target.custom_key or "", ""))
        return {"PKey": pkey, "href": self.href(target.name, pkey), "title": title}

    def resolve_link(self, resource: ResourceSpec, link: FieldSpec, pkey: str) -> int:
        target = self.context.schema.resources[str(link.target)]
        target_id = self.context.pkeys.decode(target.name, pkey)
        if target_id is None:
            raise errors.invalid_pkey(pkey, target.label, target.schema)
        if not self.context.storage.exists(target, target_id):
            raise errors.not_found(target.xtk_label, pkey)
        return target_id

    def serialize(self, spec: ResourceSpec, row: dict[str, Any], *, with_href: bool) -> dict[str, Any]:
        return serialize(spec, row, self.view(spec, row, with_href=with_href))


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        raise errors.CampaignError(500, f"{errors.RST_PREFIX} Unable to parse the JSON body") from None


# --- lists ---------------------------------------------------------------------------------------------------


def _line_count(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LINE_COUNT
    if not raw.isdigit() or int(raw) < 1:
        raise errors.bad_value("_lineCount", raw)
    return int(raw)


def _list(call: Call, spec: ResourceSpec, filters: list[str], projection: str | None = None) -> Response:
    params = call.request.query_params
    ctx = call.context
    line_count = _line_count(params.get("_lineCount"))
    column, descending = parse_order(spec, call.api, params.get("_order"))
    fsql = filter_sql(spec, call.api, filters, params, email_case_sensitive=ctx.settings.email_filter_case_sensitive)
    after = None
    if params.get("_lineStart"):
        after = decode_cursor(params["_lineStart"])
        if after is None:
            raise errors.bad_value("_lineStart", params["_lineStart"])
    query = Query(fsql.conditions, fsql.params, column, descending, after, line_count + 1)
    rows = ctx.storage.select(spec, query)
    page, extra = rows[:line_count], rows[line_count:]
    if projection is None:
        content: list[Any] = [call.serialize(spec, row, with_href=True) for row in page]
    elif projection == "PKey":
        content = [ctx.pkeys.encode(spec.name, int(row["id"])) for row in page]
    else:
        content = [row[projection] for row in page]
    path = str(call.request.url).split("?", 1)[0].rstrip("/")
    kept = [(k, v) for k, v in params.multi_items() if k not in ("_lineStart",)]
    count_query = [(k, v) for k, v in params.multi_items() if not k.startswith("_") or k == "_lineStart"]
    count_base = path.rsplit("/", 1)[0] if projection is not None else path
    body: dict[str, Any] = {"content": content, "count": {"href": _url(f"{count_base}/_count", count_query)}}
    # Above XtkBigTableThreshold `next` needs _forcePagination=true (§3.2); serverSidePagination=false then
    # says the limit was reached (inferred from an authoring comment).
    big = ctx.storage.table_size(spec) > ctx.settings.big_table_threshold
    forced = params.get("_forcePagination", "").lower() == "true"
    if extra and (not big or forced):
        cursor = encode_cursor([extra[0][column], extra[0]["id"]])
        kept = [(k, v) for k, v in kept if k != "_lineCount"] + [("_lineCount", str(line_count))]
        body["next"] = {"href": _url(path, [*kept, ("_lineStart", cursor)])}
    body["serverSidePagination"] = not (big and not forced)
    return JSONResponse(body)


def _url(path: str, query: list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(query, quote_via=quote)}" if query else path


def _count(call: Call, spec: ResourceSpec, filters: list[str]) -> Response:
    ctx = call.context
    fsql = filter_sql(
        spec,
        call.api,
        filters,
        call.request.query_params,
        email_case_sensitive=ctx.settings.email_filter_case_sensitive,
    )
    return JSONResponse({"count": ctx.storage.count(spec, fsql.conditions, fsql.params)})


# --- items ---------------------------------------------------------------------------------------------------


async def _create(call: Call, spec: ResourceSpec) -> Response:
    columns = parse_body(spec, call.api, await _json_body(call.request), call.resolve_link)
    values = finish_write(spec, columns, None, call.context.now())
    try:
        row_id = call.context.storage.insert(spec, values)
    except DuplicateKey as exc:
        raise errors.duplicate_key(spec.xtk_label, str(values.get(spec.custom_key or "", "")), exc.index) from None
    row = call.context.storage.get(spec, row_id, include_hidden=True)
    assert row is not None
    return JSONResponse(call.serialize(spec, row, with_href=True), status_code=201)


async def _item(call: Call, spec: ResourceSpec, row_id: int, key: str, by_custom_key: bool) -> Response:
    storage = call.context.storage
    method = call.request.method
    if method == "GET":
        row = storage.get(spec, row_id)
        if row is None:
            raise errors.not_found(spec.xtk_label, key)
        return JSONResponse(call.serialize(spec, row, with_href=False))
    # Writes reach a child hidden by a "1 cardinality" link, so a client can repair the link (inferred).
    existing = storage.get(spec, row_id, include_hidden=True)
    if existing is None:
        raise errors.not_found(spec.xtk_label, key)
    pkey = call.context.pkeys.encode(spec.name, row_id)
    if method == "DELETE":
        storage.delete(spec, row_id)
        return Response(status_code=200)  # 200 per the docs; the body is undocumented (§4.3)
    if method != "PATCH":
        raise errors.unknown_resource()
    columns = parse_body(spec, call.api, await _json_body(call.request), call.resolve_link)
    new_key = columns.get(spec.custom_key or "")
    if by_custom_key and new_key is not None and new_key != key:
        raise errors.key_change(spec.name, key, str(new_key))
    values = finish_write(spec, columns, existing, call.context.now())
    try:
        storage.update(spec, row_id, values)
    except DuplicateKey as exc:
        raise errors.duplicate_key(spec.xtk_label, str(new_key), exc.index) from None
    return JSONResponse({"PKey": pkey, "href": call.href(spec.name, pkey)})


def _projection_field(spec: ResourceSpec, api: str, name: str) -> str | None:
    if name == "PKey":
        return "PKey"
    field_spec = next((f for f in spec.visible_fields(api) if f.name == name), None)
    if field_spec is None or not field_spec.stored or field_spec.type in ("link", "item"):
        return None
    return field_spec.column


async def _resource(call: Call, spec: ResourceSpec, rest: list[str]) -> Response:
    method, ctx = call.request.method, call.context
    if not rest:
        if method == "POST":
            return await _create(call, spec)
        if method == "GET":
            return _list(call, spec, [])
        raise errors.unknown_resource()  # PUT/PATCH/DELETE on a collection: no such operation (inferred)
    first = rest[0]
    if first.startswith("@"):
        row_id = ctx.pkeys.decode(spec.name, first)
        if row_id is None:
            raise errors.invalid_pkey(first, spec.label, spec.schema)
        if len(rest) > 1:
            return await subscriptions.dispatch(call, spec, row_id, rest[1:])
        return await _item(call, spec, row_id, first, by_custom_key=False)
    filters = []
    while rest and is_filter(spec, call.api, rest[0]):
        filters.append(rest.pop(0))
    if method == "GET" and rest == ["_count"]:
        return _count(call, spec, filters)
    if method == "GET" and len(rest) == 1 and (projection := _projection_field(spec, call.api, rest[0])):
        return _list(call, spec, filters, projection)
    if filters and not rest and method == "GET":
        return _list(call, spec, filters)
    if not filters and spec.custom_key and (call.api != API_STANDARD or spec.raw_key_on_standard_api):
        row_id_by_key = ctx.storage.find_by_key(spec, first)
        if row_id_by_key is None:
            raise errors.not_found(spec.xtk_label, first)
        if len(rest) > 1:
            return await subscriptions.dispatch(call, spec, row_id_by_key, rest[1:])
        return await _item(call, spec, row_id_by_key, first, by_custom_key=True)
    raise errors.unknown_resource()


async def _dispatch(call: Call, segments: list[str]) -> Response:
    rest = segments[1:]
    if call.api == API_EXT and not rest and call.request.method == "GET":
        return JSONResponse(metadata.root_listing(call.context.schema, call.api, call.base))
    if not rest:
        raise errors.unknown_resource()
    if rest[0] == "resourceType" and call.request.method == "GET":
        schema = call.context.schema
        if len(rest) == 2:
            return JSONResponse(metadata.resource_type(schema, call.api, rest[1], call.base))
        if len(rest) == 3 and rest[2] == "filters":
            return JSONResponse(metadata.filters_document(schema, call.api, rest[1]))
        raise errors.unknown_resource()
    if rest[0] == "history" and call.api == API_STANDARD:
        return await history.dispatch(call, rest[1:])
    spec = call.context.schema.resource_for(call.api, rest[0])
    if spec is None:
        raise errors.unknown_resource()
    return await _resource(call, spec, rest[1:])


async def campaign_endpoint(request: Request) -> Response:
    organization = request.path_params["org"]
    verdict = check_gateway(request, organization)
    if isinstance(verdict, Response):
        return verdict
    segments = [s for s in request.path_params.get("path", "").split("/") if s]
    if segments and segments[-1].endswith(".json"):
        segments[-1] = segments[-1][: -len(".json")]  # JSON can be asked for with a .json suffix (§1.2)
    context: EmulatorContext = request.app.state.campaign
    base = f"{str(request.base_url).rstrip('/')}/{organization}/campaign"
    try:
        if segments[:2] == ["privacy", "privacyTool"]:
            return await context.privacy.handle(request, base, segments[2:])
        if not segments or segments[0] not in APIS:
            raise errors.unknown_resource()
        return await _dispatch(Call(request, context, base, segments[0]), segments)
    except errors.CampaignError as exc:
        return exc.response()


def campaign_routes() -> list[Route]:
    methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
    return [
        Route("/{org}/campaign", campaign_endpoint, methods=methods),
        Route("/{org}/campaign/{path:path}", campaign_endpoint, methods=methods),
    ]
