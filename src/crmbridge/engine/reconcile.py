"""``crmbridge reconcile MAPPING [--repair]`` and ``crmbridge replay MAPPING``.

Reconcile compares both sides completely: every Dynamics row of the mapping's table is streamed through the
compiled mapping, every Campaign row of the resource is streamed and matched by business key, and rows are
reported missing (Dynamics implies them, Campaign lacks them), extra (Campaign holds a key Dynamics does not imply)
or different (field by field). ``--repair`` writes only those rows, through the table flow's own write path:
missing rows are created, different rows updated, and extra rows deleted only when crmbridge's links say
crmbridge created them (a row someone else made in Campaign is reported, never deleted).

Memory, first version: the expected values of the Dynamics side are held in a dict keyed by business key while
Campaign is streamed (roughly 1 KB per row); the Campaign side is never held. Fields written with
``apply_updates: false`` and links to parent rows are not compared (the first may differ by design; the second
are PKeys that change between instances).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crmbridge.config import TableMapping
from crmbridge.engine.adapters import DataverseChangeFeed, campaign_resource
from crmbridge.engine.decide import Outcome
from crmbridge.engine.runner import Runner, TablesProgress
from crmbridge.engine.table_spec import TableSpec, build_table_spec
from crmbridge.engine.tables import PassStats, replay_in_flight
from crmbridge.exceptions import ConfigError
from crmbridge.mapping import MappingError
from crmbridge.records import SourceChange
from crmbridge.state import Flow

__all__ = ["ReconcileReport", "RowDiff", "compare_values", "reconcile", "replay"]


@dataclass(frozen=True, slots=True)
class RowDiff:
    kind: str  # missing | extra | different
    key: str  # business key in Campaign
    fields: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (Campaign, Dynamics implies)
    owned: bool = True  # extra rows: crmbridge's links say it created the row


@dataclass
class ReconcileReport:
    mapping: str
    dynamics_rows: int = 0
    campaign_rows: int = 0
    unmappable: int = 0  # Dynamics rows the mapping refuses (they are dead letters in a pass)
    diffs: list[RowDiff] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)  # created / updated / deleted / parked / failed

    def of_kind(self, kind: str) -> list[RowDiff]:
        return [d for d in self.diffs if d.kind == kind]

    @property
    def in_sync(self) -> bool:
        return not self.diffs


@dataclass(frozen=True, slots=True)
class _Expected:
    source_id: str
    values: Mapping[str, Any]  # flattened update values


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _same(campaign: Any, expected: Any) -> bool:
    # ACS answers an empty text as "" and numbers may come back as text (inferred from the API's JSON samples).
    if campaign in (None, "") and expected in (None, ""):
        return True
    if isinstance(expected, bool) or isinstance(campaign, bool):
        return bool(campaign == expected)
    return bool(campaign == expected) or str(campaign) == str(expected)


def compare_values(campaign_row: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field -> (Campaign value, value Dynamics implies) for each expected field that differs. Pure."""
    held = _flatten(campaign_row)
    return {name: (held.get(name), value) for name, value in expected.items() if not _same(held.get(name), value)}


async def _expected_rows(
    runner: Runner, mapping: TableMapping, spec: TableSpec, report: ReconcileReport
) -> tuple[dict[str, _Expected], set[str]]:
    """Business key -> what Campaign should hold; plus keys whose Campaign row may stay (filtered out, kept)."""
    feed = DataverseChangeFeed(runner.services.dataverse, await runner.table_ref(mapping))
    expected: dict[str, _Expected] = {}
    tolerated: set[str] = set()
    async for page in feed.read(columns=spec.columns, delta_link=None, next_link=None):
        for change in page.changes:
            if not isinstance(change, SourceChange):
                continue
            report.dynamics_rows += 1
            if not spec.compiled.passes(change.values):
                if not spec.delete_filtered_out:
                    tolerated.add(str(change.values.get(mapping.key.dynamics) or change.id))
                continue
            try:
                mapped = spec.compiled.map(change.values)
            except MappingError:
                report.unmappable += 1
                continue
            expected[mapped.key] = _Expected(change.id, _flatten(mapped.update_values))
    return expected, tolerated


async def _compare(runner: Runner, mapping: TableMapping, spec: TableSpec, report: ReconcileReport) -> dict[str, str]:
    """Fill ``report.diffs``; returns business key -> Dynamics id of the rows that need a write."""
    expected, tolerated = await _expected_rows(runner, mapping, spec, report)
    key_field = mapping.key.campaign
    to_write: dict[str, str] = {}
    extras: list[str] = []
    async for row in runner.services.campaign.iter_records(campaign_resource(mapping.resource)):
        report.campaign_rows += 1
        key = _flatten(row).get(key_field)
        if key in (None, "") or str(key) in tolerated:
            continue  # a row Campaign made itself (no Dynamics key), or one the filter lets stay
        wanted = expected.pop(str(key), None)
        if wanted is None:
            extras.append(str(key))
            continue
        diff = compare_values(row, wanted.values)
        if diff:
            report.diffs.append(RowDiff("different", str(key), diff))
            to_write[str(key)] = wanted.source_id
    for key, wanted in expected.items():
        report.diffs.append(RowDiff("missing", key, {name: (None, value) for name, value in wanted.values.items()}))
        to_write[key] = wanted.source_id
    links = runner.services.store.links_for(mapping.name, extras)
    for key in extras:
        link = links.get(key)
        report.diffs.append(RowDiff("extra", key, owned=link is not None and link.target_key == key))
    return to_write


async def _repair(runner: Runner, mapping: TableMapping, report: ReconcileReport, to_write: dict[str, str]) -> None:
    flow = await runner.tables_flow(mapping)
    feed = DataverseChangeFeed(runner.services.dataverse, await runner.table_ref(mapping))
    missing = {d.key for d in report.of_kind("missing")}
    ids = list(to_write.values())
    current = await feed.fetch_rows(ids, flow.spec.columns)
    absent = [to_write[key] for key in missing]
    outcomes = await flow.write_rows({i: current.get(i) for i in ids}, absent_in_target=absent, force=True)
    counts = {"created": 0, "updated": 0, "deleted": 0, "parked": 0, "failed": 0}
    names = {
        Outcome.CREATE: "created",
        Outcome.UPDATE: "updated",
        Outcome.DELETE: "deleted",
        Outcome.PARK: "parked",  # a child whose parent is not in Campaign: written when the parent lands
        Outcome.FAIL: "failed",  # now an open dead letter
    }
    for outcome in outcomes.values():
        if outcome in names:
            counts[names[outcome]] += 1
    owned = {d.key: d.key for d in report.of_kind("extra") if d.owned}
    refused = await flow.delete_keys(owned)
    counts["deleted"] += len(owned) - len(refused)
    counts["failed"] += len(refused)
    report.repaired = counts


def _mapping(runner: Runner, name: str) -> TableMapping:
    for mapping in runner.config.mappings:
        if mapping.name == name and mapping.enabled:
            return mapping
    raise ConfigError(f"no enabled mapping named {name!r} (see `crmbridge config validate`)")


async def reconcile(runner: Runner, name: str, *, repair: bool = False) -> ReconcileReport:
    """Compare both sides of one mapping completely; with ``repair``, write only what differs."""
    mapping = _mapping(runner, name)
    spec = build_table_spec(runner.config, mapping)
    report = ReconcileReport(name)
    to_write = await _compare(runner, mapping, spec, report)
    if repair and report.diffs:
        await _repair(runner, mapping, report, to_write)
    return report


async def replay(
    runner: Runner, name: str, *, progress: Callable[[str], TablesProgress | None] | None = None
) -> PassStats:
    """Re-read the whole table of one mapping and rewrite every row; an interrupted replay resumes where it was."""
    _mapping(runner, name)
    checkpoint = runner.services.store.checkpoint(Flow.TABLES, name)
    resume = checkpoint is not None and replay_in_flight(checkpoint.in_flight)
    # replay=False resumes the stored in-flight replay read; replay=True would start it over.
    [stats] = await runner.tables_pass(only=name, replay=not resume, progress=progress)
    return stats
