"""The one place that removes secrets from text before it is logged, raised or shown.

Two layers: patterns that look like credentials wherever they appear (bearer tokens, JWTs, ``client_secret=``
form fields, ``access_token`` JSON members, ``Authorization`` headers), and the exact values of every secret the
configuration loaded (registered by :func:`register_secret`), so a secret is hidden even where no pattern fits.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "redact", "redact_headers", "register_secret"]

REDACTED = "***"

# Secrets shorter than this are not registered: replacing "a" or "1" everywhere would wreck every message.
_MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_secrets_pattern: re.Pattern[str] | None = None

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <token> / Basic <creds>, in headers or free text
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    # JWTs anywhere (three base64url segments, the first starting with eyJ)
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
    # form or query fields: client_secret=..., client_assertion=..., access_token=..., password=...
    (
        re.compile(
            r"(?i)\b(client_secret|client_assertion|access_token|refresh_token|password|api_key|secret)"
            r"=([^&\s\"']+)"
        ),
        r"\1=" + REDACTED,
    ),
    # JSON members: "access_token": "...", "client_secret": "..."
    (
        re.compile(
            r"(?i)(\"(?:client_secret|access_token|refresh_token|id_token|password|secret)\"\s*:\s*\")[^\"]*(\")"
        ),
        r"\1" + REDACTED + r"\2",
    ),
)

_SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "set-cookie", "proxy-authorization"})


def register_secret(value: str | None) -> None:
    """Remember a secret value (from config or a token response) so it is redacted wherever it shows up."""
    global _secrets_pattern
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        # A secret is logged as it travels: inside a form body or query string, or inside a JSON string.
        _secrets.update({value, quote_plus(value), quote(value, safe=""), json.dumps(value)[1:-1]})
        # Longest first, so a secret that contains another is replaced whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _secrets_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and every credential-shaped substring replaced."""
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to log: credential headers replaced whole, the rest passed through :func:`redact`."""
    return {
        name: (REDACTED if name.lower() in _SENSITIVE_HEADERS else redact(value)) for name, value in headers.items()
    }
