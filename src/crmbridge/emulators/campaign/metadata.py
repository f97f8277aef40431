"""``resourceType`` metadata, its filter catalogue and the Ext root listing (campaign-standard-api.md §2.4)."""

from __future__ import annotations

from typing import Any

from crmbridge.emulators.campaign import errors
from crmbridge.emulators.campaign.filters import BUILT_IN_FILTERS
from crmbridge.emulators.campaign.schema import API_STANDARD, FieldSpec, ResourceSpec, Schema

__all__ = ["filters_document", "resource_type", "root_listing"]

_RES_TYPES = {"string": "string", "boolean": "boolean", "integer": "long", "date": "date", "datetime": "datetime"}


def _field_metadata(spec: FieldSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiName": spec.name,
        "category": "opt-out" if spec.opt_out else "",
        "dataPolicy": spec.data_policy,
        "label": spec.name,
        "readOnly": spec.read_only or spec.computed is not None,
        "resType": _RES_TYPES.get(spec.type, spec.type),
        "sortable": spec.sortable,
        "type": spec.type,
    }
    if spec.length is not None:
        body["length"] = spec.length
    if spec.type == "enumeration":
        body["values"] = {name: {"label": label, "value": value} for name, value, label in spec.values}
    if spec.type in ("link", "collection"):
        body["resTarget"] = spec.target or ("subscription" if spec.name == "subscriptions" else "")
    if spec.type == "link":
        body["cardinality"] = spec.cardinality
    return body


def resource_type(schema: Schema, api: str, name: str, base: str) -> dict[str, Any]:
    spec = schema.resource_for(api, name)
    if spec is None:
        raise errors.unknown_resource()
    content = {f.name: _field_metadata(f) for f in spec.visible_fields(api)}
    return {
        "content": dict(sorted(content.items())),
        "data": f"/{api}/{name}/",
        "filters": {"href": f"{base}/{api}/resourceType/{name}/filters/"},
        "help": "",
        "href": f"{base}/{api}/{name}/metadata",
        "label": spec.label,
        "mandatory": False,
        "name": name,
        "pkgStatus": "never" if not spec.is_custom else "published",
        "readOnly": False,
        "schema": spec.schema,
        "type": "item",
    }


def _filter_entry(api: str, spec: ResourceSpec, name: str, label: str, params: list[str]) -> dict[str, Any]:
    query = "&".join(f"{p}=$value" for p in params)
    return {
        "PKey": f"@{spec.name}-{name}",  # filters have PKeys too; the emulator's are readable (inferred)
        "category": "99_custom" if name in spec.filters else "10_builtIn",
        "condition": "",
        "data": f"/{api}/{spec.name}/{name}?{query}",
        "formType": "none",
        "fragmentName": "",
        "label": label,
        "metadata": {p: {"apiName": p, "type": "string"} for p in params},
    }


def filters_document(schema: Schema, api: str, name: str) -> dict[str, Any]:
    spec = schema.resource_for(api, name)
    if spec is None:
        raise errors.unknown_resource()
    entries = {
        fname: _filter_entry(api, spec, fname, label, list(params))
        for fname, (label, params) in BUILT_IN_FILTERS.get(name, {}).items()
    }
    if api != API_STANDARD:
        for custom in spec.filters.values():
            entries[custom.name] = _filter_entry(api, spec, custom.name, custom.label, list(custom.params))
    return entries


def root_listing(schema: Schema, api: str, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {"apiName": "resourceType"}
    for name in schema.names_for(api):
        spec = schema.resources[name]
        body[name] = {
            "content": {f.name: {"apiName": f.name, "type": f.type} for f in spec.visible_fields(api)},
            "data": f"/{api}/{name}/",
            "help": "",
            "href": f"{base}/{api}/{name}/metadata",
            "name": name,
            "type": "collection",
        }
    return body
