"""Request/response values and error helpers of the Dataverse emulator, independent of Starlette.

Handlers take an :class:`ApiRequest` and return an :class:`ApiResponse`, so the same code serves plain HTTP
requests and the parts of a ``$batch``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from crmbridge.dynamics.odata import error_body

__all__ = [
    "JSON_TYPE",
    "ApiRequest",
    "ApiResponse",
    "ODataError",
    "Prefer",
    "invalid_property",
    "json_response",
    "parse_prefer",
]

JSON_TYPE = "application/json; odata.metadata=minimal"
API_PREFIX = "/api/data/v9.2/"


class ODataError(Exception):
    """An error answered with the Dataverse body ``{"error":{"code":..,"message":..}}`` (§7.3)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> ApiResponse:
        body = json.dumps(error_body(self.code, self.message)).encode()
        return ApiResponse(self.status, [("Content-Type", JSON_TYPE), *self.headers.items()], body)


def invalid_property(table: Any, name: str) -> ODataError:
    """400 ``0x0`` for an unknown name in a query (§3.2)."""
    return ODataError(
        400, "0x0", f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{table.logical_name}'."
    )


@dataclass(slots=True)
class ApiRequest:
    """One request to the data API; ``path`` is what follows ``/api/data/v9.2/``, still percent-encoded."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # https://host:port/api/data/v9.2/
    user: str = ""
    cost_units: dict[str, int] = field(default_factory=dict)  # filled by handlers for the execution-time model

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ODataError(400, "0x80048d19", f"Error identified in Payload provided by the user: {exc}") from exc

    def charge(self, kind: str, units: int = 1) -> None:
        self.cost_units[kind] = self.cost_units.get(kind, 0) + units


@dataclass(slots=True)
class ApiResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> ApiResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return ApiResponse(status, [("Content-Type", JSON_TYPE), *(headers or [])], body)


@dataclass(slots=True)
class Prefer:
    return_representation: bool = False
    annotations: str | None = None
    max_page_size: int | None = None
    track_changes: bool = False
    continue_on_error: bool = False

    def wants_annotation(self, name: str) -> bool:
        if not self.annotations:
            return False
        for pattern in self.annotations.split(","):
            pattern = pattern.strip()
            if pattern == "*" or pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                return True
        return False


def parse_prefer(value: str | None) -> Prefer:
    """Comma-separated preferences, possibly from several ``Prefer`` lines joined by the server (§2.4)."""
    prefer = Prefer()
    if not value:
        return prefer
    for item in _split_preferences(value):
        name, _, argument = item.partition("=")
        name = name.strip().lower()
        argument = argument.strip().strip('"')
        if name == "return" and argument == "representation":
            prefer.return_representation = True
        elif name == "odata.include-annotations":
            prefer.annotations = argument
        elif name == "odata.maxpagesize" and argument.isdigit():
            prefer.max_page_size = int(argument)
        elif name == "odata.track-changes":
            prefer.track_changes = True
        elif name == "odata.continue-on-error":
            prefer.continue_on_error = True
    return prefer


def _split_preferences(value: str) -> list[str]:
    """Split on commas outside quotes: ``odata.include-annotations="a,b"`` is one preference."""
    items, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]
