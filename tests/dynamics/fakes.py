"""A strict scripted Dataverse for unit tests: each expected request gets a literal response; surprises fail.

Bodies are copied from shared/protocols/dataverse-web-api.md so the client is checked against the documented wire
format, not against our own emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from crmbridge.dynamics.auth import StaticTokenProvider
from crmbridge.dynamics.session import DataverseSession
from crmbridge.http import HttpStats, RetryPolicy

API = "https://org.crm.dynamics.com/api/data/v9.2/"


async def no_sleep(seconds: float) -> None:
    return None


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    merged = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    merged.update(headers or {})
    return httpx.Response(status, content=json.dumps(body).encode(), headers=merged)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class Expectation:
    method: str
    url: str  # the exact URL expected, as sent
    respond: Responder


@dataclass
class ScriptedDataverse:
    """Answers expectations in order; any other request, or an expectation left unused, fails the test."""

    expectations: list[Expectation] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def expect(self, method: str, url: str, response: httpx.Response | Responder) -> None:
        respond: Responder = response if callable(response) else (lambda _request, r=response: r)
        self.expectations.append(Expectation(method, url, respond))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.expectations:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        expected = self.expectations.pop(0)
        actual = str(request.url)
        assert (request.method, actual) == (expected.method, expected.url), f"expected {expected}, got {actual}"
        return expected.respond(request)

    def assert_done(self) -> None:
        assert not self.expectations, f"expected requests never sent: {self.expectations}"


def session_for(
    handler: Callable[[httpx.Request], httpx.Response], *, tokens: StaticTokenProvider | None = None
) -> DataverseSession:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=5.0)
    retry = RetryPolicy(service="dataverse", sleep=no_sleep, max_attempts=4)
    return DataverseSession(client, API, tokens or StaticTokenProvider(), retry=retry, stats=HttpStats())
