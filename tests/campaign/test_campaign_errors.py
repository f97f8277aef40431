"""The reviewed classification table, row by row, with bodies taken from campaign-standard-api.md §1.5 and §4.6."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crmbridge.campaign.errors import CLASSIFICATION, classify_campaign_response, error_details, error_for_response
from crmbridge.exceptions import (
    AuthenticationError,
    ConfigError,
    FatalError,
    PermissionDenied,
    RateLimited,
    RecordError,
    TransientError,
)
from crmbridge.http import Action

URL = "https://mc.adobe.io/acme/campaign/profileAndServicesExt/profile"


def response(
    status: int, body: Any = None, *, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("POST", URL)
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


CASES = [
    # (id, status, body, plain text, expected action)
    ("created", 201, {"PKey": "@x"}, None, Action.SUCCESS),
    ("patched", 200, {"PKey": "@x", "href": URL}, None, Action.SUCCESS),
    ("deleted subscription", 204, None, "", Action.SUCCESS),
    ("expired token 401013", 401, {"error_code": "401013", "message": "Oauth token is not valid"}, None,
     Action.REAUTHENTICATE),
    ("missing token 403010", 403, {"error_code": "403010", "message": "Oauth token is missing"}, None,
     Action.REAUTHENTICATE),
    ("token not bound to tenant 403023", 403, {"error_code": "403023", "message": "Profile is not valid"}, None,
     Action.REAUTHENTICATE),
    ("missing api key 403000", 403, {"error_code": "403000", "message": "Api Key is required"}, None,
     Action.CONFIG_ERROR),
    ("bad api key 403003", 403, {"error_code": "403003", "message": "Api Key is invalid"}, None, Action.CONFIG_ERROR),
    ("throttled 429050", 429, {"error_code": "429050", "message": "Too many requests"}, None, Action.PAUSE),
    ("unknown tenant", 500, {"code": 500, "message": "Oops. Something went wrong. Check your URI and try again."},
     None, Action.CONFIG_ERROR),
    ("CNAME not set up", 502, {"code": 502, "message": "Oops. Something went wrong. Check your URI and try again."},
     None, Action.CONFIG_ERROR),
    ("invalid PKey XTK", 500, {"code": 500, "message": "'O5iRp40EGA' attribute unknown (see definition of 'Profiles "
     "(nms:recipient)' schema). XTK-170036 Unable to parse expression '@id = @O5iRp40EGA'."}, None,
     Action.RECORD_ERROR),
    ("bad enum RST", 500, {"code": 500, "message": "RST-360011 An error has occurred - please contact your "
     "administrator. The value 'invalid' is not valid for the 'nms:recipient:gender' enumeration of the '@gender' "
     "field"}, None, Action.RECORD_ERROR),
    ("duplicate key PGS as plain text", 500, None, "A 'Service' with the same key 'SVC4' already exists. PGS-220000 "
     "ERROR: duplicate key value violates unique constraint", Action.RECORD_ERROR),
    ("read-only without code", 500, {"code": 500, "message": "Cannot update the 'age' property that is read-only"},
     None, Action.RECORD_ERROR),
    ("bare JSON string body (SDK issue #51)", 500, "RST-360011 An error has occurred - please contact your "
     "administrator.", None, Action.RECORD_ERROR),
    ("raw id not found", 404, {"code": 404, "message": "RST-360011 An error has occurred - please contact your "
     "administrator. Unable to find document with path 'Service' from key 'adobe_nl:0'"}, None, Action.RECORD_ERROR),
    ("unknown resource rc=-2003", 404, {"code": 404, "message": "RST-360011 An error has occurred - please contact "
     "your administrator. Error rc=-2003"}, None, Action.CONFIG_ERROR),
    ("outage without a Campaign code", 500, None, "Internal Server Error", Action.RETRY),
    ("bad gateway", 502, None, "<html>Bad Gateway</html>", Action.RETRY),
    ("unavailable (fault injector body)", 503, {"error": {"code": "503", "message": "Service unavailable"}}, None,
     Action.RETRY),
    ("gateway timeout", 504, None, "", Action.RETRY),
    ("request timeout", 408, None, "", Action.RETRY),
    ("bad request", 400, None, "Bad Request", Action.STOP),
    ("other 403", 403, {"error_code": "403099", "message": "Forbidden"}, None, Action.STOP),
    ("redirect", 302, None, "", Action.STOP),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_documented_answer_gets_its_reviewed_action(
    status: int, body: Any, text: str | None, expected: Action
) -> None:
    assert classify_campaign_response(response(status, body, text=text)) is expected


def test_every_rule_of_the_table_is_exercised_by_a_case() -> None:
    from crmbridge.campaign.errors import matching_rule

    used = {matching_rule(response(status, body, text=text)) for _, status, body, text, _ in CASES}
    assert used == set(CLASSIFICATION)


def test_campaign_code_is_read_from_the_message_when_the_body_only_repeats_the_status() -> None:
    details = error_details(response(500, {"code": 500, "message": "x XTK-170036 Unable to parse"}))
    assert details.code == "XTK-170036"
    assert details.status == 500
    assert details.method == "POST"


@pytest.mark.parametrize(
    ("action", "status", "error_type"),
    [
        (Action.RECORD_ERROR, 500, RecordError),
        (Action.CONFIG_ERROR, 404, ConfigError),
        (Action.REAUTHENTICATE, 401, AuthenticationError),
        (Action.PAUSE, 429, RateLimited),
        (Action.RETRY, 503, TransientError),
        (Action.STOP, 403, PermissionDenied),
        (Action.STOP, 400, FatalError),
    ],
)
def test_final_actions_become_the_errors_the_caller_handles(action: Action, status: int, error_type: type) -> None:
    error = error_for_response(response(status, {"code": status, "message": "RST-360011 boom"}), action, record_key="k")
    assert isinstance(error, error_type)
    if isinstance(error, RecordError):
        assert error.record_key == "k"
        assert "RST-360011" in str(error)


def test_rate_limited_error_carries_retry_after() -> None:
    error = error_for_response(response(429, {"error_code": "429050"}, headers={"Retry-After": "7"}), Action.PAUSE)
    assert isinstance(error, RateLimited)
    assert error.retry_after is not None
    assert error.retry_after.total_seconds() == 7
