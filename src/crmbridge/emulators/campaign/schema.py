"""The data model of the emulated instance: resources, fields, keys, links and custom filters, read from JSON.

Built-in resources (``profile``, ``service``) and custom resources (``cus*``) come from one schema file; the
default ships with ``cusVehicle`` (campaign-standard-api.md §2.5-2.7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources as package_files
from pathlib import Path
from typing import Any

__all__ = [
    "API_CUSTOM",
    "API_EXT",
    "API_STANDARD",
    "FieldSpec",
    "FilterSpec",
    "ResourceSpec",
    "Schema",
    "load_schema",
]

API_STANDARD = "profileAndServices"
API_EXT = "profileAndServicesExt"
API_CUSTOM = "customResources"
BUILT_IN = ("profile", "service")
STORED_TYPES = {"string", "boolean", "integer", "date", "datetime", "enumeration", "item", "link"}
ALL_TYPES = STORED_TYPES | {"collection"}
MAX_ID_LENGTH = 30  # resource, field and link ids are at most 30 characters (§2.5, D2)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str
    length: int | None = None
    read_only: bool = False
    computed: str | None = None  # derived at read time, never stored
    ext: bool = False  # extension field: visible on profileAndServicesExt only
    sortable: bool = False
    index: bool = False
    opt_out: bool = False
    default: Any = None
    values: tuple[tuple[str, Any, str], ...] = ()  # enumeration (name, stored value, label)
    subfields: tuple[str, ...] = ()  # item
    target: str | None = None  # link target resource
    cardinality: str = "0..1"  # link: "1" hides the child until its parent exists, "0..1" does not
    data_policy: str = "none"

    @property
    def stored(self) -> bool:
        return self.type in STORED_TYPES and self.computed is None

    @property
    def column(self) -> str:
        return f"{self.name}_id" if self.type == "link" else self.name

    def enum_names(self) -> list[str]:
        return [value[0] for value in self.values]


@dataclass(frozen=True, slots=True)
class FilterSpec:
    name: str
    label: str
    params: dict[str, str]  # URL parameter -> field


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    name: str
    schema: str
    label: str
    xtk_label: str
    fields: dict[str, FieldSpec]
    custom_key: str | None = None
    raw_key_on_standard_api: bool = False
    filters: dict[str, FilterSpec] = field(default_factory=dict)

    @property
    def is_custom(self) -> bool:
        return self.name.startswith("cus")

    def visible_fields(self, api: str) -> list[FieldSpec]:
        return [f for f in self.fields.values() if api != API_STANDARD or not f.ext]

    def links(self) -> list[FieldSpec]:
        return [f for f in self.fields.values() if f.type == "link"]

    def mandatory_links(self) -> list[FieldSpec]:
        return [f for f in self.links() if f.cardinality == "1"]


@dataclass(frozen=True, slots=True)
class Schema:
    resources: dict[str, ResourceSpec]

    def linked_to_profile(self, name: str, _seen: frozenset[str] = frozenset()) -> bool:
        """Custom resources linked (directly or through others) to profile live on the Ext API (§2.1)."""
        if name in BUILT_IN:
            return True
        spec = self.resources[name]
        seen = _seen | {name}
        return any(
            link.target is not None and link.target not in seen and self.linked_to_profile(link.target, seen)
            for link in spec.links()
        )

    def resource_for(self, api: str, name: str) -> ResourceSpec | None:
        spec = self.resources.get(name)
        if spec is None:
            return None
        if api == API_STANDARD:
            return spec if name in BUILT_IN else None
        if api == API_EXT:
            return spec if self.linked_to_profile(name) else None
        if api == API_CUSTOM:
            return spec if spec.is_custom and not self.linked_to_profile(name) else None
        return None

    def names_for(self, api: str) -> list[str]:
        return [name for name in self.resources if self.resource_for(api, name) is not None]


def _field(raw: dict[str, Any]) -> FieldSpec:
    kind = str(raw["type"])
    if kind not in ALL_TYPES:
        raise ValueError(f"field {raw.get('name')!r}: unknown type {kind!r} (known: {', '.join(sorted(ALL_TYPES))})")
    cardinality = str(raw.get("cardinality", "0..1"))
    if cardinality not in ("1", "0..1"):
        raise ValueError(f"link {raw['name']!r}: cardinality must be '1' or '0..1'")
    return FieldSpec(
        name=str(raw["name"]),
        type=kind,
        length=raw.get("length"),
        read_only=bool(raw.get("readOnly", False)),
        computed=raw.get("computed"),
        ext=bool(raw.get("ext", False)),
        sortable=bool(raw.get("sortable", False)),
        index=bool(raw.get("index", False)),
        opt_out=bool(raw.get("optOut", False)),
        default=raw.get("default"),
        values=tuple((str(v[0]), v[1], str(v[2])) for v in raw.get("values", ())),
        subfields=tuple(raw.get("subfields", ())),
        target=raw.get("target"),
        cardinality=cardinality,
        data_policy=str(raw.get("dataPolicy", "none")),
    )


def _resource(name: str, raw: dict[str, Any]) -> ResourceSpec:
    if name not in BUILT_IN and not name.startswith("cus"):
        raise ValueError(f"custom resource {name!r}: the API name must start with 'cus' (§2.5)")
    fields = {f.name: f for f in (_field(item) for item in raw["fields"])}
    for spec_name in [name, *fields]:
        if len(spec_name) > MAX_ID_LENGTH:
            raise ValueError(f"{name}: id {spec_name!r} is longer than {MAX_ID_LENGTH} characters")
    key = raw.get("customKey")
    if key is not None and key not in fields:
        raise ValueError(f"{name}: customKey {key!r} is not one of its fields")
    filters = {
        fname: FilterSpec(fname, str(f.get("label", fname)), dict(f["params"]))
        for fname, f in raw.get("filters", {}).items()
    }
    for flt in filters.values():
        unknown = [target for target in flt.params.values() if target not in fields]
        if not flt.name.startswith("by") or unknown:
            raise ValueError(f"{name}: filter {flt.name!r} must start with 'by' and use known fields")
    return ResourceSpec(
        name=name,
        schema=str(raw.get("schema", f"cus:{name[3:].lower()}")),
        label=str(raw.get("label", name)),
        xtk_label=str(raw.get("xtkLabel", name)),
        fields=fields,
        custom_key=key,
        raw_key_on_standard_api=bool(raw.get("rawKeyOnStandardApi", False)),
        filters=filters,
    )


def load_schema(path: Path | None = None) -> Schema:
    """Load a schema file (default: the shipped one); custom files must still define profile and service."""
    if path is None:
        text = package_files.files(__package__).joinpath("default_schema.json").read_text(encoding="utf-8")
        source = "default_schema.json"
    else:
        text, source = path.read_text(encoding="utf-8"), str(path)
    raw = json.loads(text)
    try:
        resources = {name: _resource(name, body) for name, body in raw["resources"].items()}
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{source}: {exc}") from exc
    missing = [name for name in BUILT_IN if name not in resources]
    if missing:
        raise ValueError(f"{source}: the built-in resources {missing} are missing")
    for spec in resources.values():
        for link in spec.links():
            if link.target not in resources:
                raise ValueError(f"{source}: {spec.name}.{link.name} links to unknown resource {link.target!r}")
    return Schema(resources)


# Per-flag change timestamps seen in real tenant rows (§5, community); no push-notification one was seen.
FLAG_TIMESTAMP_FIELDS = {
    "blackList": "blackListLastModified",
    "blackListEmail": "blackListEmailLastModified",
    "blackListMobile": "blackListMobileLastModified",
    "blackListPhone": "blackListPhoneLastModified",
    "blackListPostalMail": "blackListPostalMailLastModified",
    "blackListFax": "blackListFaxLastModified",
    "ccpaOptOut": "ccpaOptOutLastModified",
}
ANY_FLAG_TIMESTAMP = "blackListAllLastModified"  # moves with any opt-out flag (inferred)
