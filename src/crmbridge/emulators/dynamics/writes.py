"""Writes of the Dataverse emulator (§5): create, update, upsert, delete, single properties and bulk actions."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from crmbridge.emulators.dynamics.protocol import ApiRequest, ApiResponse, ODataError, json_response, parse_prefer
from crmbridge.emulators.dynamics.queries import find_row, read_row
from crmbridge.emulators.dynamics.rows import apply_computed, convert_value, etag, from_payload, not_found
from crmbridge.emulators.dynamics.schema import Table
from crmbridge.emulators.dynamics.service import Org
from crmbridge.emulators.dynamics.storage import Row

__all__ = ["bulk_action", "create", "delete", "delete_property", "patch", "put_property", "resolve_reference"]

_REFERENCE = re.compile(r"^/?([A-Za-z0-9_]+)\((.*)\)$")
BULK_ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


def resolve_reference(org: Org, reference: str, target: str) -> str:
    """The id of the row an ``@odata.bind`` / ``@odata.id`` URL points at (§5.5); absolute URLs allowed."""
    path = urlsplit(reference).path if "://" in reference else reference
    path = path.split("/api/data/v9.2/", 1)[-1]
    match = _REFERENCE.match(path)
    table = org.storage.schema.by_set(match.group(1)) if match else None
    if match is None or table is None or table.logical_name != target:
        raise ODataError(
            400, "0x80048d19", f"Error identified in Payload provided by the user: bad reference '{reference}'."
        )
    row, row_id, _ = find_row(org, table, match.group(2))
    if row is None:
        raise not_found(table, row_id or unquote(match.group(2)))
    return str(row[table.primary_id])


def _values(org: Org, table: Table, payload: Any, creating: bool) -> Row:
    return from_payload(table, payload, lambda ref, target: resolve_reference(org, ref, target), creating=creating)


def _apply_state(table: Table, values: Row, current: Row | None) -> None:
    """Keep statecode and statuscode consistent (§5.7): a state without a status gets the state's default."""
    state_col, status_col = table.columns.get("statecode"), table.columns.get("statuscode")
    if state_col is None or status_col is None:
        return
    state = values.get("statecode")
    if state is None:
        state = current["statecode"] if current and current.get("statecode") is not None else 0
    if values.get("statuscode") is None and (values.get("statecode") is not None or current is None):
        values["statuscode"] = next((s for s, st in status_col.status_state.items() if st == state), None)
    status = values.get("statuscode")
    if status is not None and status_col.status_state.get(status, state) != state:
        # Message shape of Dataverse's state/status validation (inferred).
        raise ODataError(400, "0x80040203", f"{status} is not a valid status code for state code {state}.")
    values["statecode"] = state


def insert_row(org: Org, table: Table, values: Row, req: ApiRequest) -> str:
    row_id = values.get(table.primary_id) or str(uuid.uuid4())
    if org.storage.get(table, row_id) is not None:
        raise ODataError(400, "0x80040237", "Cannot insert duplicate key.")  # status (inferred)
    # Booleans default to false (or the schema default, e.g. followemail = true); other columns to null.
    row: Row = {
        name: int(bool(column.default)) if column.type == "Boolean" else column.default
        for name, column in table.columns.items()
    }
    row.update(values)
    _apply_state(table, row, None)
    row[table.primary_id] = row_id
    stamp = org.clock.stamp()
    row.update(createdon=stamp, modifiedon=stamp, versionnumber=org.storage.next_version())
    apply_computed(table, row)
    _check_keys(org, table, row)
    org.storage.insert(table, row)
    req.charge("rows_written")
    return str(row_id)


def update_row(org: Org, table: Table, current: Row, values: Row, req: ApiRequest) -> None:
    _check_open(table, current, values)
    _apply_state(table, values, current)
    merged = {**current, **values}
    apply_computed(table, merged)
    changes = {k: merged[k] for k in merged if merged[k] != current.get(k) or k in values}
    changes.update(modifiedon=org.clock.stamp(), versionnumber=org.storage.next_version())
    _check_keys(org, table, merged)
    org.storage.update(table, current[table.primary_id], changes)
    req.charge("rows_written")


_STATE_COLUMNS = frozenset({"statecode", "statuscode"})


def _check_open(table: Table, current: Row, values: Row) -> None:
    """A closed (completed or canceled) activity is read-only until reopened (§5.6-5.7): only its state may change."""
    if not table.is_activity or current.get("statecode") in (None, 0):
        return
    if any(name not in _STATE_COLUMNS and name != table.primary_id for name in values):
        # CannotUpdateBecauseItIsReadOnly as a community Dataverse client maps it (0x8004022e); status (inferred).
        raise ODataError(400, "0x8004022e", "The object cannot be updated because it is read-only.")


def _check_keys(org: Org, table: Table, row: Row) -> None:
    for key in table.keys:
        values = {a: row.get(a) for a in key.attributes}
        if any(v is None for v in values.values()):
            continue
        other = org.storage.find_by_values(table, values)
        if other is not None and other[table.primary_id] != row[table.primary_id]:
            # DuplicateRecordEntityKey; status and code (inferred).
            raise ODataError(
                412,
                "0x80060892",
                f"A record that has the attribute values {', '.join(map(str, values.values()))} already exists."
                f" The entity key {key.schema_name} requires that this set of attributes contains unique values.",
            )


def _entity_url(req: ApiRequest, table: Table, key: str) -> str:
    return f"{req.base_url}{table.entity_set}({key})"


def _representation(org: Org, table: Table, row_id: str, req: ApiRequest, status: int) -> ApiResponse:
    response = read_row(org, table, row_id, req)
    response.status = status
    response.headers.append(("Preference-Applied", "return=representation"))
    return response


def create(org: Org, table: Table, req: ApiRequest) -> ApiResponse:
    with org.storage.atomic():
        row_id = insert_row(org, table, _values(org, table, req.json(), creating=True), req)
    if parse_prefer(req.header("Prefer")).return_representation:
        return _representation(org, table, row_id, req, 201)
    return ApiResponse(204, [("OData-EntityId", _entity_url(req, table, row_id))])


def patch(org: Org, table: Table, key_text: str, req: ApiRequest) -> ApiResponse:
    """Update with ``If-Match``, create-only with ``If-None-Match: *``, otherwise upsert (§5.2, §5.4)."""
    if_match, if_none_match = req.header("If-Match"), req.header("If-None-Match")
    payload = req.json()
    with org.storage.atomic():
        current, row_id, alternate = find_row(org, table, key_text)
        if if_match is not None and current is None:
            raise not_found(table, row_id or unquote(key_text))
        if if_match not in (None, "*") and current is not None and if_match != etag(current):
            raise ODataError(
                412, "", "The version of the existing record doesn't match the RowVersion property provided."
            )
        if if_none_match == "*" and current is not None:
            raise ODataError(412, "", "A record with matching key values already exists.")
        if current is not None:
            values = _values(org, table, payload, creating=False)
            for name in alternate:
                values.pop(name, None)  # a key cannot be changed through itself (§5.4)
            update_row(org, table, current, values, req)
            target_id, created = str(current[table.primary_id]), False
        else:
            values = _values(org, table, payload, creating=True)
            for name, value in alternate.items():
                values.setdefault(name, convert_value(table, table.columns[name], value))
            if row_id is not None:
                values[table.primary_id] = row_id
            target_id, created = insert_row(org, table, values, req), True
    if parse_prefer(req.header("Prefer")).return_representation:
        return _representation(org, table, target_id, req, 201 if created else 200)
    return ApiResponse(204, [("OData-EntityId", _entity_url(req, table, key_text))])


def delete(org: Org, table: Table, key_text: str, req: ApiRequest) -> ApiResponse:
    with org.storage.atomic():
        current, row_id, _ = find_row(org, table, key_text)
        if current is None:
            raise not_found(table, row_id or unquote(key_text))
        if_match = req.header("If-Match")
        if if_match not in (None, "*") and if_match != etag(current):
            raise ODataError(
                412, "", "The version of the existing record doesn't match the RowVersion property provided."
            )
        org.storage.delete(table, current[table.primary_id], org.clock.stamp())
        req.charge("rows_written")
    return ApiResponse(204)


def put_property(org: Org, table: Table, key_text: str, name: str, req: ApiRequest) -> ApiResponse:
    """``PUT set(id)/prop`` with ``{"value": ...}``, or ``PUT set(id)/nav/$ref`` with ``{"@odata.id": ...}`` (§5.2)."""
    payload = req.json()
    if not isinstance(payload, dict):
        raise ODataError(400, "0x80048d19", "Error identified in Payload provided by the user: expected an object.")
    if name.endswith("/$ref"):
        body = {f"{name.removesuffix('/$ref')}@odata.bind": payload.get("@odata.id")}
    else:
        body = {name: payload.get("value")}
    return _update_existing(org, table, key_text, body, req)


def delete_property(org: Org, table: Table, key_text: str, name: str, req: ApiRequest) -> ApiResponse:
    if name.endswith("/$ref"):
        return _update_existing(org, table, key_text, {name.removesuffix("/$ref"): None}, req)
    column = table.columns.get(name)
    if column is None or column.type == "Lookup":
        raise ODataError(400, "0x0", f"The property '{name}' cannot be cleared with DELETE.")  # (inferred)
    return _update_existing(org, table, key_text, {name: None}, req)


def _update_existing(org: Org, table: Table, key_text: str, body: dict[str, Any], req: ApiRequest) -> ApiResponse:
    with org.storage.atomic():
        current, row_id, _ = find_row(org, table, key_text)
        if current is None:
            raise not_found(table, row_id or unquote(key_text))
        update_row(org, table, current, _values(org, table, body, creating=False), req)
    return ApiResponse(204)


# --- bulk actions (§5.4) ---------------------------------------------------------------------------------


def bulk_action(org: Org, table: Table, action: str, req: ApiRequest) -> ApiResponse:
    """``CreateMultiple``/``UpdateMultiple``/``UpsertMultiple``: one transaction for all targets."""
    payload = req.json()
    targets = payload.get("Targets") if isinstance(payload, dict) else None
    if not isinstance(targets, list) or not targets:
        raise ODataError(400, "0x80048d19", "Error identified in Payload provided by the user: 'Targets' is required.")
    expected = f"Microsoft.Dynamics.CRM.{table.logical_name}"
    for target in targets:
        if not isinstance(target, dict) or str(target.get("@odata.type", "")).lstrip("#") != expected:
            raise ODataError(400, "0x80048d19", f'Every target must carry "@odata.type": "{expected}".')  # (inferred)
    ids: list[str] = []
    results: list[dict[str, Any]] = []
    with org.storage.atomic():
        for target in targets:
            if action == "CreateMultiple":
                ids.append(insert_row(org, table, _values(org, table, target, creating=True), req))
            elif action == "UpdateMultiple":
                row_id = str(target.get(table.primary_id, ""))
                current = org.storage.get(table, row_id)
                if current is None:
                    raise not_found(table, row_id)
                update_row(org, table, current, _values(org, table, target, creating=False), req)
            else:
                results.append(_upsert_target(org, table, target, req))
    context = f"{req.base_url}$metadata#Microsoft.Dynamics.CRM.{action}Response"
    if action == "CreateMultiple":
        return json_response(200, {"@odata.context": context, "Ids": ids})
    if action == "UpdateMultiple":
        return ApiResponse(204)
    # Shape of UpsertMultipleResponse (the SDK's Results of UpsertResponse) is undocumented for the Web API (inferred).
    return json_response(200, {"@odata.context": context, "Results": results})


def _upsert_target(org: Org, table: Table, target: dict[str, Any], req: ApiRequest) -> dict[str, Any]:
    body = {k: v for k, v in target.items() if k != "@odata.id"}
    reference = target.get("@odata.id")
    alternate: dict[str, Any] = {}
    current = None
    if isinstance(reference, str):
        match = _REFERENCE.match(reference.split("/api/data/v9.2/", 1)[-1])
        if match is None or match.group(1) != table.entity_set:
            raise ODataError(
                400, "0x80048d19", f"Error identified in Payload provided by the user: bad @odata.id '{reference}'."
            )
        current, row_id, alternate = find_row(org, table, match.group(2))
        if row_id is not None:
            body[table.primary_id] = row_id
    elif table.primary_id in target:
        current = org.storage.get(table, str(target[table.primary_id]))
    if current is not None:
        values = _values(org, table, body, creating=False)
        for name in alternate:
            values.pop(name, None)
        update_row(org, table, current, values, req)
        row_id, created = str(current[table.primary_id]), False
    else:
        values = _values(org, table, body, creating=True)
        for name, value in alternate.items():
            values.setdefault(name, convert_value(table, table.columns[name], value))
        row_id, created = insert_row(org, table, values, req), True
    return {
        "RecordCreated": created,
        "Target": {"@odata.type": f"#Microsoft.Dynamics.CRM.{table.logical_name}", table.primary_id: row_id},
    }
