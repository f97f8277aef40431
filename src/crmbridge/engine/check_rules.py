"""``crmbridge check``'s rules: the configuration against a snapshot of both sides' live metadata. Pure.

Every problem carries the fix an operator can apply; ``check.py`` gathers the snapshot and prints the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from crmbridge.campaign.client import KeyLookup
from crmbridge.campaign.metadata import FieldInfo, ResourceMetadata
from crmbridge.config import CrmbridgeConfig, TableMapping
from crmbridge.config.mappings import FieldMapping
from crmbridge.dynamics.metadata import AttributeInfo, TableInfo
from crmbridge.engine.adapters import campaign_resource
from crmbridge.engine.provision import activity_tables_by_type, rollup_columns

__all__ = ["Finding", "Level", "LiveMetadata", "check_config", "exit_code", "type_problem"]

_TEXT = frozenset({"string", "memo", "text", "html"})
_NUMBER = frozenset({"integer", "long", "int64", "short", "byte", "number", "double", "float", "decimal", "int"})
_DATE = frozenset({"date", "datetime", "time"})
_DV_NUMBERS = frozenset({"Integer", "BigInt", "Decimal", "Double", "Money"})
_DV_CHOICES = frozenset({"Picklist", "State", "Status"})
_PROVISION_FIX = "run `crmbridge provision -c FILE` (use --dry-run first to see what it creates)"


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    where: str  # e.g. "mappings.contacts" or "optouts"
    message: str
    fix: str = ""


@dataclass
class LiveMetadata:
    """What the check needs from both sides, read once. A missing table or resource is None."""

    tables: dict[str, TableInfo | None] = field(default_factory=dict)
    attributes: dict[str, dict[str, AttributeInfo]] = field(default_factory=dict)  # table -> column -> info
    resources: dict[str, ResourceMetadata | None] = field(default_factory=dict)  # client resource name
    filters: dict[str, set[str]] = field(default_factory=dict)
    flag_timestamps: bool | None = None  # per-flag …LastModified on profiles; None: no profile to look at


def type_problem(column: AttributeInfo, acs: FieldInfo, mapping: FieldMapping) -> tuple[Level, str] | None:
    """Whether a Dataverse column can feed an ACS field; None when it fits."""
    dv, kind = column.attribute_type, acs.type.lower()
    pair = f"{mapping.dynamics} ({dv}) → {acs.name} ({acs.type})"
    translated = bool(mapping.replacements)
    if kind in ("link", "collection"):
        return Level.ERROR, f"{pair}: a {kind} is set through the mapping's `links:`, not a field"
    if kind == "item":
        return Level.ERROR, f"{pair}: map the sub-fields with dotted paths, e.g. {acs.name}.city"
    if kind in _TEXT:
        if dv in ("Boolean", "DateTime") and not translated:
            return Level.WARNING, f"{pair}: written as text"
        return None
    if kind in _NUMBER:
        if dv in _DV_NUMBERS or (dv in _DV_CHOICES and mapping.picklist != "label"):
            return None
        if dv in ("String", "Memo") or translated:
            return Level.WARNING, f"{pair}: values that are not numbers will become dead letters"
        return Level.ERROR, f"{pair}: Campaign expects a number"
    if kind == "boolean":
        if dv == "Boolean" or translated:
            return None
        return Level.ERROR, f"{pair}: Campaign expects a boolean; add replacements or map a Yes/No column"
    if kind in _DATE:
        if dv == "DateTime":
            return None
        if dv in ("String", "Memo"):
            return Level.WARNING, f"{pair}: text that is not a date will become a dead letter"
        return Level.ERROR, f"{pair}: Campaign expects a date"
    if kind == "enumeration":
        return _enumeration_problem(pair, dv, acs, mapping)
    return None  # a type this check does not know: Campaign validates the value on write


def _enumeration_problem(pair: str, dv: str, acs: FieldInfo, mapping: FieldMapping) -> tuple[Level, str] | None:
    if dv not in (*_DV_CHOICES, "Boolean", "String", "Memo"):
        return Level.ERROR, f"{pair}: an enumeration takes a choice or text column"
    known = set(acs.enum_values)
    written = {str(v) for v in mapping.replacements.values() if v is not None}
    unknown = sorted(written - known) if known else []
    if unknown:
        return Level.WARNING, f"{pair}: {', '.join(unknown)} not among the values {', '.join(sorted(known))}"
    if not mapping.replacements and known:
        return Level.WARNING, f"{pair}: values must be one of {', '.join(sorted(known))}; add replacements"
    return None


def _table_findings(where: str, name: str, live: LiveMetadata, *, tracked: bool) -> list[Finding]:
    info = live.tables.get(name)
    if info is None:
        return [Finding(Level.ERROR, where, f"Dataverse has no table {name!r}", "check the table's logical name")]
    if tracked and not info.change_tracking:
        fix = f"enable 'Track changes' on {name} (maker portal: table properties > Advanced options)"
        return [Finding(Level.ERROR, where, f"change tracking is off on {name}", fix)]
    return []


def _missing_columns(where: str, table: str, columns: list[str], live: LiveMetadata, fix: str) -> list[Finding]:
    known = live.attributes.get(table, {})
    missing = [column for column in dict.fromkeys(columns) if column not in known]
    if not missing:
        return []
    if len(missing) == 1:
        return [Finding(Level.ERROR, where, f"{table} has no column {missing[0]!r}", fix)]
    names = ", ".join(repr(column) for column in missing)
    return [Finding(Level.ERROR, where, f"{table} has no columns {names}", fix)]


def _resource_findings(where: str, mapping: TableMapping, live: LiveMetadata, profile_filter: str) -> list[Finding]:
    resource = campaign_resource(mapping.resource)
    meta = live.resources.get(resource)
    if meta is None:
        fix = "create and publish the custom resource (Administration > Development), or fix `resource`"
        return [Finding(Level.ERROR, where, f"Campaign has no resource {resource!r}", fix)]
    findings = []
    key = mapping.key.campaign
    if key not in meta.fields:
        fix = f"add a field {key} to {resource} holding the Dynamics id, and an identification key on it"
        findings.append(Finding(Level.ERROR, where, f"{resource} has no key field {key!r}", fix))
    lookup = KeyLookup.default_for(key)
    wanted = profile_filter if resource == "profile" and key == "externalId" else lookup.filter_name
    if wanted not in live.filters.get(resource, set()):
        fix = f"author a custom filter {wanted} on {resource} (parameter {lookup.parameter}: {key} = it); publish"
        findings.append(Finding(Level.ERROR, where, f"{resource} has no filter {wanted} to find rows by {key}", fix))
    for link in mapping.links:
        info = meta.fields.get(link.campaign_link)
        if info is None or not info.is_link:
            fix = f"add a link {link.campaign_link} from {resource} to the parent resource and publish"
            findings.append(Finding(Level.ERROR, where, f"{resource} has no link {link.campaign_link!r}", fix))
    return findings


def _field_findings(where: str, mapping: TableMapping, live: LiveMetadata) -> list[Finding]:
    meta = live.resources.get(campaign_resource(mapping.resource))
    columns = live.attributes.get(mapping.table, {})
    if meta is None:
        return []
    findings = []
    for item in mapping.fields:
        top = item.campaign.split(".", 1)[0]
        acs = meta.fields.get(top)
        if acs is None:
            fix = f"add a field {top} to {meta.name} or fix fields.{item.dynamics}"
            findings.append(Finding(Level.ERROR, where, f"{meta.name} has no field {top!r}", fix))
            continue
        column = columns.get(item.dynamics)
        if column is None or "." in item.campaign:
            continue  # a missing column is reported once; sub-fields of items are not described by resourceType
        problem = type_problem(column, acs, item)
        if problem is not None:
            fix = "map a column of a matching type, or add replacements" if problem[0] is Level.ERROR else ""
            findings.append(Finding(problem[0], where, problem[1], fix))
    return findings


def _identity_findings(where: str, mapping: TableMapping, info: TableInfo) -> list[Finding]:
    findings = []
    if mapping.entity_set and mapping.entity_set != info.entity_set:
        message = f"entity_set {mapping.entity_set!r} is not {mapping.table}'s entity set {info.entity_set!r}"
        findings.append(Finding(Level.ERROR, where, message, f"set entity_set: {info.entity_set} (or remove it)"))
    if mapping.key.dynamics != info.primary_id:
        # Links, dead letters and reconcile know a row by its primary id; another key column must be just as stable.
        message = f"key.dynamics {mapping.key.dynamics!r} is not the primary id {info.primary_id!r}"
        fix = "use the primary id, or make sure the column is unique and never changes"
        findings.append(Finding(Level.WARNING, where, message, fix))
    return findings


def _mapping_findings(mapping: TableMapping, live: LiveMetadata, profile_filter: str) -> list[Finding]:
    where = f"mappings.{mapping.name}"
    findings = _table_findings(where, mapping.table, live, tracked=True)
    info = live.tables.get(mapping.table)
    if info is not None:
        findings += _identity_findings(where, mapping, info)
        columns = [mapping.key.dynamics, *(f.dynamics for f in mapping.fields)]
        columns += [c.column for c in mapping.filters.conditions] + [link.lookup for link in mapping.links]
        findings += _missing_columns(where, mapping.table, columns, live, "check the column's logical name")
    findings += _resource_findings(where, mapping, live, profile_filter)
    findings += _field_findings(where, mapping, live)
    if not any(f.level is Level.ERROR for f in findings):
        summary = f"{mapping.table} → {mapping.resource}: {len(mapping.fields)} fields, key {mapping.key.campaign}"
        findings.append(Finding(Level.OK, where, summary))
    return findings


def _optout_findings(config: CrmbridgeConfig, live: LiveMetadata) -> list[Finding]:
    optouts = config.optouts
    if optouts.mode == "disabled":
        return []
    findings = _table_findings("optouts", "contact", live, tracked=True)
    if live.tables.get("contact") is not None:
        columns = live.attributes.get("contact", {})
        for pair in optouts.pairs:
            column = columns.get(pair.dynamics)
            if column is None:
                findings.append(Finding(Level.ERROR, "optouts", f"contact has no column {pair.dynamics!r}"))
            elif column.attribute_type != "Boolean":
                message = f"contact.{pair.dynamics} is {column.attribute_type}, not a Yes/No column"
                findings.append(Finding(Level.ERROR, "optouts", message, "pair a Yes/No (Boolean) column"))
    profile = live.resources.get("profile")
    if profile is None:
        findings.append(Finding(Level.ERROR, "optouts", "Campaign has no profile resource", "check campaign.*"))
    else:
        for pair in optouts.pairs:
            if pair.campaign not in profile.fields:
                findings.append(Finding(Level.ERROR, "optouts", f"profile has no field {pair.campaign!r}"))
    findings.append(_timestamp_finding(config, live))
    return findings


def _timestamp_finding(config: CrmbridgeConfig, live: LiveMetadata) -> Finding:
    choice = config.optouts.timestamps
    if choice == "profile_last_modified":
        return Finding(Level.OK, "optouts", "flag changes are dated by the profile's lastModified (configured)")
    if live.flag_timestamps is None:
        message = "no profile to look at yet: per-flag …LastModified timestamps are used where a profile has them"
        return Finding(Level.WARNING, "optouts", message, "run `crmbridge check` again once profiles exist")
    if live.flag_timestamps:
        return Finding(Level.OK, "optouts", "the tenant has per-flag …LastModified timestamps: the flow uses them")
    if choice == "per_flag":
        fix = "set optouts.timestamps: auto or profile_last_modified"
        message = "optouts.timestamps is per_flag, but profiles carry no …LastModified per flag"
        return Finding(Level.ERROR, "optouts", message, fix)
    return Finding(Level.OK, "optouts", "the tenant has no per-flag …LastModified timestamps: profile lastModified")


def _events_findings(config: CrmbridgeConfig, live: LiveMetadata) -> list[Finding]:
    events = config.events
    if events is None or not events.enabled:
        return []
    findings: list[Finding] = []
    for kind, spec in activity_tables_by_type(events):
        where = f"events.activity_tables.{kind}"
        table = live.tables.get(spec.logical_name)
        if table is None:
            findings.append(Finding(Level.ERROR, where, f"no activity table {spec.logical_name!r}", _PROVISION_FIX))
            continue
        if not table.is_activity:
            message = f"{spec.logical_name} is not an activity table: its rows cannot show on the contact timeline"
            fix = f"name another table in events.activity_tables.{kind}, then run `crmbridge provision`"
            findings.append(Finding(Level.ERROR, where, message, fix))
            continue
        wanted = [c.logical_name for c in spec.columns]
        findings += _missing_columns(where, spec.logical_name, wanted, live, _PROVISION_FIX)
    if events.rollups.enabled and live.tables.get("contact") is not None:
        wanted = [c.logical_name for c in rollup_columns(events)]
        findings += _missing_columns("events.rollups", "contact", wanted, live, _PROVISION_FIX)
    if not any(f.level is Level.ERROR for f in findings):
        findings.append(Finding(Level.OK, "events", "activity tables and columns exist"))
    return findings


def check_config(config: CrmbridgeConfig, live: LiveMetadata) -> list[Finding]:
    """Every finding, errors first within each section."""
    findings: list[Finding] = []
    for mapping in config.mappings:
        if mapping.enabled:
            findings += _mapping_findings(mapping, live, config.campaign.external_id_filter)
    findings += _optout_findings(config, live)
    findings += _events_findings(config, live)
    return findings


def exit_code(findings: list[Finding]) -> int:
    """1 when any finding is an error (warnings are allowed), else 0."""
    return 1 if any(f.level is Level.ERROR for f in findings) else 0
