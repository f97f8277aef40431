"""In-memory stand-ins for the two ports of a flow: a change-tracked table and a Campaign resource.

They model only what the ports promise (pages, delta links, expiry; upsert by business key), so the tables flow's
own logic can be tested fast and exactly. End-to-end behaviour against the emulators is tested in tests/e2e.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmbridge.engine.ports import ChangePage, ParentRef
from crmbridge.exceptions import CheckpointExpired, RecordError, TransientError
from crmbridge.records import SourceChange, Tombstone


@dataclass
class FakeTable:
    """A Dataverse table with change tracking: every write bumps a version; delta links name a version."""

    name: str
    key: str
    page_size: int = 3
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    version: int = 0
    expired_before: int = 0  # delta links older than this version are refused
    reads: list[str] = field(default_factory=list)

    def put(self, row_id: str, **values: Any) -> None:
        self.version += 1
        self.rows[row_id] = {self.key: row_id, **self.rows.get(row_id, {}), **values}
        self.versions[row_id] = self.version
        self.deleted.pop(row_id, None)

    def delete(self, row_id: str) -> None:
        self.version += 1
        self.rows.pop(row_id, None)
        self.versions.pop(row_id, None)
        self.deleted[row_id] = self.version

    async def read(
        self, *, columns: Sequence[str], delta_link: str | None, next_link: str | None
    ) -> AsyncIterator[ChangePage]:
        if next_link is not None:
            kind, since, offset, snapshot = next_link.split(":")
            start, base, at = int(offset), int(since), int(snapshot)
        else:
            base = 0
            if delta_link is not None:
                base = int(delta_link.split(":")[1])
                if base < self.expired_before:
                    raise CheckpointExpired(f"delta token {delta_link} expired")
            kind, start, at = ("delta" if delta_link else "full"), 0, self.version
        self.reads.append(f"{kind}:{base}:{start}")
        changes: list[SourceChange | Tombstone] = []
        for row_id, version in sorted(self.versions.items(), key=lambda item: item[1]):
            if version > base:
                row = self.rows[row_id]
                changes.append(SourceChange(self.name, row_id, {c: row.get(c) for c in columns}))
        if kind == "delta":
            changes += [
                Tombstone(self.name, i) for i, v in sorted(self.deleted.items(), key=lambda x: x[1]) if v > base
            ]
        while True:
            chunk = changes[start : start + self.page_size]
            start += self.page_size
            more = start < len(changes)
            yield ChangePage(
                chunk,
                next_link=f"{kind}:{base}:{start}:{at}" if more else None,
                delta_link=None if more else f"delta:{at}",
            )
            if not more:
                return


@dataclass
class FakeResource:
    """A Campaign resource keyed by business key; can refuse chosen keys and fail after N writes."""

    name: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)
    fail_after: int | None = None
    writes: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)
    parents_seen: dict[str, dict[str, ParentRef]] = field(default_factory=dict)

    def _count(self) -> None:
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise TransientError("outage (fake)")
        self.writes += 1

    async def upsert(
        self, key: str, values: Mapping[str, Any], *, known: bool, parents: Mapping[str, ParentRef]
    ) -> None:
        if key in self.refuse:
            raise RecordError(f"XTK-170036 Unable to parse expression for {key} (fake)")
        self._count()
        self.calls.append(("update" if key in self.records else "create", key))
        self.records[key] = _merge(self.records.get(key, {}), values)
        if parents:
            self.parents_seen[key] = dict(parents)

    async def delete(self, key: str) -> None:
        self._count()
        self.calls.append(("delete", key))
        self.records.pop(key, None)

    async def fetch(self, key: str) -> Mapping[str, Any] | None:
        return self.records.get(key)


def _merge(old: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


@dataclass
class FakeEventFeed:
    """A journal-like source: a list of events, a position per batch, optional expiry of old positions."""

    events: list[Any]
    batch_size: int = 3
    oldest_kept: int = 0  # positions before this index are gone (HTTP 410)
    gap_started_at: int | None = None  # after a gap, reading resumes here (the oldest event still kept)
    repeats_per_batch: int = 0  # copies the source dropped itself, as the journal consumer does by event id

    async def batches(self, position: str | None, *, after_gap: bool = False) -> AsyncIterator[Any]:
        from crmbridge.engine.ports import EventBatch

        start = int(position) if position is not None else (self.oldest_kept if after_gap else 0)
        if position is not None and start < self.oldest_kept:
            raise CheckpointExpired(f"position {position} is older than the retention (fake 410)")
        while True:
            chunk = self.events[start : start + self.batch_size]
            start += len(chunk)
            yield EventBatch(
                chunk, position=str(start), caught_up=start >= len(self.events), repeats=self.repeats_per_batch
            )
            if start >= len(self.events):
                return


@dataclass
class FakeDynamics:
    """Activities, tasks and contact roll-ups as Dataverse would hold them after upserts by id."""

    contacts: set[str]
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    contact_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_after: int | None = None
    calls: int = 0

    def _contact_of(self, values: Mapping[str, Any]) -> str:
        bind = next(v for k, v in values.items() if k.startswith("regardingobjectid_contact_"))
        return str(bind)[len("/contacts(") : -1]

    async def upsert_activities(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        from crmbridge.engine.ports import MissingContact

        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise TransientError("outage (fake)")
        errors: dict[str, RecordError] = {}
        for row in rows:
            if self._contact_of(row.values) not in self.contacts:
                errors[row.activity_id] = MissingContact(f"contact With Id = {row.contact_id} Does Not Exist (fake)")
            else:
                self.activities[row.activity_id] = {"@table": row.entity_set, **row.values}
        return errors

    async def upsert_tasks(self, rows: Sequence[Any]) -> Mapping[str, RecordError]:
        for row in rows:
            self.tasks[row.activity_id] = dict(row.values)
        return {}

    async def update_contacts(self, values: Mapping[str, Mapping[str, Any]]) -> Mapping[str, RecordError]:
        for contact, columns in values.items():
            self.contact_values.setdefault(contact, {}).update(columns)
        return {}


@dataclass
class FakeContacts:
    """Dataverse contacts for the opt-out flow: a change-tracked FakeTable plus reads with ETags."""

    table: FakeTable
    now: Any  # callable returning the current datetime
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # contact ids read one by one, in order
    before_read: Any = None  # hook: called with the contact id before each read_contact (to simulate races)

    def edit(self, contact_id: str, **values: Any) -> None:
        # Dataverse dates rows to the whole second (§2.6), whatever the moment's fraction.
        self.table.put(contact_id, modifiedon=self.now().strftime("%Y-%m-%dT%H:%M:%SZ"), **values)

    async def read_contact(self, contact_id: str, columns: Sequence[str]) -> tuple[Mapping[str, Any], str] | None:
        if self.before_read is not None:
            self.before_read(contact_id)
        self.reads.append(contact_id)
        row = self.table.rows.get(contact_id)
        if row is None:
            return None
        return dict(row), f'W/"{self.table.versions[contact_id]}"'

    async def write_contact(self, contact_id: str, values: Mapping[str, Any], *, etag: str) -> bool:
        if etag != f'W/"{self.table.versions[contact_id]}"':
            return False
        self.writes.append((contact_id, dict(values)))
        self.edit(contact_id, **values)
        return True


@dataclass
class FakeProfiles:
    """ACS profiles keyed by externalId, with lastModified and (optionally) per-flag timestamps."""

    now: Any
    per_flag_timestamps: bool = True
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    before_read: Any = None  # hook: called with the contact id before each read_profile (to simulate races)

    def edit(self, contact_id: str, **values: Any) -> None:
        stamp = self.now().strftime("%Y-%m-%d %H:%M:%S.000Z")
        profile = self.profiles.setdefault(contact_id, {"externalId": contact_id})
        profile.update(values)
        profile["lastModified"] = stamp
        if self.per_flag_timestamps:
            for name in values:
                if name.startswith("blackList"):
                    profile[f"{name}LastModified"] = stamp

    async def modified_since(self, watermark: Any) -> AsyncIterator[Mapping[str, Any]]:
        from crmbridge.mapping.values import parse_timestamp as parse_acs_time

        ordered = sorted(self.profiles.values(), key=lambda p: p["lastModified"], reverse=True)
        for profile in ordered:
            modified = parse_acs_time(profile["lastModified"])
            if watermark is not None and modified is not None and modified < watermark:
                return
            yield dict(profile)

    async def read_profile(self, contact_id: str) -> Mapping[str, Any] | None:
        if self.before_read is not None:
            self.before_read(contact_id)
        found = self.profiles.get(contact_id)
        return dict(found) if found is not None else None

    async def write_profile(self, contact_id: str, values: Mapping[str, Any]) -> None:
        self.writes.append((contact_id, dict(values)))
        self.edit(contact_id, **values)
