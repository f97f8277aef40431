"""Pure parsing of journaling API requests (§A.4) and of the emulator's journal positions.

Positions are opaque to clients (§A.4); ours are ``emu:<journal id>:<seq>``, where ``seq`` grows with
every published event. Parameter errors the documentation does not cover get a 400 (inferred, §A.7).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = ["JournalQuery", "QueryError", "format_position", "parse_duration", "parse_position", "parse_query"]

POSITION_PREFIX = "emu"
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class QueryError(ValueError):
    """A request the journal refuses with 400."""


@dataclass(frozen=True, slots=True)
class JournalQuery:
    start: Literal["oldest", "since", "latest", "seek"]
    since_seq: int | None = None  # with start == "since"
    seek: timedelta | None = None  # with start == "seek": a negative offset from now
    limit: int | None = None


def format_position(journal_id: str, seq: int) -> str:
    return f"{POSITION_PREFIX}:{journal_id}:{seq}"


def parse_position(text: str, journal_id: str) -> int:
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != POSITION_PREFIX or not parts[2].isdigit():
        raise QueryError(f"Invalid position {text!r}")
    if parts[1] != journal_id:
        raise QueryError(f"Position {text!r} does not belong to this journal")
    return int(parts[2])


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration such as ``-PT2H``, ``-P1D`` or ``-P5DT2H`` (§A.4)."""
    match = _DURATION.match(text)
    if not match or text.endswith(("P", "T")):
        raise QueryError(f"Invalid seek duration {text!r}: expected a negative ISO 8601 duration such as -PT2H")
    parts = {name: float(value) for name, value in match.groupdict().items() if value and name != "sign"}
    duration = timedelta(**parts)
    if match["sign"] != "-" or duration <= timedelta(0):
        raise QueryError(f"Invalid seek duration {text!r}: seek goes back in time, so it must be negative")
    return -duration


def parse_query(params: Mapping[str, str], journal_id: str) -> JournalQuery:
    limit = _parse_limit(params.get("limit"))
    since, seek, latest = params.get("since"), params.get("seek"), params.get("latest")
    if since is not None and seek is not None:
        raise QueryError("seek cannot be combined with since")  # §A.4
    wants_latest = _parse_bool(latest, "latest")
    if wants_latest and (since is not None or seek is not None):
        raise QueryError("latest cannot be combined with since or seek")  # (inferred)
    if since is not None:
        return JournalQuery("since", since_seq=parse_position(since, journal_id), limit=limit)
    if seek is not None:
        return JournalQuery("seek", seek=parse_duration(seek), limit=limit)
    return JournalQuery("latest" if wants_latest else "oldest", limit=limit)


def _parse_limit(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise QueryError(f"Invalid limit {text!r}: expected a positive integer")
    return int(text)


def _parse_bool(text: str | None, name: str) -> bool:
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise QueryError(f"Invalid {name} {text!r}: expected true or false")
    return text.lower() == "true"
