"""Routes a data API request (``/api/data/v9.2/...``) to its handler; the same path serves ``$batch`` parts."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from crmbridge.emulators.dynamics import changes, metadata, metadata_writes, queries, writes
from crmbridge.emulators.dynamics.protocol import ApiRequest, ApiResponse, ODataError
from crmbridge.emulators.dynamics.service import Org

__all__ = ["handle"]

_SEGMENT = re.compile(r"^([^()]*)(?:\((.*)\))?$")
BatchHandler = Callable[[Org, ApiRequest], ApiResponse]


def handle(org: Org, req: ApiRequest, batch: BatchHandler | None = None) -> ApiResponse:
    """Answer one request; errors become Dataverse error bodies, every response gets ``OData-Version``."""
    try:
        response = _dispatch(org, req, batch)
    except ODataError as error:
        response = error.response()
    response.headers.append(("OData-Version", "4.0"))
    request_id = str(uuid.uuid4())
    response.headers.append(("REQ_ID", request_id))
    response.headers.append(("x-ms-service-request-id", request_id))  # what clients quote to support (§7.2)
    return response


def _no_resource(req: ApiRequest) -> ODataError:
    return ODataError(
        404, "0x80060888", f"No HTTP resource was found that matches the request URI '{req.base_url}{req.path}'."
    )


def _dispatch(org: Org, req: ApiRequest, batch: BatchHandler | None) -> ApiResponse:
    segments = req.path.split("/") if req.path else [""]
    # Some clients percent-encode the key parentheses; the key text itself is decoded by parse_key.
    first = re.sub(r"%2[89]", lambda m: "(" if m.group(0) == "%28" else ")", segments[0], flags=re.IGNORECASE)
    match = _SEGMENT.match(first)
    if match is None:
        raise _no_resource(req)
    name, key, rest = match.group(1), match.group(2), segments[1:]
    method = req.method
    if name == "" and method == "GET":
        return metadata.service_document(org, req)
    if name == "$metadata" and method == "GET":
        return metadata.csdl(org.storage.schema)
    if name == "$batch" and method == "POST" and batch is not None:
        return batch(org, req)
    if name == "WhoAmI" and key in (None, "") and not rest:
        if method != "GET":
            raise _no_resource(req)  # documented answer to POST WhoAmI (§9 item 3)
        return metadata.who_am_i(org, req)
    if name == "organizations" and key is None and not rest and method == "GET":
        return metadata.organizations(org, req)
    if name == "EntityDefinitions":
        return _entity_definitions(org, req, key, rest)
    table = org.storage.schema.by_set(name)
    if table is None:
        raise ODataError(404, "0x8006088a", f"Resource not found for the segment '{name}'.")
    if table.is_view and method != "GET":
        # activitypointer rows are written through their own activity table (inferred message).
        raise ODataError(405, "0x80040800", f"The '{method}' method is not supported on {table.entity_set}.")
    if key is None:
        if not rest and method == "GET":
            if changes.is_change_tracking_request(req):
                return changes.read_changes(org, table, req)
            return queries.read_collection(org, table, req)
        if not rest and method == "POST":
            return writes.create(org, table, req)
        if rest == ["$count"] and method == "GET":
            return queries.read_count(org, table, req)
        action = rest[0].removeprefix("Microsoft.Dynamics.CRM.") if len(rest) == 1 else ""
        if action in writes.BULK_ACTIONS and method == "POST":
            return writes.bulk_action(org, table, action, req)
        if not rest:
            raise ODataError(405, "0x80060888", f"The HTTP method '{method}' is not allowed on a collection.")
        raise _no_resource(req)
    if not rest:
        handlers = {"GET": queries.read_row, "PATCH": writes.patch, "DELETE": writes.delete}
        if method in handlers:
            return handlers[method](org, table, key, req)
        raise ODataError(405, "0x80060888", f"The HTTP method '{method}' is not allowed on an entity.")  # (inferred)
    prop = "/".join(rest)
    if method == "GET" and len(rest) == 1:
        return queries.read_property(org, table, key, prop, req)
    if method == "PUT":
        return writes.put_property(org, table, key, prop, req)
    if method == "DELETE":
        return writes.delete_property(org, table, key, prop, req)
    raise _no_resource(req)


def _entity_definitions(org: Org, req: ApiRequest, key: str | None, rest: list[str]) -> ApiResponse:
    if req.method == "GET":
        return metadata.entity_definitions(org, req, key, rest)
    if req.method == "POST" and key is None and not rest:
        return metadata_writes.create_entity(org, req)
    if req.method == "POST" and key is not None and rest == ["Attributes"]:
        return metadata_writes.add_attribute(org, req, key)
    if req.method == "POST" and key is not None and rest == ["Keys"]:
        return metadata_writes.add_key(org, req, key)
    raise _no_resource(req)
