"""The reviewed classification of Campaign (ACS) responses: status + error code or message -> what to do.

The table is data (:data:`CLASSIFICATION`), read top to bottom, first match wins; ``tests`` pin every row.
Sources: campaign-standard-api.md §1.5 (gateway errors), §4.6 (Campaign errors), §4.7 (body shape unconfirmed,
so both JSON and plain text bodies are read) and §8 (429 and outages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import httpx

from crmbridge.exceptions import (
    ApiErrorDetails,
    AuthenticationError,
    ConfigError,
    CrmbridgeError,
    FatalError,
    PermissionDenied,
    RateLimited,
    RecordError,
    TransientError,
)
from crmbridge.http import Action, json_body_cut_short, parse_retry_after

__all__ = [
    "CLASSIFICATION",
    "ParentNotFound",
    "Rule",
    "classify_campaign_response",
    "error_details",
    "error_for_response",
    "matching_rule",
]

_CAMPAIGN_CODE = re.compile(r"\b((?:RST|XTK|PGS)-\d{4,6})\b")


class ParentNotFound(RecordError):
    """A link's parent row does not exist (yet) in Campaign: park the child and retry when the parent lands."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table. ``statuses`` empty = any status; ``pattern`` searched in the code and the message."""

    statuses: frozenset[int]
    pattern: re.Pattern[str] | None
    action: Action
    why: str

    def matches(self, status: int, code: str, message: str) -> bool:
        if self.statuses and status not in self.statuses:
            return False
        return self.pattern is None or bool(self.pattern.search(f"{code} {message}"))


def _rule(statuses: tuple[int, ...] | range, pattern: str | None, action: Action, why: str) -> Rule:
    return Rule(frozenset(statuses), re.compile(pattern, re.IGNORECASE) if pattern else None, action, why)


_5XX = range(500, 600)
_2XX = range(200, 300)

CLASSIFICATION: tuple[Rule, ...] = (
    _rule(_2XX, None, Action.SUCCESS, "the call worked"),
    # Gateway (§1.5): a refused or missing token is cured by a new token, once.
    _rule((401,), None, Action.REAUTHENTICATE, "401013 Oauth token is not valid (expired or revoked)"),
    _rule((403,), r"\b403010\b", Action.REAUTHENTICATE, "403010 Oauth token is missing"),
    # The token's product context may lag a product-profile change by one token: try one fresh token.
    _rule((403,), r"\b403023\b", Action.REAUTHENTICATE, "403023 Profile is not valid (token not bound to tenant)"),
    _rule((403,), r"\b40300[03]\b", Action.CONFIG_ERROR, "403000/403003 X-Api-Key missing or not this client"),
    _rule((403,), None, Action.STOP, "other 403: not allowed"),
    _rule((429,), None, Action.PAUSE, "429050 throttled: pause the service for Retry-After"),
    # A wrong ORGANIZATION or base URL (the URI error envelope): no retry will fix it.
    _rule((500, 502), r"check your uri", Action.CONFIG_ERROR, "unknown tenant / CNAME not set up"),
    # Campaign answers validation problems with 500 and an RST/XTK/PGS code: the record is bad, not the service.
    _rule(_5XX, r"\b(?:RST|XTK|PGS)-\d+", Action.RECORD_ERROR, "Campaign validation error (RST/XTK/PGS)"),
    _rule(
        (500,),
        r"read-only|property is not valid|is not a valid constant|enumeration",
        Action.RECORD_ERROR,
        "validation message without a code",
    ),
    # 404: a raw id (service name, custom key) that does not exist is the record's problem; anything else
    # (unknown resource, API not published) is configuration.
    _rule((404,), r"unable to find document", Action.RECORD_ERROR, "raw id / key not found"),
    _rule((404,), None, Action.CONFIG_ERROR, "unknown resource or Ext API not published (RST-360011 rc=-2003)"),
    _rule((408,), None, Action.RETRY, "request timeout"),
    _rule(_5XX, None, Action.RETRY, "an outage: 500 without a Campaign code, 502/503/504"),
    _rule((400, 405, 406, 409, 411, 413, 414, 415, 422), None, Action.STOP, "a request crmbridge should not send"),
    _rule((), None, Action.STOP, "anything else is outside the documented protocol"),
)


def error_details(response: httpx.Response, *, service: str = "campaign") -> ApiErrorDetails:
    """Status, the Campaign/gateway code and message of an error response; JSON or plain text bodies (§4.7)."""
    code = ""
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict):  # the fault injector and other Adobe APIs nest {"error": {...}}
            body = nested
        code = str(body.get("error_code") or body.get("code") or "")
        message = str(body.get("message") or body.get("error_description") or "")
    elif isinstance(body, str):
        message = body
    if not message:
        message = response.text[:500]
    found = _CAMPAIGN_CODE.search(message)
    if found and (not code or (code.isascii() and code.isdigit() and int(code) == response.status_code)):
        code = found.group(1)
    request = response.request if _has_request(response) else None
    return ApiErrorDetails(
        service=service,
        status=response.status_code,
        code=code or None,
        message=message,
        request_id=response.headers.get("x-request-id"),
        method=request.method if request is not None else None,
        url=str(request.url) if request is not None else None,
    )


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises when the response was built without a request
    except RuntimeError:
        return False
    return True


def matching_rule(response: httpx.Response) -> Rule:
    details = error_details(response) if response.status_code >= 300 else None
    code = details.code or "" if details else ""
    message = details.message if details else ""
    for rule in CLASSIFICATION:
        if rule.matches(response.status_code, code, message):
            return rule
    raise AssertionError("the last rule matches everything")  # pragma: no cover


def classify_campaign_response(response: httpx.Response) -> Action:
    """The :data:`crmbridge.http.Classifier` of the Campaign client; a success whose JSON is cut short is retried."""
    action = matching_rule(response).action
    return Action.RETRY if action is Action.SUCCESS and json_body_cut_short(response) else action


def error_for_response(
    response: httpx.Response, action: Action, *, record_key: str | None = None, service: str = "campaign"
) -> CrmbridgeError:
    """The exception the caller raises for a final, unsuccessful response."""
    details = error_details(response, service=service)
    if action is Action.RECORD_ERROR:
        return RecordError("Campaign rejected the record", record_key=record_key, details=details)
    if action is Action.CONFIG_ERROR:
        return ConfigError(f"Campaign refused the request; check the campaign settings. {details.describe()}")
    if action is Action.REAUTHENTICATE:
        return AuthenticationError("Campaign refused a fresh IMS token; check the product profile", details=details)
    if action is Action.PAUSE:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        pause = timedelta(seconds=retry_after) if retry_after is not None else None
        return RateLimited("Campaign is throttling requests", retry_after=pause, details=details)
    if action is Action.RETRY:
        return TransientError("Campaign is unavailable", details=details)
    if response.status_code == 403:
        return PermissionDenied("Campaign denied the request", details=details)
    return FatalError("Campaign answered outside its documented protocol", details=details)
