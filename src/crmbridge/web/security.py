"""Who may use the dashboard's write actions: the dashboard token, same-origin requests, and a CSRF token per session.

A browser session is a random id in an HttpOnly, SameSite=Strict cookie. Its CSRF token and its "unlocked" proof
are HMACs of that id keyed with the dashboard token, so nothing is stored server-side and changing the token
invalidates every session. Scripts send ``Authorization: Bearer <token>`` instead and need no CSRF token: a
cross-site page cannot attach that header without a CORS preflight, which this app never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "AUTH_COOKIE",
    "SESSION_COOKIE",
    "WriteCheck",
    "check_write",
    "csrf_token",
    "is_cross_site",
    "new_session_id",
    "unlock_proof",
]

SESSION_COOKIE = "crmbridge_session"
AUTH_COOKIE = "crmbridge_unlocked"

# Sec-Fetch-Site values a browser sends for a request started by this very origin, or typed by the user.
_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


@dataclass(frozen=True, slots=True)
class WriteCheck:
    """The verdict on a write request: allowed, or refused with the reason shown to the operator."""

    allowed: bool
    reason: str = ""


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def _mac(token: str, purpose: str, session_id: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{session_id}".encode(), hashlib.sha256).hexdigest()


def csrf_token(token: str, session_id: str) -> str:
    """The CSRF token of a session, rendered into every form of the page."""
    return _mac(token, "csrf", session_id)


def unlock_proof(token: str, session_id: str) -> str:
    """The cookie value that says "this session gave the dashboard token"."""
    return _mac(token, "unlocked", session_id)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_cross_site(headers: Mapping[str, str]) -> bool:
    """True when the browser says the request came from another origin (``Sec-Fetch-Site``, then ``Origin``).

    ``same-site`` is refused too: on 127.0.0.1 every other port is the same site, and any local page could post.
    ``Origin`` is compared with ``Host`` by host and port only, so a TLS-terminating proxy in front does not
    break it. A request with neither header (curl, a script) is not cross-site by itself; it still needs the token.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in _SAME_ORIGIN_FETCH:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    origin_host = urlsplit(origin.strip()).netloc.lower()
    return not origin_host or origin_host != headers.get("host", "").lower()


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def check_write(
    token: str | None,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    form: Mapping[str, str],
) -> WriteCheck:
    """May this request change state? Token configured, not cross-site, then Bearer or (CSRF + token or unlock)."""
    if not token:
        return WriteCheck(
            False, "write actions are disabled: no dashboard token is configured (service.dashboard_token)"
        )
    if is_cross_site(headers):
        return WriteCheck(False, "refused: the request comes from another site")
    bearer = _bearer(headers)
    if bearer is not None:
        return WriteCheck(True) if _same(bearer, token) else WriteCheck(False, "refused: wrong dashboard token")
    session_id = cookies.get(SESSION_COOKIE)
    if not session_id or not _same(form.get("csrf_token"), csrf_token(token, session_id)):
        return WriteCheck(False, "refused: missing or stale form token; reload the page and try again")
    if _same(cookies.get(AUTH_COOKIE), unlock_proof(token, session_id)) or _same(form.get("token"), token):
        return WriteCheck(True)
    return WriteCheck(False, "refused: give the dashboard token first")
