"""Opaque identifiers: salted PKeys that decode back to row ids, and ``_lineStart`` keyset cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

__all__ = ["PKeyCodec", "decode_cursor", "encode_cursor"]

_TAG_BYTES = 40  # with the 8-byte id: 64 base64 characters, the length of real PKeys (§10.4)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PKeyCodec:
    """``@`` + base64url(MAC + row id masked by that MAC): stable per row, different per salt, not sequential."""

    def __init__(self, salt: str) -> None:
        self._key = hashlib.sha256(salt.encode()).digest()

    def _mask(self, resource: str, tag: bytes) -> int:
        digest = hmac.new(self._key, b"mask:" + resource.encode() + tag, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big")

    def _tag(self, resource: str, row_id: int) -> bytes:
        return hmac.new(self._key, f"{resource}:{row_id}".encode(), hashlib.sha512).digest()[:_TAG_BYTES]

    def encode(self, resource: str, row_id: int) -> str:
        tag = self._tag(resource, row_id)
        masked = (row_id ^ self._mask(resource, tag)).to_bytes(8, "big")
        return "@" + _b64(tag + masked)

    def decode(self, resource: str, pkey: str) -> int | None:
        """The row id behind a PKey of ``resource``, or None if it is not one of ours."""
        if not pkey.startswith("@"):
            return None
        try:
            raw = _unb64(pkey[1:])
        except (binascii.Error, ValueError):
            return None
        if len(raw) != 8 + _TAG_BYTES:
            return None
        tag = raw[:_TAG_BYTES]
        row_id = int.from_bytes(raw[_TAG_BYTES:], "big") ^ self._mask(resource, tag)
        return row_id if hmac.compare_digest(tag, self._tag(resource, row_id)) else None


def encode_cursor(values: list[Any]) -> str:
    """A ``_lineStart`` cursor: the sort key of the first row of the next page (keyset paging, no OFFSET)."""
    return "@" + _b64(json.dumps(values, separators=(",", ":")).encode())


def decode_cursor(token: str) -> list[Any] | None:
    if not token.startswith("@"):
        return None
    try:
        values = json.loads(_unb64(token[1:]))
    except (binascii.Error, ValueError):
        return None
    return values if isinstance(values, list) and len(values) == 2 else None
