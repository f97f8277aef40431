"""Value conversion from Dataverse JSON to ACS JSON: dates, datetimes, booleans, numbers, bounded strings.

Dataverse returns datetimes as ISO 8601 UTC (``2023-04-07T21:59:01Z``) and date-only columns as ``1980-05-01``;
ACS wants ``YYYY-MM-DD HH:MM:SS.mmmZ`` and ``YYYY-MM-DD`` (shared/protocols/campaign-standard-api.md §4.8).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from crmbridge.exceptions import RecordError

__all__ = ["AcsType", "MappingError", "format_acs_datetime", "parse_timestamp", "to_acs_value"]

AcsType = Literal["string", "boolean", "integer", "number", "date", "datetime", "auto"]

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


class MappingError(RecordError):
    """A source value cannot be written to its target field: the record goes to the dead-letter table."""


def format_acs_datetime(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmmZ`` in UTC, the format ACS reads and writes."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(value: Any) -> datetime | None:
    """A timestamp from either side: Dataverse ISO 8601 or ACS ``YYYY-MM-DD HH:MM:SS.mmmZ``; None if absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_datetime(text: str, field: str) -> datetime:
    """An ISO-shaped text as a UTC-comparable datetime; a shape that is no real moment (30 February, year 1 shifted
    out of range by its zone) is the record's problem, not a crash."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise MappingError(f"field {field}: {text!r} is not a real date-time ({exc})") from exc


def _as_datetime(value: Any, field: str) -> str:
    if isinstance(value, datetime):
        return format_acs_datetime(value)
    if isinstance(value, str) and (_ISO_DATETIME.match(value) or _ISO_DATE.match(value)):
        return format_acs_datetime(_parse_datetime(value if "T" in value else value + "T00:00:00Z", field))
    raise MappingError(f"field {field}: {value!r} is not a date-time")


def _as_date(value: Any, field: str) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date().isoformat() if value.tzinfo else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        moment = _parse_datetime(value, field)
        return (moment if moment.tzinfo is None else moment.astimezone(UTC)).date().isoformat()
    raise MappingError(f"field {field}: {value!r} is not a date")


def _as_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise MappingError(f"field {field}: {value!r} is not a boolean")


def _as_integer(value: Any, field: str) -> int:
    if isinstance(value, bool):
        return int(value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingError(f"field {field}: {value!r} is not a number") from None
    if not number.is_finite():
        raise MappingError(f"field {field}: {value!r} is not a finite number")
    if number != number.to_integral_value():
        raise MappingError(f"field {field}: {value!r} is not a whole number")
    return int(number)


def _as_number(value: Any, field: str) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingError(f"field {field}: {value!r} is not a number") from None
    if not number.is_finite():
        raise MappingError(f"field {field}: {value!r} is not a finite number")
    return int(number) if number == number.to_integral_value() else float(number)


def _as_string(value: Any, field: str, max_length: int | None) -> str:
    text = value if isinstance(value, str) else ("true" if value is True else "false" if value is False else str(value))
    if max_length is not None and len(text) > max_length:
        raise MappingError(f"field {field}: {len(text)} characters, longer than its maximum of {max_length}")
    return text


def to_acs_value(value: Any, acs_type: AcsType = "auto", *, field: str = "?", max_length: int | None = None) -> Any:
    """Convert one Dataverse value to what ACS expects for a field of ``acs_type``.

    ``None`` stays ``None`` (the caller decides between omitting and clearing). ``auto`` keeps booleans and
    numbers, and turns ISO datetimes into the ACS datetime format (date-only strings stay dates).
    """
    if value is None:
        return None
    if isinstance(value, dict | list | tuple | set):
        # Dataverse columns hold single values; an object or list (an $expand result) written through would
        # alias the source row inside the payload (a value and a group at once became a circular payload).
        raise MappingError(f"field {field}: a {type(value).__name__} is not a single value to write")
    if acs_type == "datetime":
        return _as_datetime(value, field)
    if acs_type == "date":
        return _as_date(value, field)
    if acs_type == "boolean":
        return _as_bool(value, field)
    if acs_type == "integer":
        return _as_integer(value, field)
    if acs_type == "number":
        return _as_number(value, field)
    if acs_type == "string":
        return _as_string(value, field, max_length)
    if isinstance(value, str):
        if _ISO_DATETIME.match(value):
            return _as_datetime(value, field)
        return _as_string(value, field, max_length)
    return value
