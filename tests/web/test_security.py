"""The write-access rules on their own: which headers count as cross-site, and what unlocks a write."""

from __future__ import annotations

import pytest

from crmbridge.web.security import AUTH_COOKIE, SESSION_COOKIE, check_write, csrf_token, is_cross_site, unlock_proof

TOKEN = "a-dashboard-token-1234"
HOST = {"host": "127.0.0.1:8321"}


@pytest.mark.parametrize(
    ("headers", "cross"),
    [
        ({}, False),
        ({"sec-fetch-site": "same-origin"}, False),
        ({"sec-fetch-site": "none"}, False),
        ({"sec-fetch-site": "same-site"}, True),
        ({"sec-fetch-site": "cross-site"}, True),
        ({"origin": "http://127.0.0.1:8321"}, False),
        ({"origin": "https://127.0.0.1:8321"}, False),  # TLS ended by a proxy in front: same host and port
        ({"origin": "http://127.0.0.1:8322"}, True),
        ({"origin": "http://localhost:8321"}, True),
        ({"origin": "null"}, True),
        ({"origin": "http://127.0.0.1:8321", "sec-fetch-site": "cross-site"}, True),
    ],
)
def test_cross_site_is_judged_by_fetch_metadata_then_origin_against_host(headers: dict[str, str], cross: bool) -> None:
    assert is_cross_site({**HOST, **headers}) is cross


def test_a_session_token_works_only_for_its_own_session() -> None:
    assert csrf_token(TOKEN, "session-a") != csrf_token(TOKEN, "session-b")
    assert csrf_token(TOKEN, "session-a") != csrf_token("another-token-5678", "session-a")
    assert csrf_token(TOKEN, "session-a") != unlock_proof(TOKEN, "session-a")


@pytest.mark.parametrize(
    ("token", "headers", "cookies", "form", "allowed"),
    [
        (None, {"authorization": f"Bearer {TOKEN}"}, {}, {}, False),
        (TOKEN, {"authorization": f"Bearer {TOKEN}"}, {}, {}, True),
        (TOKEN, {"authorization": f"bearer {TOKEN}"}, {}, {}, True),
        (TOKEN, {"authorization": "Bearer wrong"}, {}, {}, False),
        (TOKEN, {"authorization": f"Basic {TOKEN}"}, {}, {}, False),
        (TOKEN, {}, {SESSION_COOKIE: "s1"}, {"csrf_token": csrf_token(TOKEN, "s1"), "token": TOKEN}, True),
        (TOKEN, {}, {SESSION_COOKIE: "s1"}, {"csrf_token": csrf_token(TOKEN, "s1")}, False),
        (
            TOKEN,
            {},
            {SESSION_COOKIE: "s1", AUTH_COOKIE: unlock_proof(TOKEN, "s1")},
            {"csrf_token": csrf_token(TOKEN, "s1")},
            True,
        ),
        (
            TOKEN,
            {},
            {SESSION_COOKIE: "s2", AUTH_COOKIE: unlock_proof(TOKEN, "s1")},
            {"csrf_token": csrf_token(TOKEN, "s2")},
            False,
        ),
        (TOKEN, {}, {}, {"csrf_token": csrf_token(TOKEN, "s1"), "token": TOKEN}, False),
        (TOKEN, {}, {SESSION_COOKIE: "s1"}, {"token": TOKEN}, False),
    ],
    ids=[
        "no token configured",
        "bearer",
        "bearer scheme in lower case",
        "wrong bearer",
        "basic is not bearer",
        "form token with csrf",
        "csrf without token",
        "unlocked session with csrf",
        "unlock proof of another session",
        "no session cookie",
        "token without csrf",
    ],
)
def test_write_needs_the_token_and_for_forms_the_sessions_csrf_token(
    token: str | None, headers: dict[str, str], cookies: dict[str, str], form: dict[str, str], allowed: bool
) -> None:
    assert check_write(token, {**HOST, **headers}, cookies, form).allowed is allowed
