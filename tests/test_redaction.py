"""Redaction: credential-shaped text and registered secrets are hidden wherever they appear."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from crmbridge.redaction import REDACTED, redact, redact_headers, register_secret

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL29yZy5jcm0uZHluYW1pY3MuY29tIn0.sig-_nature"


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("Authorization: Bearer abc.DEF-123_~+/==", "abc.DEF-123", "Authorization: Bearer ***"),
        ("authorization: bearer tok3n", "tok3n", "bearer ***"),
        ("Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Basic ***"),
        (f"token {JWT} expired", "eyJhdWQi", "token *** expired"),
        ("grant_type=client_credentials&client_secret=p%40ss&scope=x", "p%40ss", "client_secret=***&scope=x"),
        ("https://x/cb?access_token=abc123&state=1", "abc123", "access_token=***&state=1"),
        ("password=hunter22 user=bob", "hunter22", "user=bob"),
        ("client_assertion=" + JWT, "eyJhbGci", "client_assertion=***"),
    ],
)
def test_credential_shaped_text_is_redacted(text: str, hidden: str, kept: str) -> None:
    result = redact(text)
    assert hidden not in result
    assert kept in result


@pytest.mark.parametrize("member", ["access_token", "client_secret", "refresh_token", "id_token", "password"])
def test_json_members_holding_credentials_are_redacted(member: str) -> None:
    body = json.dumps({"token_type": "Bearer", member: "v-4l7e", "expires_in": 3599})
    result = redact(body)
    assert "v-4l7e" not in result
    assert json.loads(result) == {"token_type": "Bearer", member: REDACTED, "expires_in": 3599}


def test_ordinary_text_is_left_alone() -> None:
    text = 'Contact "Zoë O\'Brien" <zoe+news@example.com> updated, 3 fields'
    assert redact(text) == text


def test_registered_secret_is_redacted_anywhere() -> None:
    register_secret("Zq8~lmn.o0pQ")
    assert redact("IMS said: invalid secret Zq8~lmn.o0pQ!") == "IMS said: invalid secret ***!"


def test_registered_secret_is_redacted_when_url_encoded() -> None:
    secret = "k3y/with+reserved=chars&more"
    register_secret(secret)
    form = urlencode({"client_id": "abc", "secret_hint": secret})
    assert "reserved" not in redact(form)
    assert "reserved" not in redact(f"GET /x?q={secret}")


def test_registered_secret_is_redacted_when_json_escaped() -> None:
    secret = 'quote"and\\slash-secret'
    register_secret(secret)
    assert "slash-secret" not in redact(json.dumps({"note": secret}))


def test_longer_secret_containing_a_shorter_one_is_replaced_whole() -> None:
    register_secret("abcdef-short")
    register_secret("abcdef-short-and-longer")
    assert redact("x abcdef-short-and-longer y") == "x *** y"


def test_short_or_empty_secrets_are_not_registered() -> None:
    register_secret("a")
    register_secret("")
    register_secret(None)
    assert redact("a cat sat on a mat") == "a cat sat on a mat"


def test_headers_with_credentials_are_replaced_whole() -> None:
    headers = {
        "Authorization": "Bearer abc",
        "Cookie": "session=1",
        "X-Api-Key": "k",
        "Content-Type": "application/json",
        "Location": "https://x/cb?access_token=abc123",
    }
    assert redact_headers(headers) == {
        "Authorization": REDACTED,
        "Cookie": REDACTED,
        "X-Api-Key": REDACTED,
        "Content-Type": "application/json",
        "Location": "https://x/cb?access_token=***",
    }
