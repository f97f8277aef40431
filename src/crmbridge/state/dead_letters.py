"""Dead letters as the operator sees them: list, inspect, and mark for retry, drop or resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crmbridge.state import schema
from crmbridge.state.database import Database
from crmbridge.state.queries import chunked
from crmbridge.state.rows import DeadLetter, DeadLetterStatus, Flow

__all__ = ["DeadLetters"]


def _letter_from_row(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        flow=Flow(row.flow),
        mapping=row.mapping,
        record_key=row.record_key,
        payload=row.payload,
        error_class=row.error_class,
        reason=row.reason,
        attempts=row.attempts,
        first_failed_at=row.first_failed_at,
        failed_at=row.last_failed_at,
        status=DeadLetterStatus(row.status),
        closed_at=row.closed_at,
        close_reason=row.close_reason,
    )


class DeadLetters:
    """The dead-letter table of a store (``store.dead_letters``); new letters arrive through ``Batch.dead_letter``."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def list(
        self,
        *,
        status: DeadLetterStatus | None = DeadLetterStatus.OPEN,
        flow: Flow | None = None,
        mapping: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters in id order, one page at a time (pass the last id seen as ``after_id``)."""
        letters = schema.dead_letters
        query = sa.select(letters).where(letters.c.id > after_id).order_by(letters.c.id).limit(limit)
        if status is not None:
            query = query.where(letters.c.status == status.value)
        if flow is not None:
            query = query.where(letters.c.flow == flow.value)
        if mapping is not None:
            query = query.where(letters.c.mapping == mapping)
        with self._db.reading() as connection:
            return [_letter_from_row(row) for row in connection.execute(query)]

    def get(self, letter_id: int) -> DeadLetter | None:
        letters = schema.dead_letters
        with self._db.reading() as connection:
            row = connection.execute(sa.select(letters).where(letters.c.id == letter_id)).one_or_none()
        return None if row is None else _letter_from_row(row)

    def mark(self, letter_ids: Iterable[int], status: DeadLetterStatus, reason: str | None = None) -> int:
        """Set the status of these dead letters (retrying, dropped, resolved, or open again); returns how many.

        Resolving or dropping records when and why (``reason``, default: the operator did it); reopening or
        retrying clears both.
        """
        letters = schema.dead_letters
        closing = status in (DeadLetterStatus.RESOLVED, DeadLetterStatus.DROPPED)
        values: dict[str, Any] = {
            "status": status.value,
            "closed_at": self._clock() if closing else None,
            "close_reason": (reason or f"{status.value} by an operator") if closing else None,
        }
        changed = 0
        with self._db.writing() as connection:
            for chunk in chunked(letter_ids):
                statement = sa.update(letters).where(letters.c.id.in_(chunk)).values(**values)
                changed += connection.execute(statement).rowcount
        return changed
