"""Reader of ACS workflow export files (delivery and tracking logs) from a local folder or over SFTP.

Resumes from (file, line); a file read to the end is remembered in the cursor and never read again; a file still
being uploaded (a temporary name, a truncated gzip stream, or a text file cut mid-line that is still changing)
is left for the next pass; malformed rows are reported with file and line, never dropped silently
(adobe-io-events-and-exports.md §C.4-§C.8).
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import anyio

from crmbridge.campaign.export_rows import (
    DEFAULT_STATUSES,
    DEFAULT_URL_TYPES,
    ExportLayout,
    detect_delimiter,
    detect_layout,
    row_to_event,
)
from crmbridge.exceptions import ConfigError, TransientError
from crmbridge.records import EmailEvent, EventType

__all__ = [
    "ExportBatch",
    "ExportCursor",
    "ExportFile",
    "ExportReader",
    "ExportSource",
    "FolderSource",
    "MalformedRow",
    "SftpSource",
]

# Names an upload in progress typically has (SFTP clients and ACS's Transfer file differ: inferred).
_UPLOADING_SUFFIXES = (".part", ".tmp", ".filepart", ".partial", ".uploading")


@dataclass(frozen=True, slots=True)
class ExportFile:
    name: str
    size: int
    mtime: float  # seconds since the epoch


class ExportSource(Protocol):
    """Where export files are: lists the matching files and reads one whole."""

    async def list_files(self) -> list[ExportFile]: ...

    async def read(self, name: str) -> bytes: ...


def _is_candidate(name: str, pattern: str) -> bool:
    if name.startswith(".") or name.lower().endswith(_UPLOADING_SUFFIXES):
        return False
    return fnmatch.fnmatch(name, pattern)


class FolderSource:
    """Export files in a local folder (e.g. a mounted share the Transfer file activity writes to)."""

    def __init__(self, folder: Path, pattern: str = "*.txt*") -> None:
        self.folder = folder
        self.pattern = pattern

    async def list_files(self) -> list[ExportFile]:
        def scan() -> list[ExportFile]:
            if not self.folder.is_dir():
                raise ConfigError(f"the exports folder {self.folder} does not exist")
            found = []
            for path in self.folder.iterdir():
                if path.is_file() and _is_candidate(path.name, self.pattern):
                    stat = path.stat()
                    found.append(ExportFile(path.name, stat.st_size, stat.st_mtime))
            return found

        return await anyio.to_thread.run_sync(scan)

    async def read(self, name: str) -> bytes:
        return await anyio.Path(self.folder / name).read_bytes()


class SftpSource:
    """Export files in a folder of an SFTP server, read with asyncssh. Use as ``async with SftpSource(...)``."""

    def __init__(
        self,
        host: str,
        *,
        username: str,
        port: int = 22,
        password: str | None = None,
        client_keys: list[str] | None = None,
        passphrase: str | None = None,
        known_hosts: Any = (),  # asyncssh's known_hosts argument: () = the user's ~/.ssh/known_hosts
        remote_dir: str = ".",
        pattern: str = "*.txt*",
    ) -> None:
        self._options: dict[str, Any] = {"port": port, "username": username}
        if password is not None:
            self._options["password"] = password
        if client_keys is not None:
            self._options["client_keys"] = client_keys
            self._options["passphrase"] = passphrase
        if known_hosts != ():
            self._options["known_hosts"] = known_hosts
        self.host = host
        self.remote_dir = remote_dir.rstrip("/") or "/"
        self.pattern = pattern
        self._connection: Any = None
        self._sftp: Any = None

    async def __aenter__(self) -> SftpSource:
        import asyncssh

        try:
            self._connection = await asyncssh.connect(self.host, **self._options)
            self._sftp = await self._connection.start_sftp_client()
        except (OSError, asyncssh.Error) as exc:
            raise TransientError(f"SFTP {self.host}:{self._options['port']} is unreachable: {exc}") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        if self._connection is not None:
            self._connection.close()
            await self._connection.wait_closed()
        self._sftp = self._connection = None

    async def list_files(self) -> list[ExportFile]:
        entries = await self._client().readdir(self.remote_dir)
        return [
            ExportFile(str(entry.filename), int(entry.attrs.size or 0), float(entry.attrs.mtime or 0))
            for entry in entries
            if entry.attrs.type == 1 and _is_candidate(str(entry.filename), self.pattern)  # 1 = regular file
        ]

    async def read(self, name: str) -> bytes:
        async with self._client().open(f"{self.remote_dir}/{name}", "rb") as handle:
            data: bytes = await handle.read()
        return data

    def _client(self) -> Any:
        if self._sftp is None:
            raise RuntimeError("use SftpSource as 'async with SftpSource(...) as source'")
        return self._sftp


@dataclass(frozen=True, slots=True)
class ExportCursor:
    """Files read to the end, and the file in progress with its last consumed line (1 = the header)."""

    done: frozenset[str] = frozenset()
    file: str | None = None
    line: int = 0

    def to_json(self) -> str:
        return json.dumps({"done": sorted(self.done), "file": self.file, "line": self.line}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ExportCursor:
        try:
            data = json.loads(text)
            return cls(frozenset(map(str, data.get("done", ()))), data.get("file"), int(data.get("line", 0)))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"the stored export position is not readable: {exc}") from exc


@dataclass(frozen=True, slots=True)
class MalformedRow:
    file: str
    line: int
    reason: str
    raw: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ExportBatch:
    events: list[EmailEvent]
    cursor: ExportCursor  # commit it together with the batch's writes
    malformed: list[MalformedRow] = field(default_factory=list)
    skipped: int = 0  # rows deliberately not synced (Mirror page / Opt-out clicks, ignored failures)


class ExportReader:
    """Turns the export files of one source into :class:`ExportBatch` es of at most ``batch_size`` rows."""

    def __init__(
        self,
        source: ExportSource,
        *,
        delimiter: str | None = None,  # None: detected from the header line
        encoding: str = "utf-8",
        batch_size: int = 500,
        settle_seconds: float = 60.0,
        statuses: Mapping[str, EventType] = DEFAULT_STATUSES,
        url_types: Mapping[str, EventType | None] = DEFAULT_URL_TYPES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self._delimiter = delimiter
        self._encoding = encoding
        self._batch_size = batch_size
        self._settle = settle_seconds
        self._statuses = statuses
        self._url_types = url_types
        self._clock = clock
        self.still_uploading: list[str] = []  # files left for a later pass in the last call
        self._last_listing: dict[str, tuple[int, float]] = {}  # name -> (size, mtime) at the previous pass

    async def batches(self, cursor: ExportCursor | None = None) -> AsyncIterator[ExportBatch]:
        """Every unread row of every complete file, in file-name order (ACS appends date and time to names)."""
        current = cursor or ExportCursor()
        files = sorted(await self.source.list_files(), key=lambda f: f.name)
        present = {f.name for f in files}
        # Forget files that were archived or deleted from the server, so the cursor does not grow forever.
        current = replace(current, done=current.done & present)
        self.still_uploading = []
        previous, self._last_listing = self._last_listing, {f.name: (f.size, f.mtime) for f in files}
        ordered = [f for f in files if f.name == current.file] + [
            f for f in files if f.name not in current.done and f.name != current.file
        ]
        for export in ordered:
            settled = self._clock() - export.mtime >= self._settle or previous.get(export.name) == (
                export.size,
                export.mtime,
            )
            # A recent file is read only once its size and time held still between two passes: an upload can
            # pause on a line boundary, and a file marked done is never read again.
            text = await self._complete_text(export) if settled else None
            if text is None:
                self.still_uploading.append(export.name)
                continue
            start = current.line if export.name == current.file else 0
            async for batch in self._file_batches(export.name, text, start, current.done):
                current = batch.cursor
                yield batch

    async def _complete_text(self, export: ExportFile) -> str | None:
        data = await self.source.read(export.name)
        if export.name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (EOFError, gzip.BadGzipFile, zlib.error):
                return None  # a gzip stream cut short: the upload is not finished
        elif data and not data.endswith(b"\n") and self._clock() - export.mtime < self._settle:
            return None  # cut mid-line and changed recently: still growing
        return data.decode(self._encoding, errors="surrogateescape")

    async def _file_batches(
        self, name: str, text: str, start_line: int, done: frozenset[str]
    ) -> AsyncIterator[ExportBatch]:
        lines = text.splitlines()
        if not lines:
            yield ExportBatch([], ExportCursor(done | {name}))
            return
        delimiter = self._delimiter or detect_delimiter(lines[0])
        columns = next(csv.reader([lines[0]], delimiter=delimiter))
        layout = detect_layout(columns)
        if layout is None:
            problem = MalformedRow(name, 1, f"unknown export layout, columns {columns}", lines[0][:300])
            yield ExportBatch([], ExportCursor(done | {name}), [problem])
            return
        events: list[EmailEvent] = []
        malformed: list[MalformedRow] = []
        skipped = 0
        for number in range(max(start_line, 1) + 1, len(lines) + 1):
            outcome = self._row(name, number, lines[number - 1], columns, delimiter, layout)
            if isinstance(outcome, MalformedRow):
                malformed.append(outcome)
            elif outcome is None:
                skipped += 1
            else:
                events.append(outcome)
            if len(events) + len(malformed) + skipped >= self._batch_size and number < len(lines):
                yield ExportBatch(events, ExportCursor(done, name, number), malformed, skipped)
                events, malformed, skipped = [], [], 0
        yield ExportBatch(events, ExportCursor(done | {name}), malformed, skipped)

    def _row(
        self, name: str, number: int, line: str, columns: list[str], delimiter: str, layout: ExportLayout
    ) -> EmailEvent | MalformedRow | None:
        raw = line.encode(self._encoding, errors="surrogateescape").decode(self._encoding, errors="replace")
        if not line.strip():
            return MalformedRow(name, number, "empty line", raw)
        if any("\udc80" <= char <= "\udcff" for char in line):
            return MalformedRow(name, number, f"not valid {self._encoding}", raw)
        try:
            values = next(csv.reader(io.StringIO(line), delimiter=delimiter))
        except csv.Error as exc:
            return MalformedRow(name, number, f"unreadable row: {exc}", raw)
        if len(values) != len(columns):
            return MalformedRow(name, number, f"{len(values)} columns where the header has {len(columns)}", raw)
        outcome = row_to_event(
            layout,
            dict(zip(columns, values, strict=True)),
            f"{name}#L{number}",
            statuses=self._statuses,
            url_types=self._url_types,
        )
        if outcome.malformed is not None:
            return MalformedRow(name, number, outcome.malformed, raw)
        return outcome.event
