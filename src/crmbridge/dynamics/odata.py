"""OData wire codecs shared by the Dataverse client and emulator (protocol doc ``dataverse-web-api.md``).

Literals (§3.3, §5.4), entity keys, the ``$batch`` multipart/mixed request and response formats (§6.2, §6.3),
the error body (§7.3), the XML paging cookie inside ``$skiptoken`` (§3.5) and the ``$deltatoken`` shape (§4.2).
Everything here is pure: bytes and strings in, values out.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

__all__ = [
    "BatchFormatError",
    "BatchPart",
    "BatchRequest",
    "BatchResponse",
    "ChangeSet",
    "ChangeSetResponse",
    "PagingCookie",
    "batch_content_type",
    "boundary_of",
    "decode_delta_token",
    "decode_skiptoken",
    "encode_batch_request",
    "encode_batch_response",
    "encode_delta_token",
    "encode_skiptoken",
    "error_body",
    "format_datetime",
    "format_key",
    "format_literal",
    "format_string_literal",
    "parse_batch_request",
    "parse_batch_response",
    "parse_datetime",
    "parse_error_body",
    "parse_key",
    "parse_string_literal",
]

CRLF = b"\r\n"
DELTA_TIME_FORMAT = "%m/%d/%Y %H:%M:%S"
_STATUS_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class BatchFormatError(ValueError):
    """A ``$batch`` body that does not follow the multipart/mixed format (e.g. LF instead of CRLF)."""


# --- literals --------------------------------------------------------------------------------------------------


def format_string_literal(value: str) -> str:
    """``O'Bryan`` -> ``'O''Bryan'`` (§3.3: a quote is escaped by doubling it)."""
    return "'" + value.replace("'", "''") + "'"


def parse_string_literal(text: str) -> str:
    if len(text) < 2 or text[0] != "'" or text[-1] != "'":
        raise ValueError(f"not an OData string literal: {text!r}")
    return text[1:-1].replace("''", "'")


def format_datetime(value: datetime) -> str:
    """UTC ISO-8601 with a ``Z`` and whole seconds, the shape Dataverse returns (§2.6)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_literal(value: Any) -> str:
    """A Python value as an OData URL literal: GUIDs and datetimes unquoted, strings quoted (§3.3)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        return format_string_literal(value)
    raise TypeError(f"no OData literal for {type(value).__name__}")


def format_key(key: uuid.UUID | str | Mapping[str, Any]) -> str:
    """The key segment of a row URL: ``(<guid>)`` or ``(emailaddress1='a%2Bb%40x.org')`` (§5.4, §10).

    Values of an alternate key are URL-encoded after quoting, as Microsoft's SDK does; a plain string is a GUID.
    """
    if isinstance(key, uuid.UUID | str):
        return f"({uuid.UUID(str(key))})"
    parts = [f"{name}={quote(format_literal(value), safe=chr(39))}" for name, value in key.items()]
    return "(" + ",".join(parts) + ")"


_KEY_PART = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)\s*(?:,|$)")


def parse_key(segment: str) -> str | dict[str, Any]:
    """Inverse of :func:`format_key` on the text inside the parentheses; a bare GUID returns the GUID string."""
    text = unquote(segment).strip()
    if "=" not in text:
        return str(uuid.UUID(text.strip("'")))
    values: dict[str, Any] = {}
    position = 0
    while position < len(text):
        match = _KEY_PART.match(text, position)
        if not match:
            raise ValueError(f"not a key segment: {segment!r}")
        values[match.group(1)] = _parse_key_value(match.group(2).strip())
        position = match.end()
    return values


def _parse_key_value(text: str) -> Any:
    if text.startswith("'"):
        return parse_string_literal(text)
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return float(text)


# --- errors -------------------------------------------------------------------------------------------------


def error_body(code: str, message: str) -> dict[str, Any]:
    """``{"error":{"code":"0x80040265","message":"..."}}`` (§7.3)."""
    return {"error": {"code": code, "message": message}}


def parse_error_body(payload: Any) -> tuple[str, str] | None:
    """The (code, message) of a Dataverse error body, or None when the payload is not one."""
    if not isinstance(payload, Mapping):
        return None
    error = payload.get("error")
    if not isinstance(error, Mapping) or "message" not in error:
        return None
    return str(error.get("code", "")), str(error["message"])


# --- $batch ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class BatchRequest:
    """One HTTP request inside a ``$batch``; ``url`` is relative (``/api/data/v9.2/...``) or absolute."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_id: str | None = None

    def header(self, name: str) -> str | None:
        return _find_header(self.headers, name)


@dataclass(slots=True)
class ChangeSet:
    """Requests applied atomically (§6.1); ``boundary`` is generated when empty."""

    requests: list[BatchRequest]
    boundary: str = ""


BatchPart = BatchRequest | ChangeSet


@dataclass(slots=True)
class BatchResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_id: str | None = None

    def header(self, name: str) -> str | None:
        return _find_header(self.headers, name)


@dataclass(slots=True)
class ChangeSetResponse:
    responses: list[BatchResponse]
    boundary: str = ""


def _find_header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


def batch_content_type(boundary: str) -> str:
    return f'multipart/mixed; boundary="{boundary}"'


def _multipart(boundary: str, parts: Sequence[bytes | tuple[str, str, Sequence[bytes]]]) -> bytes:
    """One multipart/mixed body with CRLF framing; a tuple part is a nested change set (its Content-Type line,
    its boundary and its encoded parts). Shared by the request (§6.2) and response (§6.3) encoders."""
    out = bytearray()
    for part in parts:
        out += b"--" + boundary.encode() + CRLF
        if isinstance(part, tuple):
            content_type, inner, members = part
            out += f"Content-Type: {content_type}".encode() + CRLF + CRLF
            for member in members:
                out += b"--" + inner.encode() + CRLF + member + CRLF
            out += b"--" + inner.encode() + b"--" + CRLF
        else:
            out += part + CRLF
    out += b"--" + boundary.encode() + b"--" + CRLF
    return bytes(out)


def encode_batch_request(parts: Sequence[BatchPart], boundary: str) -> bytes:
    """The §6.2 body: CRLF everywhere, change sets nested with their own boundary."""
    encoded: list[bytes | tuple[str, str, Sequence[bytes]]] = []
    for part in parts:
        if isinstance(part, ChangeSet):
            inner = part.boundary or f"changeset_{uuid.uuid4()}"
            encoded.append((batch_content_type(inner), inner, [_encode_request_part(r) for r in part.requests]))
        else:
            encoded.append(_encode_request_part(part))
    return _multipart(boundary, encoded)


def _encode_request_part(request: BatchRequest) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if request.content_id is not None:
        lines.append(f"Content-ID: {request.content_id}")
    lines += ["", f"{request.method} {request.url} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    return "\r\n".join(lines).encode() + CRLF + CRLF + request.body


def encode_batch_response(parts: Sequence[BatchResponse | ChangeSetResponse], boundary: str) -> bytes:
    """The §6.3 body; boundaries are written unquoted as in Microsoft's examples."""
    encoded: list[bytes | tuple[str, str, Sequence[bytes]]] = []
    for part in parts:
        if isinstance(part, ChangeSetResponse):
            inner = part.boundary or f"changesetresponse_{uuid.uuid4()}"
            members = [_encode_response_part(r) for r in part.responses]
            encoded.append((f"multipart/mixed; boundary={inner}", inner, members))
        else:
            encoded.append(_encode_response_part(part))
    return _multipart(boundary, encoded)


def _encode_response_part(response: BatchResponse) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if response.content_id is not None:
        lines.append(f"Content-ID: {response.content_id}")
    reason = _STATUS_REASONS.get(response.status, "")
    lines += ["", f"HTTP/1.1 {response.status} {reason}".rstrip()]
    lines += [f"{name}: {value}" for name, value in response.headers]
    return "\r\n".join(lines).encode() + CRLF + CRLF + response.body


_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


def boundary_of(content_type: str) -> str:
    match = _BOUNDARY.search(content_type)
    if not match or not content_type.lower().startswith("multipart/mixed"):
        raise BatchFormatError(f"not a multipart/mixed content type: {content_type!r}")
    return match.group(1) or match.group(2)


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode()
    if delimiter + CRLF not in body:
        # Dataverse answers LF-only bodies with "Stream was not readable" (§6.2).
        raise BatchFormatError("Stream was not readable: multipart lines must end with CRLF")
    chunks = body.split(delimiter)
    parts: list[bytes] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return parts
        chunk = chunk.removeprefix(CRLF)
        parts.append(chunk.removesuffix(CRLF))
    raise BatchFormatError(f"missing closing delimiter --{boundary}--")


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    head, separator, rest = data.partition(CRLF + CRLF)
    if not separator:
        head, rest = data.removesuffix(CRLF), b""
    try:
        lines = head.decode("utf-8").split("\r\n") if head else []
    except UnicodeDecodeError as exc:
        raise BatchFormatError(f"batch part headers are not UTF-8: {exc}") from exc
    return lines, rest


def _parse_headers(lines: Sequence[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise BatchFormatError(f"malformed header line: {line!r}")
        headers.append((name.strip(), value.strip()))
    return headers


def _parse_parts(body: bytes, boundary: str) -> list[tuple[list[tuple[str, str]], bytes]]:
    result = []
    for raw in _split_multipart(body, boundary):
        lines, content = _split_head(raw)
        result.append((_parse_headers(lines), content))
    return result


def parse_batch_request(content_type: str, body: bytes) -> list[BatchPart]:
    parts: list[BatchPart] = []
    for headers, content in _parse_parts(body, boundary_of(content_type)):
        part_type = _find_header(headers, "Content-Type") or ""
        if part_type.lower().startswith("multipart/mixed"):
            inner = boundary_of(part_type)
            requests = [_parse_http_request(h, c) for h, c in _parse_parts(content, inner)]
            parts.append(ChangeSet(requests, inner))
        else:
            parts.append(_parse_http_request(headers, content))
    return parts


def _parse_http_request(part_headers: list[tuple[str, str]], content: bytes) -> BatchRequest:
    lines, body = _split_head(content)
    if not lines:
        raise BatchFormatError("batch part without a request line")
    pieces = lines[0].split(" ")
    if len(pieces) < 2:
        raise BatchFormatError(f"malformed request line: {lines[0]!r}")
    return BatchRequest(
        method=pieces[0].upper(),
        url=pieces[1],
        headers=_parse_headers(lines[1:]),
        body=body,
        content_id=_find_header(part_headers, "Content-ID"),
    )


def parse_batch_response(content_type: str, body: bytes) -> list[BatchResponse | ChangeSetResponse]:
    parts: list[BatchResponse | ChangeSetResponse] = []
    for headers, content in _parse_parts(body, boundary_of(content_type)):
        part_type = _find_header(headers, "Content-Type") or ""
        if part_type.lower().startswith("multipart/mixed"):
            inner = boundary_of(part_type)
            responses = [_parse_http_response(h, c) for h, c in _parse_parts(content, inner)]
            parts.append(ChangeSetResponse(responses, inner))
        else:
            parts.append(_parse_http_response(headers, content))
    return parts


def _parse_http_response(part_headers: list[tuple[str, str]], content: bytes) -> BatchResponse:
    lines, body = _split_head(content)
    status_line = lines[0].split(" ") if lines else []
    # isascii: "²".isdigit() is True but int("²") fails.
    if len(status_line) < 2 or not (status_line[1].isascii() and status_line[1].isdigit()):
        raise BatchFormatError(f"malformed status line in batch response: {lines[:1]!r}")
    return BatchResponse(
        status=int(status_line[1]),
        headers=_parse_headers(lines[1:]),
        body=body,
        content_id=_find_header(part_headers, "Content-ID"),
    )


# --- paging cookie ($skiptoken) and delta token -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PagingCookie:
    """The decoded ``$skiptoken`` of §3.5: page number, last/first values per ordering column, tracking flag.

    ``extra`` holds emulator attributes on the inner cookie (e.g. the snapshot version of a change-tracking read).
    """

    page_number: int
    columns: tuple[tuple[str, str | None, str | None], ...]  # (column, last, first); None = null value
    is_tracking: bool = False
    extra: tuple[tuple[str, str], ...] = ()


def encode_skiptoken(cookie: PagingCookie) -> str:
    """``<cookie pagenumber="2" pagingcookie="%3ccookie%20page%3d%221%22%3e..." istracking="False" />``."""
    inner_attrs = "".join(f" {name}={quoteattr(value)}" for name, value in cookie.extra)
    inner = f"<cookie page={quoteattr(str(cookie.page_number - 1))}{inner_attrs}>"
    for column, last, first in cookie.columns:
        attrs = ""
        if last is not None:
            attrs += f" last={quoteattr(last)}"
        if first is not None:
            attrs += f" first={quoteattr(first)}"
        inner += f"<{column}{attrs} />"
    inner += "</cookie>"
    tracking = "True" if cookie.is_tracking else "False"
    # The inner cookie is URL-encoded inside the attribute (lower-case hex), as in real nextLinks (§3.5).
    encoded = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(inner, safe=""))
    return (
        f"<cookie pagenumber={quoteattr(str(cookie.page_number))} pagingcookie={quoteattr(encoded)}"
        f" istracking={quoteattr(tracking)} />"
    )


def decode_skiptoken(token: str) -> PagingCookie:
    try:
        outer = ElementTree.fromstring(token)  # noqa: S314 - parses our own small cookie, no entities
        inner = ElementTree.fromstring(unquote(outer.attrib["pagingcookie"]))  # noqa: S314
        columns = tuple((child.tag, child.attrib.get("last"), child.attrib.get("first")) for child in inner)
        extra = tuple((name, value) for name, value in inner.attrib.items() if name != "page")
        return PagingCookie(
            page_number=int(outer.attrib["pagenumber"]),
            columns=columns,
            is_tracking=outer.attrib.get("istracking", "False") == "True",
            extra=extra,
        )
    except (ElementTree.ParseError, KeyError, ValueError) as exc:
        raise ValueError(f"not a paging cookie: {token[:80]!r}") from exc


def encode_delta_token(version: int, issued_at: datetime) -> str:
    """``919042!08/22/2017 08:10:44``: version, ``!``, UTC timestamp (§4.2, §4.6); URL-encode it in links."""
    return f"{version}!{issued_at.astimezone(UTC).strftime(DELTA_TIME_FORMAT)}"


def decode_delta_token(token: str) -> tuple[int, datetime]:
    version, bang, stamp = token.partition("!")
    if not bang:
        raise ValueError(f"not a delta token: {token!r}")
    return int(version), datetime.strptime(stamp, DELTA_TIME_FORMAT).replace(tzinfo=UTC)
