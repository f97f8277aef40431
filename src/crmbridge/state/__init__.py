"""crmbridge's state store: checkpoints, links, parked children, opt-out bases and logs, event ledger, dead letters.

Flows build a :class:`Batch` and hand it to :meth:`StateStore.commit`, which writes it with its checkpoint in one
transaction. Reads return the frozen value types of :mod:`crmbridge.state.rows`.
"""

from __future__ import annotations

from crmbridge.state.batch import Batch, CheckpointUpdate
from crmbridge.state.dead_letters import DeadLetters
from crmbridge.state.rows import (
    Checkpoint,
    ConflictRecord,
    ContactRollup,
    DeadLetter,
    DeadLetterStatus,
    Flow,
    LedgerEntry,
    LinkRow,
    OptOutState,
    OptOutWrite,
    ParkedChild,
    PurgeResult,
    RunStatus,
    ScopeSummary,
    StateInfo,
    UnmatchedEvent,
)
from crmbridge.state.store import StateStore

__all__ = [
    "Batch",
    "Checkpoint",
    "CheckpointUpdate",
    "ConflictRecord",
    "ContactRollup",
    "DeadLetter",
    "DeadLetterStatus",
    "DeadLetters",
    "Flow",
    "LedgerEntry",
    "LinkRow",
    "OptOutState",
    "OptOutWrite",
    "ParkedChild",
    "PurgeResult",
    "RunStatus",
    "ScopeSummary",
    "StateInfo",
    "StateStore",
    "UnmatchedEvent",
]
