"""Small wire codecs of the Campaign REST API: URLs, query strings, datetimes and list envelopes.

Pure functions, no I/O, so the client and its tests share them (campaign-standard-api.md §2.2, §3, §4.8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from crmbridge.exceptions import ProtocolError

__all__ = [
    "build_query",
    "format_acs_datetime",
    "join_url",
    "json_of",
    "list_page",
    "object_of",
    "parse_acs_datetime",
    "path_segment",
    "resource_path",
    "same_value",
]

JsonObject = dict[str, Any]

# Resources that live in the Ext API by default: profile and service extensions and linked custom resources (§2.1).
_PROFILE_APIS = ("profileAndServices", "profileAndServicesExt", "customResources")


def resource_path(resource: str, *, profile_api: str = "profileAndServicesExt") -> str:
    """``"profile"`` -> ``"profileAndServicesExt/profile"``; ``"cusVehicle"`` likewise; an explicit
    ``"<api>/<name>"`` (e.g. ``"customResources/cusShop"``) is kept as given."""
    cleaned = resource.strip("/")
    if "/" in cleaned:
        api, _, name = cleaned.partition("/")
        if api not in _PROFILE_APIS or not name or "/" in name:
            raise ValueError(f"unknown Campaign resource {resource!r}: expected '<name>' or '<api>/<name>'")
        return cleaned
    if not cleaned:
        raise ValueError("empty Campaign resource name")
    return f"{profile_api}/{cleaned}"


def quote_value(value: str) -> str:
    """Percent-encode a query value completely: ``+``, ``@``, quotes and spaces must not reach ACS raw (§8, [C2])."""
    return quote(value, safe="")


def build_query(params: Mapping[str, str | int | bool] | Iterable[tuple[str, str | int | bool]]) -> str:
    """``a=1&b=x%2By%40z.com`` with every value fully percent-encoded; booleans as ``true``/``false``."""
    items = params.items() if isinstance(params, Mapping) else params
    parts = []
    for name, value in items:
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        parts.append(f"{quote(name, safe='_')}={quote_value(text)}")
    return "&".join(parts)


def join_url(base: str, href: str) -> str:
    """Resolve an href the API returned; ACS returns absolute hrefs, some endpoints relative ones (§2.2)."""
    return urljoin(base, href)


def format_acs_datetime(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmmZ`` in UTC, the format ACS reads and writes (§4.8)."""
    if moment.tzinfo is None:
        raise ValueError("Campaign datetimes must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_acs_datetime(text: str) -> datetime | None:
    """Parse an ACS datetime defensively: ``T`` or space, with or without milliseconds or ``Z`` (§4.8).

    Returns None for the empty string ACS uses for "no value".
    """
    value = text.strip()
    if not value:
        return None
    value = value.replace("T", " ", 1)
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:  # ACS datetimes are UTC (inferred for values given without a zone)
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 or 9999 shifted out of range by its zone
        raise ValueError(f"not a Campaign datetime: {text!r}") from exc


def list_page(body: Any, url: str) -> tuple[list[Any], str | None]:
    """The ``content`` rows and the ``next.href`` of one list response (§3.1); next is absent on the last page."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise ProtocolError(f"Campaign list response without a 'content' array from {url}")
    next_node = body.get("next")
    href = next_node.get("href") if isinstance(next_node, dict) else None
    if href is not None and not isinstance(href, str):
        raise ProtocolError(f"Campaign list response with a 'next.href' that is not a URL from {url}")
    return body["content"], (href or None)


def path_segment(key: str) -> str:
    """A PKey or custom key as one URL path segment: `/`, spaces and quotes encoded, the leading `@` kept."""
    return quote(key, safe="@")


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ProtocolError(f"Campaign answered {response.status_code} with a body that is not JSON") from exc


def object_of(response: httpx.Response) -> JsonObject:
    body = json_of(response) if response.content else {}
    if not isinstance(body, dict):
        raise ProtocolError(f"Campaign answered {response.status_code} with JSON that is not an object")
    return body


def same_value(current: Any, wanted: Any) -> bool:
    """Whether a field already holds the wanted value; links compare by PKey, items field by field."""
    if isinstance(wanted, Mapping):
        if not isinstance(current, Mapping):
            return False
        return all(same_value(current.get(name), value) for name, value in wanted.items())
    if current is None and wanted == "":
        return True  # ACS answers "" for empty; an absent field and "" are the same empty value
    return bool(current == wanted)
