"""Rows to ACS JSON and ACS JSON to rows: defaults, computed fields, links, opt-out timestamps, validation.

Everything here is pure except for the two callables handed in (link resolution and link titles), so the
validation rules of campaign-standard-api.md §4.6/§4.8 are tested without HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crmbridge.emulators.campaign import errors
from crmbridge.emulators.campaign.schema import (
    ANY_FLAG_TIMESTAMP,
    FLAG_TIMESTAMP_FIELDS,
    FieldSpec,
    ResourceSpec,
)
from crmbridge.emulators.campaign.settings import format_datetime

__all__ = ["LinkResolver", "RowView", "finish_write", "parse_body", "serialize"]

Row = dict[str, Any]
# target resource, value given for the link -> target row id (raises CampaignError when invalid)
LinkResolver = Callable[[ResourceSpec, FieldSpec, str], int]
SYSTEM_READ_ONLY = {"PKey", "created", "lastModified", ANY_FLAG_TIMESTAMP, *FLAG_TIMESTAMP_FIELDS.values()}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The email dataPolicy refuses a malformed address on write; its exact rules are undocumented (inferred: one "@",
# a dotted domain, no spaces or list separators), so this only refuses what no real rule would accept.
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def _input_name(name: str) -> str:
    # Newer Adobe prose says denyList*; accept it on input, always emit blackList* (§5, inferred).
    return "blackList" + name[len("denyList") :] if name.startswith("denyList") else name


@dataclass(frozen=True, slots=True)
class RowView:
    """What serialization needs besides the row: the API, this row's PKey and href, and a few switches."""

    api: str
    pkey: str
    href: str | None  # list items carry href, a single GET does not (§2.2)
    collection_base: str  # href of the row itself, for collection links such as subscriptions
    flag_timestamps: bool
    today: date
    link_object: Callable[[FieldSpec, int], dict[str, Any]]


def _computed(name: str, row: Row, view: RowView) -> Any:
    if name == "age":
        born = row.get("birthDate") or ""
        if not born:
            return 0
        b = date.fromisoformat(born)
        return view.today.year - b.year - ((view.today.month, view.today.day) < (b.month, b.day))
    if name == "domain":
        email = str(row.get("email") or "")
        return email.rpartition("@")[2] if "@" in email else ""
    if name == "cryptedId":
        return hashlib.sha256(view.pkey.encode()).hexdigest()[:40]
    if name == "profileTitle":
        # ACS builds the display title from names and email (inferred layout).
        names = " ".join(p for p in (row.get("lastName"), row.get("firstName")) if p)
        email = row.get("email") or ""
        return f"{names} ({email})" if names and email else names or email
    if name == "serviceTitle":
        return f"{row.get('label') or ''} ({row.get('name') or ''})"
    if name == "targetResource":
        return "profile"
    raise ValueError(f"unknown computed field {name!r}")


def _value(spec: FieldSpec, row: Row, view: RowView) -> Any:
    if spec.computed is not None:
        return _computed(spec.computed, row, view)
    if spec.type == "collection":
        return {"href": f"{view.collection_base}/{spec.name}/"}
    raw = row.get(spec.column)
    if spec.type == "boolean":
        return bool(raw)
    if spec.type == "integer":
        return int(raw or 0)
    if spec.type == "item":
        stored = json.loads(raw or "{}")
        return {sub: stored.get(sub, "") for sub in spec.subfields}
    if spec.type == "link":
        # An unset link is an empty object (inferred).
        return view.link_object(spec, int(raw)) if raw is not None else {}
    return "" if raw is None else raw


# Sorted key order per row shape: sorting every row's keys was a third of the cost of a 1000-row page.
_KEY_ORDER: dict[tuple[str, str, bool, bool], list[str]] = {}


def serialize(resource: ResourceSpec, row: Row, view: RowView) -> dict[str, Any]:
    """The JSON object of one row, keys sorted as ACS sends them."""
    body: dict[str, Any] = {"PKey": view.pkey, "created": row["created"], "lastModified": row["lastModified"]}
    if view.href is not None:
        body["href"] = view.href
    for spec in resource.visible_fields(view.api):
        body[spec.name] = _value(spec, row, view)
    if view.flag_timestamps and any(f.opt_out for f in resource.fields.values()):
        for name in [*FLAG_TIMESTAMP_FIELDS.values(), ANY_FLAG_TIMESTAMP]:
            body[name] = row.get(name) or ""
    shape = (resource.name, view.api, view.flag_timestamps, view.href is not None)
    order = _KEY_ORDER.get(shape)
    if order is not None and len(order) == len(body):
        try:
            return {key: body[key] for key in order}
        except KeyError:
            pass  # another schema (another app in this process) with a resource of the same name
    order = _KEY_ORDER[shape] = sorted(body, key=str.lower)
    return {key: body[key] for key in order}


def _coerce(resource: ResourceSpec, spec: FieldSpec, value: Any) -> Any:
    if spec.type == "enumeration":
        if value not in spec.enum_names():
            raise errors.invalid_enum(value, resource.schema, spec.name)
        return value
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise errors.bad_value(spec.name, value)
        return int(value)
    if spec.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.bad_value(spec.name, value)
        return value
    if spec.type == "date":
        if value in ("", None):
            return ""
        if not isinstance(value, str) or not _DATE.match(value):
            raise errors.bad_value(spec.name, value)
        try:
            date.fromisoformat(value)
        except ValueError:
            raise errors.bad_value(spec.name, value) from None
        return value
    if spec.type == "datetime":
        return _coerce_datetime(spec, value)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.bad_value(spec.name, value)
    if spec.data_policy == "email" and value and not _EMAIL.match(value):
        raise errors.bad_value(spec.name, value)
    return value


def _coerce_datetime(spec: FieldSpec, value: Any) -> str:
    if value in ("", None):
        return ""
    if not isinstance(value, str):
        raise errors.bad_value(spec.name, value)
    try:  # accept "T" or a space, with or without milliseconds (§4.8)
        return format_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise errors.bad_value(spec.name, value) from None


def _item(resource: ResourceSpec, spec: FieldSpec, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise errors.bad_value(spec.name, value)
    for sub in value:
        if sub not in spec.subfields:
            raise errors.unknown_property(sub, resource.name)
    return {sub: "" if v is None else str(v) for sub, v in value.items()}


def parse_body(resource: ResourceSpec, api: str, body: Any, resolve_link: LinkResolver) -> Row:
    """Validate a POST/PATCH body into column values; raises CampaignError with ACS's messages."""
    if not isinstance(body, dict):
        raise errors.CampaignError(500, f"{errors.RST_PREFIX} The JSON body must be an object")
    visible = {f.name: f for f in resource.visible_fields(api)}
    columns: Row = {}
    for key, value in body.items():
        name = _input_name(key)
        if name == "href":
            continue  # echoed from a previous GET; harmless (inferred)
        if name in SYSTEM_READ_ONLY:
            raise errors.read_only(name)
        spec = visible.get(name)
        if spec is None:
            raise errors.unknown_property(key, resource.name)
        if spec.read_only or spec.computed is not None:
            raise errors.read_only(name)
        if spec.type == "collection":
            continue  # a collection node is not writable through the row; ignored (inferred)
        if spec.type == "link":
            if value is None:
                columns[spec.column] = None
            elif isinstance(value, dict) and isinstance(value.get("PKey"), str):
                columns[spec.column] = resolve_link(resource, spec, value["PKey"])
            # A link object without the target's PKey is silently ignored by ACS (§2.3).
            continue
        columns[spec.column] = _item(resource, spec, value) if spec.type == "item" else _coerce(resource, spec, value)
    return columns


def finish_write(resource: ResourceSpec, columns: Row, existing: Row | None, now: datetime) -> Row:
    """Add what ACS sets on every write: created/defaults on insert, lastModified, per-flag timestamps."""
    stamp = format_datetime(now)
    values = dict(columns)
    for spec in resource.fields.values():
        if spec.type == "item" and spec.column in values:
            merged = json.loads(existing[spec.column]) if existing else {}
            merged.update(values[spec.column])
            values[spec.column] = json.dumps(merged, ensure_ascii=False)
    if existing is None:
        values["created"] = stamp
    values["lastModified"] = stamp
    changed_flag = False
    for flag, ts_name in FLAG_TIMESTAMP_FIELDS.items():
        flag_spec = resource.fields.get(flag)
        if flag_spec is None or not flag_spec.opt_out or flag not in values:
            continue
        before = int(existing[flag]) if existing else 0
        if int(values[flag]) != before:
            values[ts_name] = stamp
            changed_flag = True
    push = resource.fields.get("blackListPushnotification")
    if push is not None and "blackListPushnotification" in values:
        changed_flag |= int(values["blackListPushnotification"]) != (
            int(existing["blackListPushnotification"]) if existing else 0
        )
    if changed_flag:
        values[ANY_FLAG_TIMESTAMP] = stamp
    return values
