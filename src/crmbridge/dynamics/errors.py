"""The reviewed classification of Dataverse responses (status + error code -> Action) and the typed errors they become.

The table is data on purpose: reviewers read it row by row, and the tests walk it with ``parametrize``.
Error codes are the hex strings of the Web API error body ``{"error":{"code":"0x8004...","message":...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

import httpx

from crmbridge.dynamics.odata import parse_error_body
from crmbridge.exceptions import (
    ApiErrorDetails,
    AuthenticationError,
    CheckpointExpired,
    ConfigError,
    CrmbridgeError,
    FatalError,
    PermissionDenied,
    RateLimited,
    RecordError,
    TransientError,
)
from crmbridge.http import Action, Classifier, json_body_cut_short, parse_retry_after

__all__ = [
    "CLASSIFICATION",
    "RequestKind",
    "Rule",
    "api_error_details",
    "classifier_for",
    "classify",
    "error_for_response",
]

SERVICE = "dataverse"
_REQUEST_ID_HEADERS = ("x-ms-service-request-id", "req_id", "x-ms-request-id", "request-id")


class RequestKind(Enum):
    """What a request is for: the same status means different things for a query, a write and a stored link."""

    READ = "read"  # a query we built from the mapping: a 400 means the mapping names something that is not there
    WRITE = "write"  # a write of one record (or one bulk/batch call): a 400 is that record's fault
    STORED_LINK = "stored_link"  # the first GET of a stored delta link or nextLink
    BATCH = "batch"  # a $batch: a multipart answer holds per-part statuses, whatever the outer status says


@dataclass(frozen=True, slots=True)
class Rule:
    status: int
    code: str | None  # None: any code for this status
    action: Action
    why: str


# Most specific first: (status, code) rows are consulted before (status, None) rows, then the status class.
CLASSIFICATION: tuple[Rule, ...] = (
    Rule(400, "0x80048d19", Action.CONFIG_ERROR, "undeclared property or nav prop in the payload: mapping names it"),
    Rule(400, "0x80060888", Action.CONFIG_ERROR, "$expand with $ref on a collection: our query is wrong"),
    Rule(400, "0x80044331", Action.RECORD_ERROR, "validation error of one record (length, format)"),
    Rule(400, None, Action.RECORD_ERROR, "invalid argument or payload of this record"),
    Rule(401, None, Action.REAUTHENTICATE, "token missing, expired or invalid"),
    Rule(403, None, Action.STOP, "privilege error or not an application user of the org"),
    Rule(404, "0x8006088a", Action.CONFIG_ERROR, "unknown entity set (names are case-sensitive)"),
    Rule(404, None, Action.RECORD_ERROR, "the row does not exist"),
    Rule(405, None, Action.RECORD_ERROR, "e.g. CannotDeleteDueToAssociation"),
    Rule(408, None, Action.RETRY, "request timeout: the server did not get the whole request"),
    Rule(409, None, Action.RECORD_ERROR, "conflict, e.g. duplicate key"),
    Rule(412, None, Action.RECORD_ERROR, "ETag mismatch or duplicate record on create-only upsert"),
    Rule(413, None, Action.STOP, "request too large: the batch size setting is wrong"),
    Rule(429, None, Action.PAUSE, "service protection limit: pause for Retry-After"),
    Rule(500, None, Action.RETRY, "unexpected server error, usually transient (SQL timeout, deadlock)"),
    Rule(501, None, Action.STOP, "not implemented by this org"),
    Rule(502, None, Action.RETRY, "gateway"),
    Rule(503, None, Action.RETRY, "service unavailable"),
    Rule(504, None, Action.RETRY, "gateway timeout"),
)

_BY_STATUS_AND_CODE = {(r.status, r.code.lower()): r.action for r in CLASSIFICATION if r.code is not None}
_BY_STATUS = {r.status: r.action for r in CLASSIFICATION if r.code is None}
# Only these 4xx on a stored link are about us rather than the link (inference: the expiry status is undocumented).
_NOT_ABOUT_THE_LINK = frozenset({401, 403, 429})


def classify(status: int, code: str | None, kind: RequestKind = RequestKind.WRITE) -> Action:
    """The action for a response status and Dataverse error code, in the context of what the request was for."""
    if status < 400:
        return Action.SUCCESS
    if kind is RequestKind.STORED_LINK and status < 500 and status not in _NOT_ABOUT_THE_LINK:
        return Action.REBASELINE
    action = _BY_STATUS_AND_CODE.get((status, (code or "").lower())) or _BY_STATUS.get(status)
    if action is None:
        action = Action.RECORD_ERROR if status < 500 else Action.RETRY
    if kind in (RequestKind.READ, RequestKind.STORED_LINK) and action is Action.RECORD_ERROR:
        return Action.CONFIG_ERROR  # a query has no record to skip: the mapping (table, column, filter) is wrong
    return action


def classifier_for(kind: RequestKind) -> Classifier:
    """A :data:`crmbridge.http.Classifier` for RetryPolicy.send."""

    def classify_response(response: httpx.Response) -> Action:
        if kind is RequestKind.BATCH:
            if response.headers.get("content-type", "").lower().startswith("multipart/mixed"):
                return Action.SUCCESS  # a failed change set answers 4xx with the failing part inside (§6.3)
            return classify_response_as_write(response)
        code = _error_code(response) if response.status_code >= 400 else None
        action = classify(response.status_code, code, kind)
        return Action.RETRY if action is Action.SUCCESS and json_body_cut_short(response) else action

    return classify_response


def classify_response_as_write(response: httpx.Response) -> Action:
    code = _error_code(response) if response.status_code >= 400 else None
    action = classify(response.status_code, code, RequestKind.WRITE)
    return Action.RETRY if action is Action.SUCCESS and json_body_cut_short(response) else action


def _error_code(response: httpx.Response) -> str | None:
    parsed = _parse_error(response)
    return parsed[0] if parsed else None


def _parse_error(response: httpx.Response) -> tuple[str, str] | None:
    try:
        return parse_error_body(json.loads(response.content or b"null"))
    except ValueError:
        return None


def api_error_details(response: httpx.Response) -> ApiErrorDetails:
    """Status, Dataverse error code and message, request id, method and URL of a refused request."""
    parsed = _parse_error(response)
    code, message = parsed if parsed else (None, response.text[:300])
    request_id = next((response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None)
    request = response.request
    return ApiErrorDetails(
        service=SERVICE,
        status=response.status_code,
        code=code or None,
        message=message,
        request_id=request_id,
        method=request.method,
        url=str(request.url),
    )


def error_for_response(response: httpx.Response, action: Action, *, record_key: str | None = None) -> CrmbridgeError:
    """The typed error a non-success response becomes; its class tells the caller what to do."""
    details = api_error_details(response)
    if action is Action.RECORD_ERROR:
        return RecordError("Dataverse rejected the record", record_key=record_key, details=details)
    if action is Action.REBASELINE:
        return CheckpointExpired(
            "Dataverse no longer accepts the stored delta link or nextLink: re-read the table in full", details=details
        )
    if action is Action.PAUSE:
        seconds = parse_retry_after(response.headers.get("retry-after"))
        wait = timedelta(seconds=seconds) if seconds is not None else None
        return RateLimited("Dataverse service protection limit", retry_after=wait, details=details)
    if action is Action.REAUTHENTICATE:
        return AuthenticationError("Dataverse refused the bearer token, even a freshly issued one", details=details)
    if action is Action.CONFIG_ERROR:
        return ConfigError(f"the Dataverse request does not fit this org's schema: {details.describe()}")
    if action is Action.RETRY:
        return TransientError("Dataverse is not answering normally", details=details)
    if response.status_code == 403:
        return PermissionDenied(_permission_hint(details.message), details=details)
    return FatalError("Dataverse refused a request crmbridge cannot recover from", details=details)


def _permission_hint(message: str) -> str:
    if "not a member of the organization" in message.lower():
        return (
            "the app registration is not an application user of this Dataverse org: create one with its "
            "Application (client) ID in the Power Platform admin center and give it a security role "
            "(docs/dynamics-setup.md)"
        )
    return "the Dataverse application user lacks a privilege: extend its security role (docs/dynamics-setup.md)"
