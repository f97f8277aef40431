"""The reviewed classification table, walked case by case with the statuses and codes the protocol doc lists."""

from __future__ import annotations

import httpx
import pytest

from crmbridge.dynamics.errors import CLASSIFICATION, RequestKind, classify, error_for_response
from crmbridge.exceptions import (
    AuthenticationError,
    CheckpointExpired,
    ConfigError,
    PermissionDenied,
    RateLimited,
    RecordError,
)
from crmbridge.http import Action

from .fakes import API, error_response

W, R, S = RequestKind.WRITE, RequestKind.READ, RequestKind.STORED_LINK


@pytest.mark.parametrize(
    ("status", "code", "kind", "expected"),
    [
        (204, None, W, Action.SUCCESS),
        (429, "0x80072322", W, Action.PAUSE),  # number of requests
        (429, "0x80072321", R, Action.PAUSE),  # execution time
        (429, "0x80072326", S, Action.PAUSE),  # concurrency: never a re-baseline
        (401, "", W, Action.REAUTHENTICATE),
        (401, "", S, Action.REAUTHENTICATE),
        (403, "0x80040220", W, Action.STOP),
        (403, "", S, Action.STOP),
        (400, "0x80044331", W, Action.RECORD_ERROR),  # subject too long
        (400, "0x0", W, Action.RECORD_ERROR),  # invalid property of this payload
        (400, "0x0", R, Action.CONFIG_ERROR),  # "Could not find a property named ..." in our $select
        (400, "0x80048d19", W, Action.CONFIG_ERROR),  # undeclared @odata.bind name
        (404, "0x8006088a", W, Action.CONFIG_ERROR),  # wrong entity set name
        (404, "0x80040217", W, Action.RECORD_ERROR),  # row does not exist
        (412, "", W, Action.RECORD_ERROR),
        (405, "", W, Action.RECORD_ERROR),
        (400, "0x80044331", S, Action.REBASELINE),
        (404, "", S, Action.REBASELINE),
        (410, "", S, Action.REBASELINE),
        (422, "", S, Action.REBASELINE),
        (500, "0x80040216", W, Action.RETRY),
        (502, None, R, Action.RETRY),
        (503, None, S, Action.RETRY),
        (504, None, W, Action.RETRY),
        (413, "", W, Action.STOP),
        (418, "", W, Action.RECORD_ERROR),  # unknown 4xx: this record's problem
        (599, "", W, Action.RETRY),  # unknown 5xx: the service's problem
    ],
)
def test_status_and_code_map_to_the_reviewed_action(status: int, code: str | None, kind: RequestKind, expected: Action):
    assert classify(status, code, kind) is expected


def test_every_table_row_is_reachable() -> None:
    for rule in CLASSIFICATION:
        assert classify(rule.status, rule.code or "no-such-code", RequestKind.WRITE) is not None
        if rule.code is not None:
            assert classify(rule.status, rule.code, RequestKind.WRITE) is rule.action


def _refused(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    response = error_response(status, code, message, headers)
    response.request = httpx.Request("GET", API + "WhoAmI")
    return response


def test_unregistered_application_user_gets_a_permission_error_that_says_what_to_do() -> None:
    response = _refused(403, "0x80072560", "The user is not a member of the organization.", {"REQ_ID": "r-1"})

    error = error_for_response(response, Action.STOP)

    assert isinstance(error, PermissionDenied)
    assert "not an application user" in str(error)
    assert error.details is not None
    assert (error.details.status, error.details.code, error.details.request_id) == (403, "0x80072560", "r-1")


@pytest.mark.parametrize(
    ("action", "error_type"),
    [
        (Action.RECORD_ERROR, RecordError),
        (Action.REBASELINE, CheckpointExpired),
        (Action.PAUSE, RateLimited),
        (Action.REAUTHENTICATE, AuthenticationError),
        (Action.CONFIG_ERROR, ConfigError),
    ],
)
def test_each_action_becomes_the_error_that_names_the_callers_recovery(action: Action, error_type: type) -> None:
    response = _refused(400, "0x80044331", "A validation error occurred.", {"x-ms-service-request-id": "abc"})

    error = error_for_response(response, action)

    assert isinstance(error, error_type)
    assert "A validation error occurred." in str(error)


def test_throttling_error_carries_the_retry_after() -> None:
    response = _refused(429, "0x80072322", "Number of requests exceeded the limit", {"Retry-After": "7"})

    error = error_for_response(response, Action.PAUSE)

    assert isinstance(error, RateLimited)
    assert error.retry_after is not None
    assert error.retry_after.total_seconds() == 7
