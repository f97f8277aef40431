"""The $batch writer: change sets roll back as a whole and are split down to the bad operation; continue-on-error
applies the others; results map back to inputs. The fake service answers as §6.3 describes.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from crmbridge.dynamics.batch import BatchOperation, BatchWriter
from crmbridge.dynamics.odata import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    ChangeSetResponse,
    encode_batch_response,
    parse_batch_request,
)
from crmbridge.exceptions import ConfigError, RecordError

from .fakes import API, session_for

REFUSAL = (
    b'{"error":{"code":"0x80044331","message":"A validation error occurred.  The length of the \'subject\' '
    b"attribute of the 'task' entity exceeded the maximum allowed length of '200'.\"}}"
)


class BatchService:
    """Applies parts in order; a subject longer than 200 characters is refused, like the §6.3 example."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.batches = 0
        self.throttle_first_part_once = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url == httpx.URL(API + "$batch")
        self.batches += 1
        parts = parse_batch_request(request.headers["Content-Type"], request.content)
        continue_on_error = "odata.continue-on-error" in request.headers.get("Prefer", "")
        answers: list[BatchResponse | ChangeSetResponse] = []
        for part in parts:
            if isinstance(part, ChangeSet):
                responses = [self._apply(r, dry_run=True) for r in part.requests]
                failed = next((r for r in responses if r.status >= 400), None)
                if failed is not None:  # rolled back; without continue-on-error only the failing part comes back
                    return self._multipart(400, [failed])
                answers.append(ChangeSetResponse([self._apply(r) for r in part.requests]))
            else:
                response = self._apply(part)
                answers.append(response)
                if response.status >= 400 and not continue_on_error:
                    return self._multipart(response.status, answers[-1:])
        return self._multipart(200, answers)

    def _apply(self, request: BatchRequest, dry_run: bool = False) -> BatchResponse:
        assert request.url.startswith("/api/data/v9.2/tasks")
        subject = json.loads(request.body)["subject"]
        if self.throttle_first_part_once and not dry_run:
            self.throttle_first_part_once = False
            return BatchResponse(503, [("Content-Type", "application/json")], b'{"error":{"code":"","message":"busy"}}')
        if subject == "bad bind":
            body = b'{"error":{"code":"0x80048d19","message":"An undeclared property \'parentcustomerid\'"}}'
            return BatchResponse(400, [("Content-Type", "application/json")], body)
        if len(subject) > 200:
            return BatchResponse(400, [("Content-Type", "application/json"), ("REQ_ID", "r-7")], REFUSAL)
        if dry_run:
            return BatchResponse(204)
        self.applied.append(subject)
        row = uuid.uuid5(uuid.NAMESPACE_URL, subject)
        location = f"{API}tasks({row})"
        return BatchResponse(204, [("Location", location), ("OData-EntityId", location)], content_id=request.content_id)

    @staticmethod
    def _multipart(status: int, parts: list[BatchResponse | ChangeSetResponse]) -> httpx.Response:
        boundary = f"batchresponse_{uuid.uuid4()}"
        return httpx.Response(
            status,
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"},
            content=encode_batch_response(parts, boundary),
        )


def _operations(count: int, bad: set[int]) -> list[BatchOperation]:
    return [
        BatchOperation("POST", "tasks", {"subject": ("x" * 201) if i in bad else f"task {i}"}, record_key=f"k{i}")
        for i in range(count)
    ]


@pytest.mark.anyio
async def test_change_set_with_one_bad_operation_is_split_until_it_stands_alone() -> None:
    service = BatchService()
    writer = BatchWriter(session_for(service.handle), batch_size=8)

    results = await writer.write(_operations(8, bad={5}), atomic=True)

    assert [r.index for r in results] == list(range(8))
    assert [r.ok for r in results] == [True] * 5 + [False] + [True] * 2
    assert sorted(service.applied) == sorted(f"task {i}" for i in range(8) if i != 5)
    error = results[5].error
    assert isinstance(error, RecordError)
    assert error.record_key == "k5"
    assert error.details is not None
    assert (error.details.code, error.details.request_id) == ("0x80044331", "r-7")
    assert results[0].id == str(uuid.uuid5(uuid.NAMESPACE_URL, "task 0"))


@pytest.mark.anyio
async def test_change_set_that_fails_writes_nothing_of_it_in_that_attempt() -> None:
    service = BatchService()
    writer = BatchWriter(session_for(service.handle), batch_size=2)

    results = await writer.write(_operations(2, bad={1}), atomic=True)

    # The first attempt rolled back both; the split wrote the good one on its own, exactly once.
    assert service.applied == ["task 0"]
    assert [r.ok for r in results] == [True, False]


@pytest.mark.anyio
async def test_continue_on_error_applies_the_others_in_one_batch() -> None:
    service = BatchService()
    writer = BatchWriter(session_for(service.handle), batch_size=10)

    results = await writer.write(_operations(6, bad={0, 4}), atomic=False)

    assert service.batches == 1
    assert [r.ok for r in results] == [False, True, True, True, False, True]
    assert service.applied == ["task 1", "task 2", "task 3", "task 5"]


@pytest.mark.anyio
async def test_operations_are_grouped_in_batches_of_the_configured_size() -> None:
    service = BatchService()
    writer = BatchWriter(session_for(service.handle), batch_size=3)

    results = await writer.write(_operations(7, bad=set()), atomic=False)

    assert service.batches == 3
    assert len(results) == 7
    assert all(r.ok for r in results)


@pytest.mark.anyio
async def test_transiently_refused_idempotent_part_is_sent_again() -> None:
    service = BatchService()
    service.throttle_first_part_once = True
    writer = BatchWriter(session_for(service.handle), batch_size=10)
    upserts = [BatchOperation("PATCH", f"tasks({uuid.UUID(int=i)})", {"subject": f"task {i}"}) for i in range(3)]

    results = await writer.write(upserts, atomic=False)

    assert all(r.ok for r in results)
    assert service.batches == 2
    assert sorted(service.applied) == ["task 0", "task 1", "task 2"]


def test_batch_size_is_bounded_by_the_service_limit() -> None:
    with pytest.raises(ValueError, match="1000"):
        BatchWriter(session_for(lambda r: httpx.Response(500)), batch_size=1001)


@pytest.mark.anyio
@pytest.mark.parametrize("atomic", [True, False])
async def test_a_part_refused_for_a_mapping_error_stops_the_write_instead_of_dead_lettering(atomic: bool) -> None:
    service = BatchService()
    writer = BatchWriter(session_for(service.handle), batch_size=10)
    operations = [*_operations(3, bad=set()), BatchOperation.create("tasks", {"subject": "bad bind"})]

    with pytest.raises(ConfigError, match="undeclared property"):
        await writer.write(operations, atomic=atomic)
