"""``$batch`` of the Dataverse emulator (§6): parts in order, atomic change sets, ``$n`` Content-ID references."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from crmbridge.dynamics.odata import (
    BatchFormatError,
    BatchPart,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    ChangeSetResponse,
    encode_batch_response,
    parse_batch_request,
)
from crmbridge.emulators.dynamics.protocol import API_PREFIX, ApiRequest, ApiResponse, ODataError, parse_prefer
from crmbridge.emulators.dynamics.router import handle
from crmbridge.emulators.dynamics.service import Org

__all__ = ["MAX_OPERATIONS", "execute_batch"]

MAX_OPERATIONS = 1000
_REFERENCE = re.compile(r"^\$(\w+)(.*)$")


class _ChangeSetFailed(Exception):
    def __init__(self, response: BatchResponse) -> None:
        super().__init__("change set failed")
        self.response = response


def execute_batch(org: Org, req: ApiRequest) -> ApiResponse:
    try:
        parts = parse_batch_request(req.header("Content-Type") or "", req.body)
    except BatchFormatError as exc:
        raise ODataError(400, "0x80048d19", f"Error identified in Payload provided by the user: {exc}") from exc
    count = sum(len(p.requests) if isinstance(p, ChangeSet) else 1 for p in parts)
    if count > MAX_OPERATIONS:
        # Limit from §6.1; wording and code (inferred).
        raise ODataError(400, "0x0", f"The number of requests in the batch ({count}) exceeds the limit of 1000.")
    continue_on_error = parse_prefer(req.header("Prefer")).continue_on_error
    references: dict[str, str] = {}
    results: list[BatchResponse | ChangeSetResponse] = []
    for part in parts:
        result = _run_part(org, req, part, references)
        failed = _failure(result)
        if failed is not None and not continue_on_error:
            # Stop at the first failure: the batch takes its status and holds only the failing part (§6.3).
            return _multipart(failed.status, [failed])
        results.append(result)
    return _multipart(200, results)


def _failure(result: BatchResponse | ChangeSetResponse) -> BatchResponse | None:
    responses = result.responses if isinstance(result, ChangeSetResponse) else [result]
    return next((r for r in responses if r.status >= 400), None)


def _multipart(status: int, parts: list[BatchResponse | ChangeSetResponse]) -> ApiResponse:
    boundary = f"batchresponse_{uuid.uuid4()}"
    for part in parts:
        if isinstance(part, ChangeSetResponse):
            part.boundary = f"changesetresponse_{uuid.uuid4()}"
    body = encode_batch_response(parts, boundary)
    return ApiResponse(status, [("Content-Type", f"multipart/mixed; boundary={boundary}")], body)


def _run_part(
    org: Org, outer: ApiRequest, part: BatchPart, references: dict[str, str]
) -> BatchResponse | ChangeSetResponse:
    if not isinstance(part, ChangeSet):
        return _run_request(org, outer, part, references)
    responses: list[BatchResponse] = []
    try:
        with org.storage.atomic():
            for request in part.requests:
                if request.method == "GET":
                    response = _error_part(ODataError(400, "0x0", "GET is not allowed inside a change set."), request)
                else:
                    response = _run_request(org, outer, request, references)
                if response.status >= 400:
                    raise _ChangeSetFailed(response)
                responses.append(response)
    except _ChangeSetFailed as failed:
        # The whole change set is rolled back; its response holds the failing part (shape inferred, §11.6).
        for request in part.requests:
            if request.content_id is not None:
                references.pop(request.content_id, None)
        return ChangeSetResponse([failed.response])
    return ChangeSetResponse(responses)


def _error_part(error: ODataError, request: BatchRequest) -> BatchResponse:
    response = error.response()
    return BatchResponse(error.status, response.headers, response.body, request.content_id)


def _run_request(org: Org, outer: ApiRequest, request: BatchRequest, references: dict[str, str]) -> BatchResponse:
    try:
        url = _resolve_url(request.url, references)
        body = _resolve_body(request.body, references)
    except ODataError as error:
        return _error_part(error, request)
    split = urlsplit(url)
    path = split.path
    if API_PREFIX in path:
        path = path.split(API_PREFIX, 1)[1]
    if path == "$batch":
        return _error_part(ODataError(400, "0x0", "A batch cannot contain another batch."), request)
    headers = {name.lower(): value for name, value in request.headers}
    inner = ApiRequest(request.method, path, split.query, headers, body, outer.base_url, outer.user)
    response = handle(org, inner)
    for kind, units in inner.cost_units.items():
        outer.charge(kind, units)
    outer.charge("operations")
    entity_id = response.header("OData-EntityId")
    if entity_id and request.content_id is not None:
        references[request.content_id] = entity_id
    headers_out = [(k, v) for k, v in response.headers if k not in ("REQ_ID", "x-ms-service-request-id")]
    if entity_id:
        headers_out.insert(0, ("Location", entity_id))
    if response.header("Content-Type") == "application/json; odata.metadata=minimal":
        headers_out = [(k, f"{v}; odata.streaming=true" if k == "Content-Type" else v) for k, v in headers_out]
    return BatchResponse(response.status, headers_out, response.body, request.content_id)


def _resolve_url(url: str, references: dict[str, str]) -> str:
    match = _REFERENCE.match(url)
    if match is None:
        return url
    return _lookup(references, match.group(1)) + match.group(2)


def _lookup(references: dict[str, str], content_id: str) -> str:
    if content_id not in references:
        raise ODataError(400, "0x0", f"Content-ID Reference: '${content_id}' does not exist in the batch context.")
    return references[content_id]


def _resolve_body(body: bytes, references: dict[str, str]) -> bytes:
    """Replace ``"$n"`` in ``@odata.bind`` / ``@odata.id`` values by the URL of the row part n created."""
    if not body.strip() or b'"$' not in body:
        return body
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return body
    if not isinstance(payload, dict):
        return body
    for key, value in payload.items():
        if (key.endswith("@odata.bind") or key == "@odata.id") and isinstance(value, str):
            match = _REFERENCE.match(value)
            if match:
                payload[key] = _lookup(references, match.group(1)) + match.group(2)
    return json.dumps(payload).encode()
