"""Path filters (``by<Filter>`` segments, chainable) and ``_order`` as SQL over alias ``t`` (§3.4, §3.5).

Built-in: profile ``byEmail`` (exact) and ``byText`` (case-sensitive prefix on email/lastName, narrowed by
``filterType``); service ``byChannel`` and ``byText`` (name/label). Custom filters come from the schema file and
exist on the Ext and customResources APIs only, with their generated ``<name>_parameter`` arguments (D3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crmbridge.emulators.campaign import errors
from crmbridge.emulators.campaign.schema import API_STANDARD, ResourceSpec

__all__ = ["BUILT_IN_FILTERS", "FilterSql", "filter_sql", "is_filter", "parse_order", "prefix_condition"]

# filter name -> (label, parameter names) per built-in resource (D1 via §2.6/§2.7)
BUILT_IN_FILTERS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "profile": {"byEmail": ("By email", ("email",)), "byText": ("By name or email", ("text", "filterType"))},
    "service": {"byChannel": ("By channel", ("channel",)), "byText": ("By label or name", ("text",))},
}
_TEXT_FIELDS = {"profile": ("email", "lastName"), "service": ("name", "label")}
_PROFILE_FILTER_TYPES = ("firstName", "lastName", "email")
_MAX_CHAR = "\U0010ffff"


@dataclass(slots=True)
class FilterSql:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)


def is_filter(resource: ResourceSpec, api: str, name: str) -> bool:
    if name in BUILT_IN_FILTERS.get(resource.name, {}):
        return True
    return api != API_STANDARD and name in resource.filters


def prefix_condition(column: str, prefix: str) -> tuple[str, list[Any]]:
    """Case-sensitive prefix match as an index-friendly range (byText is prefix-only, §3.5)."""
    return f'(t."{column}" >= ? AND t."{column}" < ?)', [prefix, prefix + _MAX_CHAR]


def _required(params: Mapping[str, str], name: str, filter_name: str) -> str:
    value = params.get(name)
    if value is None:
        # ACS's answer to a missing filter parameter is undocumented (inferred).
        raise errors.CampaignError(500, f"{errors.RST_PREFIX} Parameter '{name}' is missing for filter '{filter_name}'")
    return value


def _built_in(resource: ResourceSpec, name: str, params: Mapping[str, str], sql: FilterSql, email_cs: bool) -> None:
    if resource.name == "profile" and name == "byEmail":
        email = _required(params, "email", name)
        sql.add('t."email" = ?' if email_cs else 't."email" = ? COLLATE NOCASE', email)
    elif name == "byText":
        text = _required(params, "text", name)
        filter_type = params.get("filterType") if resource.name == "profile" else None
        if filter_type is not None and filter_type not in _PROFILE_FILTER_TYPES:
            raise errors.CampaignError(500, f"{errors.RST_PREFIX} Unknown filter type '{filter_type}'")
        columns = (filter_type,) if filter_type else _TEXT_FIELDS[resource.name]
        parts = [prefix_condition(column, text) for column in columns]
        sql.add("(" + " OR ".join(p[0] for p in parts) + ")", *[v for p in parts for v in p[1]])
    elif resource.name == "service" and name == "byChannel":
        sql.add('t."messageType" = ?', _required(params, "channel", name))


def filter_sql(
    resource: ResourceSpec, api: str, names: list[str], params: Mapping[str, str], *, email_case_sensitive: bool
) -> FilterSql:
    """AND of the chained filters; all their parameters come from one query string (§3.5)."""
    sql = FilterSql()
    for name in names:
        if name in BUILT_IN_FILTERS.get(resource.name, {}):
            _built_in(resource, name, params, sql, email_case_sensitive)
            continue
        custom = resource.filters[name]
        for param, field_name in custom.params.items():
            column = resource.fields[field_name].column
            value = _required(params, param, name)
            sql.add(f't."{column}" = ?', value)
            if column == resource.custom_key and value != "":
                # Implied by the equality, and what lets SQLite use the key's partial unique index (WHERE key
                # != ''): without it a lookup by key scanned the table, 120 ms per lookup at 1M profiles.
                sql.add(f"t.\"{column}\" != ''")
    return sql


def parse_order(resource: ResourceSpec, api: str, raw: str | None) -> tuple[str, bool]:
    """``_order=field`` or ``field desc`` (the space arrives as %20) -> (column, descending)."""
    if not raw:
        return "id", False
    name, _, direction = raw.strip().partition(" ")
    descending = direction.strip().lower() == "desc"
    if name in ("lastModified", "created"):
        return name, descending
    spec = next((f for f in resource.visible_fields(api) if f.name == name), None)
    if spec is None or not spec.sortable or not spec.stored:
        # Only fields flagged sortable in the metadata can be sorted (§3.4); the message is inferred.
        raise errors.CampaignError(500, f"{errors.RST_PREFIX} The '{name}' field of '{resource.name}' is not sortable")
    return spec.column, descending
