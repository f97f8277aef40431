"""Opaque identifiers (campaign-standard-api.md §2.2, §3.2, §10.4): PKeys and _lineStart cursors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crmbridge.emulators.campaign.keys import PKeyCodec, decode_cursor, encode_cursor


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=2**62))
def test_pkey_round_trips_and_is_bound_to_its_resource_and_salt(row_id: int) -> None:
    codec = PKeyCodec("salt-a")
    pkey = codec.encode("profile", row_id)
    assert pkey.startswith("@")
    assert len(pkey) == 65
    assert codec.decode("profile", pkey) == row_id
    assert codec.decode("service", pkey) is None
    assert PKeyCodec("salt-b").decode("profile", pkey) is None


def test_neighbouring_rows_get_unrelated_pkeys() -> None:
    codec = PKeyCodec("salt")
    first, second = codec.encode("profile", 1), codec.encode("profile", 2)
    assert first[:12] != second[:12]


def test_tampered_or_foreign_pkeys_do_not_decode() -> None:
    codec = PKeyCodec("salt")
    pkey = codec.encode("profile", 42)
    tampered = pkey[:-2] + ("A" if pkey[-2] != "A" else "B") + pkey[-1]
    assert codec.decode("profile", tampered) is None
    assert codec.decode("profile", "@gibberish") is None
    assert codec.decode("profile", "O5iRp40EGA") is None


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.text(), st.integers()), st.integers(min_value=1))
def test_cursor_round_trips(value: str | int, row_id: int) -> None:
    token = encode_cursor([value, row_id])
    assert token.startswith("@")
    assert decode_cursor(token) == [value, row_id]


def test_garbage_cursor_is_rejected() -> None:
    assert decode_cursor("@%%%") is None
    assert decode_cursor("plain") is None
