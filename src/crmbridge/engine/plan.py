"""Dry runs: the links a pass would commit, kept in memory so the rest of the same dry run sees them.

A real pass commits a parent's links before its children's mapping runs, so a child whose parent lands in the
same pass is written, not parked. A dry run commits nothing; without this overlay it would count that child as
parked while the real pass then creates it, and its counts would not be what the real pass does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from crmbridge.engine.decide import Decision, Outcome
from crmbridge.state import LinkRow

__all__ = ["PlannedLinks"]


class PlannedLinks:
    """Links a dry run would have written or deleted, per (mapping, source id); shared by one dry run's mappings."""

    def __init__(self) -> None:
        self._links: dict[tuple[str, str], LinkRow] = {}

    def record(self, mapping: str, decisions: Iterable[Decision], now: datetime) -> None:
        for decision in decisions:
            key = (mapping, decision.source_id)
            if decision.outcome in (Outcome.CREATE, Outcome.UPDATE) and decision.key is not None:
                parents = dict(decision.parent_keys) or None
                self._links[key] = LinkRow(
                    mapping, decision.source_id, decision.key, decision.values_hash, now, parents
                )
            elif decision.outcome is Outcome.DELETE and decision.key is not None:
                self._links[key] = LinkRow(mapping, decision.source_id, decision.key, "", now, deleted_at=now)

    def parent_keys_of(self, mapping: str) -> set[tuple[str, str]]:
        """(link field, parent business key) of every row of ``mapping`` this dry run would have written."""
        return {
            (field, key)
            for (name, _), link in self._links.items()
            if name == mapping and link.deleted_at is None
            for field, key in (link.parent_keys or {}).items()
        }

    def deleted(self, mapping: str) -> list[LinkRow]:
        """Links of ``mapping`` this dry run would have deleted (their children would go with them)."""
        return [link for (name, _), link in self._links.items() if name == mapping and link.is_deleted]

    def overlay(self, mapping: str, stored: Mapping[str, LinkRow], ids: Sequence[str] | set[str]) -> dict[str, LinkRow]:
        """``stored`` links of ``ids`` with what this dry run would have changed laid over them."""
        merged = dict(stored)
        for source_id in ids:
            planned = self._links.get((mapping, source_id))
            if planned is not None:
                merged[source_id] = planned
        return merged
