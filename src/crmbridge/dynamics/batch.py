"""The ``$batch`` writer (§6): groups write operations into bounded batches and maps every result to its input.

Two modes. ``atomic=True`` puts each batch in one change set (all or nothing); a refused change set is split
until the failing operation stands alone, so one bad record costs one :class:`RecordError` and the rest is
written. ``atomic=False`` sends independent parts with ``Prefer: odata.continue-on-error``: each part succeeds
or fails on its own, and parts refused for a transient reason (throttling, 5xx) are sent again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from crmbridge.dynamics.errors import RequestKind, classify, error_for_response
from crmbridge.dynamics.odata import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    ChangeSetResponse,
    batch_content_type,
    encode_batch_request,
    format_key,
    parse_batch_response,
    parse_error_body,
)
from crmbridge.dynamics.results import WriteResult, run_chunks, split_until_alone
from crmbridge.dynamics.session import DataverseSession, encode_json
from crmbridge.dynamics.writer import RowKey, key_text
from crmbridge.exceptions import CrmbridgeError, ProtocolError, RecordError, TransientError
from crmbridge.http import Action

__all__ = ["MAX_BATCH_OPERATIONS", "BatchOperation", "BatchWriter"]

MAX_BATCH_OPERATIONS = 1000  # §6.1
_RETRY_ROUNDS = 5  # continue-on-error mode: how often transiently refused parts are sent again
_ENTRY_CONTENT_TYPE = "application/json; type=entry"


@dataclass(frozen=True, slots=True)
class BatchOperation:
    """One write inside a ``$batch``: ``path`` is relative to the Web API base (``contacts(<guid>)``)."""

    method: str
    path: str
    payload: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    record_key: str | None = None

    @property
    def idempotent(self) -> bool:
        return self.method.upper() != "POST"

    @classmethod
    def create(cls, entity_set: str, values: Mapping[str, Any], *, record_key: str | None = None) -> BatchOperation:
        return cls("POST", entity_set, values, record_key=record_key)

    @classmethod
    def update(cls, entity_set: str, key: RowKey, values: Mapping[str, Any]) -> BatchOperation:
        """Update only (``If-Match: *``): a missing row is refused, never created."""
        return cls("PATCH", f"{entity_set}{format_key(key)}", values, {"If-Match": "*"}, key_text(key))

    @classmethod
    def upsert(cls, entity_set: str, key: RowKey, values: Mapping[str, Any]) -> BatchOperation:
        """Create or update the row addressed by its id or alternate key (check :func:`unusable_key_error` first)."""
        return cls("PATCH", f"{entity_set}{format_key(key)}", values, record_key=key_text(key))

    @classmethod
    def delete(cls, entity_set: str, key: RowKey) -> BatchOperation:
        return cls("DELETE", f"{entity_set}{format_key(key)}", record_key=key_text(key))


Indexed = tuple[int, BatchOperation]


class BatchWriter:
    """Sends :class:`BatchOperation` lists as ``$batch`` requests of at most ``batch_size`` operations each."""

    def __init__(self, session: DataverseSession, *, batch_size: int = 100) -> None:
        if not 1 <= batch_size <= MAX_BATCH_OPERATIONS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_OPERATIONS}, got {batch_size}")
        self._session = session
        self._batch_size = batch_size

    async def write(
        self, operations: Sequence[BatchOperation], *, atomic: bool, split: bool = True
    ) -> list[WriteResult]:
        """One :class:`WriteResult` per operation, in input order. Batches run concurrently under the limiter.

        ``split=False`` (atomic only) reports a refused change set as refused for each of its operations,
        which is what the service did: nothing of it was written.
        """
        items = list(enumerate(operations))
        results: list[WriteResult] = []

        async def run(chunk: list[Indexed]) -> None:
            if atomic and not split:
                results.extend(await self._change_set_or_all_refused(chunk))
            elif atomic:
                results.extend(await split_until_alone(chunk, self._send_change_set))
            else:
                results.extend(await self._send_independent(chunk))

        chunks = [items[start : start + self._batch_size] for start in range(0, len(items), self._batch_size)]
        await run_chunks(chunks, run, self._session.max_parallel)
        return sorted(results, key=lambda result: result.index)

    async def _change_set_or_all_refused(self, chunk: Sequence[Indexed]) -> list[WriteResult]:
        try:
            return await self._send_change_set(chunk)
        except RecordError as error:
            return [WriteResult(index=index, error=error) for index, _ in chunk]

    async def _send_change_set(self, chunk: Sequence[Indexed]) -> list[WriteResult]:
        """All or nothing: any refused operation makes the service roll the set back and answer with its status."""
        requests = [self._part(operation, content_id=str(n)) for n, (_, operation) in enumerate(chunk, start=1)]
        parts = await self._post([ChangeSet(requests)], idempotent=all(op.idempotent for _, op in chunk))
        responses = _flatten(parts)
        if len(responses) == 1 and len(chunk) > 1 and responses[0].status >= 400:
            # Without continue-on-error, a failed change set comes back as the single failing part (§6.3);
            # raising makes split_until_alone halve the set until that operation stands alone.
            raise _part_failure(responses[0], None, self._session)
        by_content_id = {r.content_id: r for r in responses if r.content_id is not None}
        results = []
        for n, (index, operation) in enumerate(chunk, start=1):
            response = by_content_id.get(str(n)) or (responses[n - 1] if n - 1 < len(responses) else None)
            if response is None:
                raise ProtocolError(f"$batch answered {len(responses)} parts for a change set of {len(chunk)}")
            if _already_gone(operation, response):
                results.append(WriteResult(index=index))
            elif response.status >= 400:
                raise _part_failure(response, operation, self._session)
            else:
                results.append(WriteResult(index=index, id=_entity_id(response)))
        return results

    async def _send_independent(self, chunk: list[Indexed]) -> list[WriteResult]:
        results: list[WriteResult] = []
        pending = chunk
        for _ in range(_RETRY_ROUNDS):
            requests = [self._part(operation) for _, operation in pending]
            parts = await self._post(
                requests, idempotent=all(op.idempotent for _, op in pending), prefer="odata.continue-on-error"
            )
            responses = _flatten(parts)
            if len(responses) != len(pending):
                raise ProtocolError(f"$batch answered {len(responses)} parts for {len(pending)} operations")
            retry: list[Indexed] = []
            for (index, operation), response in zip(pending, responses, strict=True):
                action = _action(response)
                if action is Action.SUCCESS or _already_gone(operation, response):
                    results.append(WriteResult(index=index, id=_entity_id(response)))
                elif action in (Action.RETRY, Action.PAUSE) and operation.idempotent:
                    retry.append((index, operation))
                else:
                    failure = _part_failure(response, operation, self._session)
                    if not isinstance(failure, RecordError):
                        raise failure
                    results.append(WriteResult(index=index, error=failure))
            if not retry:
                return results
            pending = retry
            await anyio.sleep(self._session.retry.backoff_delay(1))
        raise TransientError(f"{len(pending)} $batch operations were still refused after {_RETRY_ROUNDS} rounds")

    def _part(self, operation: BatchOperation, content_id: str | None = None) -> BatchRequest:
        headers = list(operation.headers.items())
        body = b""
        if operation.payload is not None:
            headers.insert(0, ("Content-Type", _ENTRY_CONTENT_TYPE))
            body = encode_json(dict(operation.payload))
        url = self._session.api_path + operation.path.lstrip("/")
        return BatchRequest(operation.method.upper(), url, headers=headers, body=body, content_id=content_id)

    async def _post(
        self, parts: Sequence[BatchRequest | ChangeSet], *, idempotent: bool, prefer: str | None = None
    ) -> list[BatchResponse | ChangeSetResponse]:
        boundary = f"batch_{uuid.uuid4()}"
        headers = {"Content-Type": batch_content_type(boundary)}
        if prefer:
            headers["Prefer"] = prefer
        response = await self._session.send(
            "POST",
            "$batch",
            kind=RequestKind.BATCH,
            idempotent=idempotent,
            content=encode_batch_request(parts, boundary),
            headers=headers,
        )
        content_type = response.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/mixed"):
            raise ProtocolError(f"$batch answered {content_type or 'no content type'} instead of multipart/mixed")
        return parse_batch_response(content_type, response.content)


def _already_gone(operation: BatchOperation, response: BatchResponse) -> bool:
    """A replayed delete of a row that no longer exists did what it was asked (as ``DataverseWriter.delete``)."""
    return operation.method.upper() == "DELETE" and response.status == 404


def _flatten(parts: Sequence[BatchResponse | ChangeSetResponse]) -> list[BatchResponse]:
    flat: list[BatchResponse] = []
    for part in parts:
        flat.extend(part.responses if isinstance(part, ChangeSetResponse) else [part])
    return flat


def _error_of(response: BatchResponse) -> tuple[str | None, str]:
    try:
        parsed = parse_error_body(json.loads(response.body or b"null"))
    except ValueError:
        parsed = None
    return parsed if parsed else (None, response.body.decode("utf-8", "replace")[:300])


def _action(response: BatchResponse) -> Action:
    code, _ = _error_of(response)
    return classify(response.status, code, RequestKind.WRITE)


def _part_failure(
    response: BatchResponse, operation: BatchOperation | None, session: DataverseSession
) -> CrmbridgeError:
    """The typed error of a refused part, through the same table as any response: a RecordError only when the
    record is at fault; a config, permission or auth problem stops the whole write instead of dead-lettering all.
    """
    method = operation.method.upper() if operation else "POST"
    url = session.url(operation.path) if operation else session.url("$batch")
    as_response = httpx.Response(
        response.status, headers=response.headers, content=response.body, request=httpx.Request(method, url)
    )
    return error_for_response(as_response, _action(response), record_key=operation.record_key if operation else None)


def _entity_id(response: BatchResponse) -> str | None:
    location = response.header("OData-EntityId") or response.header("Location") or ""
    start, end = location.rfind("("), location.rfind(")")
    if start == -1 or end < start:
        return None
    inside = location[start + 1 : end]
    try:
        return str(uuid.UUID(inside))
    except ValueError:
        return None
