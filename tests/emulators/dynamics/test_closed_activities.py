"""§5.6-5.7: a closed (completed or canceled) activity is read-only until reopened; only its state may change."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from .conftest import BASE

pytestmark = pytest.mark.anyio

TASK = "Microsoft.Dynamics.CRM.task"
COMPLETED = {"statecode": 1, "statuscode": 5}  # task: Completed / Completed (tables.json)
READ_ONLY = {"code": "0x8004022e", "message": "The object cannot be updated because it is read-only."}


async def closed_task(api: httpx.AsyncClient, subject: str = "Call back") -> str:
    task_id = str(uuid.uuid4())
    created = await api.patch(f"{BASE}tasks({task_id})", json={"subject": subject})
    assert created.status_code == 204, created.text
    closed = await api.patch(f"{BASE}tasks({task_id})", json=COMPLETED)
    assert closed.status_code == 204, closed.text
    return task_id


async def task(api: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await api.get(f"{BASE}tasks({task_id})?$select=subject,statecode,statuscode")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_patch_of_a_closed_activity_is_refused_and_changes_nothing(api: httpx.AsyncClient) -> None:
    task_id = await closed_task(api)
    for headers in ({}, {"If-Match": "*"}):  # upsert and pure update alike
        response = await api.patch(f"{BASE}tasks({task_id})", json={"subject": "Changed"}, headers=headers)
        assert response.status_code == 400
        assert response.json() == {"error": READ_ONLY}
    assert (await task(api, task_id))["subject"] == "Call back"


async def test_a_closed_activity_can_be_reopened_then_updated(api: httpx.AsyncClient) -> None:
    task_id = await closed_task(api)
    reopened = await api.patch(f"{BASE}tasks({task_id})", json={"statecode": 0, "statuscode": 2})
    assert reopened.status_code == 204, reopened.text
    updated = await api.patch(f"{BASE}tasks({task_id})", json={"subject": "Changed"})
    assert updated.status_code == 204, updated.text
    assert (await task(api, task_id))["subject"] == "Changed"


async def test_reopen_and_change_in_one_request_is_refused(api: httpx.AsyncClient) -> None:
    task_id = await closed_task(api)
    response = await api.patch(f"{BASE}tasks({task_id})", json={"statecode": 0, "statuscode": 2, "subject": "X"})
    assert response.status_code == 400
    assert (await task(api, task_id))["statecode"] == 1


async def test_upsert_multiple_touching_a_closed_row_fails_as_a_whole(api: httpx.AsyncClient) -> None:
    task_id = await closed_task(api)
    new_id = str(uuid.uuid4())
    targets = [
        {"@odata.type": TASK, "@odata.id": f"tasks({new_id})", "subject": "New"},
        {"@odata.type": TASK, "@odata.id": f"tasks({task_id})", "subject": "Call back"},
    ]
    response = await api.post(f"{BASE}tasks/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": targets})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == READ_ONLY["code"]
    assert (await api.get(f"{BASE}tasks({new_id})?$select=subject")).status_code == 404  # rolled back


async def test_update_multiple_may_set_the_state_of_a_closed_row_but_nothing_else(api: httpx.AsyncClient) -> None:
    task_id = await closed_task(api)
    url = f"{BASE}tasks/Microsoft.Dynamics.CRM.UpdateMultiple"
    state_only = [{"@odata.type": TASK, "activityid": task_id, **COMPLETED}]
    assert (await api.post(url, json={"Targets": state_only})).status_code == 204
    subject = [{"@odata.type": TASK, "activityid": task_id, "subject": "Changed"}]
    refused = await api.post(url, json={"Targets": subject})
    assert refused.status_code == 400
    assert refused.json() == {"error": READ_ONLY}


async def test_states_of_several_activities_in_one_query(api: httpx.AsyncClient) -> None:
    closed = await closed_task(api)
    open_id = str(uuid.uuid4())
    assert (await api.patch(f"{BASE}tasks({open_id})", json={"subject": "Open"})).status_code == 204
    missing = str(uuid.uuid4())
    values = ",".join(f'"{i}"' for i in (closed, open_id, missing))
    in_ids = f"Microsoft.Dynamics.CRM.In(PropertyName='activityid',PropertyValues=[{values}])"
    query = f"$select=activityid,statecode&$filter={in_ids}"
    response = await api.get(f"{BASE}tasks?{query}")
    assert response.status_code == 200, response.text
    states = {row["activityid"]: row["statecode"] for row in response.json()["value"]}
    assert states == {closed: 1, open_id: 0}


async def test_in_function_with_a_single_value(api: httpx.AsyncClient) -> None:
    closed = await closed_task(api)
    in_one = f"Microsoft.Dynamics.CRM.In(PropertyName='activityid',PropertyValues=[\"{closed}\"])"
    response = await api.get(f"{BASE}tasks?$select=statecode&$filter={in_one}")
    assert response.status_code == 200, response.text
    assert [row["activityid"] for row in response.json()["value"]] == [closed]
