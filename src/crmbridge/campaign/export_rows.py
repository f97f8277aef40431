"""Rows of ACS export files (delivery logs, tracking logs) as EmailEvents, or the reason they cannot be.

Column names follow the layouts proposed in adobe-io-events-and-exports.md §C.6, mapped by name, never by
position (§C.8). Pure functions: the reader in ``exports.py`` does the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from crmbridge.records import EmailEvent, EventSourceKind, EventType

__all__ = ["ExportLayout", "RowOutcome", "detect_delimiter", "detect_layout", "parse_export_datetime", "row_to_event"]

_DATE = re.compile(
    r"^(?P<y>\d{4})[-/](?P<m>\d{2})[-/](?P<d>\d{2})"
    r"(?:[T ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


class ExportLayout(StrEnum):
    DELIVERY_LOGS = "delivery_logs"  # broadLogRcp: sends and bounces
    TRACKING_LOGS = "tracking_logs"  # trackingLogRcp: opens and clicks


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """Exactly one of: an event, a reason the row is malformed, or a reason it is deliberately skipped."""

    event: EmailEvent | None = None
    malformed: str | None = None
    skipped: str | None = None


# Delivery-log status (UI label or internal name, case-insensitive) -> event type (§C.2; internal values of
# the enumeration are not published, so labels are the default: inferred).
DEFAULT_STATUSES: Mapping[str, EventType] = {"sent": EventType.SEND, "failed": EventType.BOUNCE}
# Tracking-log urlType -> event type (§C.3). Mirror page and Opt-out clicks are dropped by default (§D).
DEFAULT_URL_TYPES: Mapping[str, EventType | None] = {
    "open": EventType.OPEN,
    "email click": EventType.CLICK,
    "mirror page": None,
    "opt-out": None,
}


def detect_delimiter(header: str) -> str:
    """Tab, semicolon or comma: whichever splits the header line most (§C.5 allows all three)."""
    counts = {sep: header.count(sep) for sep in ("\t", ";", ",")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else "\t"


def detect_layout(columns: Sequence[str]) -> ExportLayout | None:
    names = set(columns)
    if "tracking_log_id" in names and "event_date" in names:
        return ExportLayout.TRACKING_LOGS
    if {"broadlog_id", "event_date", "status"} <= names:
        return ExportLayout.DELIVERY_LOGS
    return None


def parse_export_datetime(text: str) -> datetime | None:
    """XML dates (``2025-03-01T09:15:02.000Z``) and ``YYYY/MM/DD HH:mm:SS``; without a zone, UTC (inferred, §C.5)."""
    match = _DATE.match(text.strip())
    if not match:
        return None
    parts = match.groupdict()
    fraction = (parts["f"] or "0").ljust(6, "0")
    try:
        moment = datetime(
            int(parts["y"]),
            int(parts["m"]),
            int(parts["d"]),
            int(parts["H"] or 0),
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            int(fraction),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    zone = parts["tz"]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset_minutes = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        try:
            moment -= timedelta(minutes=offset_minutes)
        except OverflowError:
            return None  # year 1 or 9999 shifted out of range by its zone
    return moment


def row_to_event(
    layout: ExportLayout,
    row: Mapping[str, str],
    position: str,
    *,
    statuses: Mapping[str, EventType] = DEFAULT_STATUSES,
    url_types: Mapping[str, EventType | None] = DEFAULT_URL_TYPES,
) -> RowOutcome:
    occurred = parse_export_datetime(row.get("event_date", ""))
    if occurred is None:
        return RowOutcome(malformed=f"event_date {row.get('event_date', '')!r} is not a date")
    if layout is ExportLayout.DELIVERY_LOGS:
        return _delivery_row(row, position, occurred, statuses)
    return _tracking_row(row, position, occurred, url_types)


def _delivery_row(
    row: Mapping[str, str], position: str, occurred: datetime, statuses: Mapping[str, EventType]
) -> RowOutcome:
    broadlog = row.get("broadlog_id", "").strip()
    if not broadlog:
        return RowOutcome(malformed="broadlog_id is empty")
    status = row.get("status", "").strip()
    event_type = statuses.get(status.lower())
    if event_type is None:
        return RowOutcome(malformed=f"unknown delivery status {status!r}")
    failure_type = row.get("failure_type", "").strip().lower() or None
    if event_type is EventType.BOUNCE and failure_type == "ignored":
        return RowOutcome(skipped="failure type Ignored is not a bounce (§C.2)")
    event = EmailEvent(
        event_type=event_type,
        occurred_at=occurred,
        source_kind=EventSourceKind.ACS_EXPORT,
        source_event_id=f"broadlog:{broadlog}:{status}",
        source_position=position,
        external_id=_text(row, "profile_external_id"),
        email=_text(row, "profile_email") or _text(row, "address"),
        campaign_id=_text(row, "campaign_id"),
        campaign_label=_text(row, "campaign_label"),
        delivery_id=_text(row, "delivery_id"),
        delivery_label=_text(row, "delivery_label"),
        broadlog_id=broadlog,
        bounce_type=failure_type if event_type is EventType.BOUNCE else None,
        bounce_reason=_text(row, "failure_reason") if event_type is EventType.BOUNCE else None,
        raw=dict(row),
    )
    return RowOutcome(event=event)


def _tracking_row(
    row: Mapping[str, str], position: str, occurred: datetime, url_types: Mapping[str, EventType | None]
) -> RowOutcome:
    tracking = row.get("tracking_log_id", "").strip()
    if not tracking:
        return RowOutcome(malformed="tracking_log_id is empty")
    url_type = row.get("url_type", "").strip()
    if url_type.lower() not in url_types:
        return RowOutcome(malformed=f"unknown url_type {url_type!r}")
    event_type = url_types[url_type.lower()]
    if event_type is None:
        return RowOutcome(skipped=f"url_type {url_type!r} is not synced")
    event = EmailEvent(
        event_type=event_type,
        occurred_at=occurred,
        source_kind=EventSourceKind.ACS_EXPORT,
        source_event_id=f"tracking:{tracking}",
        source_position=position,
        external_id=_text(row, "profile_external_id"),
        email=_text(row, "profile_email"),
        campaign_id=_text(row, "campaign_id"),
        campaign_label=_text(row, "campaign_label"),
        delivery_id=_text(row, "delivery_id"),
        delivery_label=_text(row, "delivery_label"),
        broadlog_id=_text(row, "broadlog_id"),
        tracking_log_id=tracking,
        url=_text(row, "url_source") if event_type is EventType.CLICK else None,
        url_label=_text(row, "url_label"),
        url_type=url_type,
        raw=dict(row),
    )
    return RowOutcome(event=event)


def _text(row: Mapping[str, str], column: str) -> str | None:
    value = row.get(column, "").strip()
    return value or None
