"""ACS-workflow-style export files (Extract file → Transfer file, §C.4–C.6) of delivery and tracking logs.

Layouts are the proposed ones of §C.6: a header line, tab separator by default, UTF-8, XML dates with
milliseconds, gzip by default, one file per log and run named ``<prefix>_<YYYYMMDD>_<HHMMSS>.txt[.gz]``.
Files appear atomically (written under ``<name>.part``, then renamed), unless a partial upload is asked for:
then a file is left "still being uploaded", either under its ``.part`` name or under its final name with only
part of its bytes (a growing file), until :meth:`ExportWriter.complete_partials` finishes it.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from crmbridge.emulators.campaign.events.payload import iso_millis
from crmbridge.emulators.campaign.events.simulation import SimulatedEvent

__all__ = [
    "DELIVERY_LOG_COLUMNS",
    "PART_SUFFIX",
    "TRACKING_LOG_COLUMNS",
    "ExportSettings",
    "ExportWriter",
    "export_row",
    "render_export",
]

DELIVERY_LOG_COLUMNS = (
    "broadlog_id",
    "event_date",
    "last_modified",
    "status",
    "failure_type",
    "failure_reason",
    "address",
    "profile_external_id",
    "profile_email",
    "profile_key",
    "delivery_id",
    "delivery_label",
    "delivery_date",
    "channel",
    "campaign_id",
    "campaign_label",
)
TRACKING_LOG_COLUMNS = (
    "tracking_log_id",
    "event_date",
    "url_type",
    "url_label",
    "url_source",
    "broadlog_id",
    "profile_external_id",
    "profile_email",
    "delivery_id",
    "delivery_label",
    "campaign_id",
)
FILE_PREFIXES = {"delivery": "delivery_logs", "tracking": "tracking_logs"}
COLUMNS = {"delivery": DELIVERY_LOG_COLUMNS, "tracking": TRACKING_LOG_COLUMNS}
PART_SUFFIX = ".part"  # (inferred) how an upload in progress is named; SFTP servers differ
PartialMode = Literal["none", "temp_name", "growing"]


@dataclass(frozen=True, slots=True)
class ExportSettings:
    folder: Path | None = None  # None: exports are off
    compress: bool = True  # §C.6 proposes gzip
    separator: str = "\t"  # §C.5: tabulation is the default shown
    interval_s: float = 600.0  # §C.8: a scheduler fires at most every 10 minutes
    skip_empty: bool = True  # §C.4 "Do not generate a file if the inbound transition is empty"
    partial: PartialMode = "none"  # leave the files of the next runs "still being uploaded"

    def __post_init__(self) -> None:
        if self.separator not in ("\t", ",", ";"):
            raise ValueError("separator must be a tab, a comma or a semicolon")
        if self.partial not in ("none", "temp_name", "growing"):
            raise ValueError("partial must be none, temp_name or growing")
        if self.interval_s < 0:
            raise ValueError("interval_s must not be negative")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: ExportSettings | None = None) -> ExportSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown export settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        merged = {**(base.as_dict() if base else {}), **data}
        folder = merged.get("folder")
        merged["folder"] = Path(folder) if folder else None
        return cls(**merged)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["folder"] = str(self.folder) if self.folder else None
        return values


def export_row(event: SimulatedEvent) -> tuple[str, dict[str, str]]:
    """Which log the event is a row of, and the row: sends and bounces are delivery logs, the rest tracking."""
    spec, target = event.spec, event.target
    when = iso_millis(event.occurred_at)
    if event.kind in ("send", "bounce"):
        failed = event.kind == "bounce"
        return "delivery", {
            "broadlog_id": event.broadlog_id,
            "event_date": when,
            "last_modified": when,
            "status": "Failed" if failed else "Sent",
            "failure_type": (event.bounce_type or "") if failed else "",
            # §C.6's sample shows "Not defined" as the nature of failure of a Sent row
            "failure_reason": (event.bounce_reason or "") if failed else "Not defined",
            "address": target.email,
            "profile_external_id": target.external_id or "",
            "profile_email": target.email,
            "profile_key": target.pkey,
            "delivery_id": spec.delivery_id,
            "delivery_label": spec.delivery_label,
            "delivery_date": iso_millis(spec.start),
            "channel": "Email",
            "campaign_id": spec.campaign_id,
            "campaign_label": spec.campaign_label,
        }
    return "tracking", {
        "tracking_log_id": event.tracking_log_id or "",
        "event_date": when,
        "url_type": event.url_type or "",
        "url_label": event.url_label or "",
        "url_source": event.url or "",
        "broadlog_id": event.broadlog_id,
        "profile_external_id": target.external_id or "",
        "profile_email": target.email,
        "delivery_id": spec.delivery_id,
        "delivery_label": spec.delivery_label,
        "campaign_id": spec.campaign_id,
    }


def render_export(columns: Sequence[str], rows: Iterable[Mapping[str, str]], settings: ExportSettings) -> bytes:
    """The file's bytes: header line, one line per row, LF endings, quoted only where a value needs it."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=settings.separator, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows([row.get(column, "") for column in columns] for row in rows)
    data = text.getvalue().encode("utf-8")
    return gzip.compress(data, mtime=0) if settings.compress else data


def _partial_bytes(data: bytes) -> bytes:
    """A strict prefix that never ends on a line break, so a reader can tell the file is incomplete."""
    cut = max(len(data) // 2, 1)
    while cut > 1 and data[cut - 1 : cut] == b"\n":
        cut -= 1
    return data[:cut]


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + PART_SUFFIX)
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class ExportWriter:
    """Writes one export run's files into the configured folder and finishes partial uploads on request."""

    def __init__(self, settings: ExportSettings) -> None:
        self.settings = settings
        self._partials: list[tuple[Path, bytes]] = []  # final path, full content (in memory: lost on restart)

    def write_run(self, now: datetime, rows_by_kind: Mapping[str, Sequence[Mapping[str, str]]]) -> list[Path]:
        folder = self.settings.folder
        if folder is None:
            return []
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for kind in ("delivery", "tracking"):
            rows = rows_by_kind.get(kind, ())
            if not rows and self.settings.skip_empty:
                continue
            path = self._free_name(folder, kind, now)
            written.append(self._write(path, render_export(COLUMNS[kind], rows, self.settings)))
        return written

    def complete_partials(self) -> list[Path]:
        finished = []
        for path, data in self._partials:
            _write_atomically(path, data)
            path.with_name(path.name + PART_SUFFIX).unlink(missing_ok=True)
            finished.append(path)
        self._partials.clear()
        return finished

    @property
    def partial_uploads(self) -> list[Path]:
        return [path for path, _ in self._partials]

    def _write(self, path: Path, data: bytes) -> Path:
        mode = self.settings.partial
        if mode == "none":
            _write_atomically(path, data)
            return path
        self._partials.append((path, data))
        visible = path.with_name(path.name + PART_SUFFIX) if mode == "temp_name" else path
        visible.write_bytes(_partial_bytes(data))
        return visible

    def _free_name(self, folder: Path, kind: str, now: datetime) -> Path:
        suffix = ".txt.gz" if self.settings.compress else ".txt"
        stem = f"{FILE_PREFIXES[kind]}_{now.astimezone(UTC):%Y%m%d_%H%M%S}"
        candidate, counter = folder / f"{stem}{suffix}", 1
        pending = {path for path, _ in self._partials}
        while candidate.exists() or candidate in pending or candidate.with_name(candidate.name + PART_SUFFIX).exists():
            counter += 1
            candidate = folder / f"{stem}_{counter}{suffix}"
        return candidate
