"""Upsert by business key on top of the client's public reads and writes: ACS has no native upsert (§4.5).

Safe under retries: a create whose response was lost (``MaybeAppliedError``) or that hit the identification key
(``PGS-220000``) is followed by a new lookup, and only a key that is certainly absent is created again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from crmbridge.campaign.links import LinkResolver, resolve_links
from crmbridge.campaign.wire import same_value
from crmbridge.exceptions import RecordError
from crmbridge.http import MaybeAppliedError

if TYPE_CHECKING:
    from crmbridge.campaign.client import CampaignClient

__all__ = ["KeyedUpsert", "UpsertOutcome", "UpsertResult"]

DUPLICATE_KEY = "PGS-220000"
MAX_CREATE_ATTEMPTS = 4  # creates whose outcome stayed unknown before the record is handed back for later
JsonObject = dict[str, Any]


class UpsertOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class UpsertResult:
    outcome: UpsertOutcome
    pkey: str  # for this call only: never persist it


@dataclass(frozen=True, slots=True)
class KeyedUpsert:
    """One upsert of the ``resource`` row whose ``key_field`` is ``key_value``."""

    client: CampaignClient
    resource: str
    key_field: str
    key_value: str

    async def run(self, values: Mapping[str, Any], resolver: LinkResolver) -> UpsertResult:
        resolved = await resolve_links(values, resolver)
        existing = await self._one()
        if existing is not None:
            return await self._update_if_changed(existing, resolved)
        failure: MaybeAppliedError | RecordError | None = None
        for _ in range(MAX_CREATE_ATTEMPTS):
            try:
                created = await self._create(resolved)
            except MaybeAppliedError as error:
                failure = error
            except RecordError as error:
                if error.details is None or error.details.code != DUPLICATE_KEY:
                    raise
                failure = error  # the key exists but the lookup cannot see it (e.g. a hidden child): retried below
            else:
                return UpsertResult(UpsertOutcome.CREATED, str(created.get("PKey", "")))
            # The create may have landed (lost answer), or someone created the key meanwhile: look again.
            existing = await self._one()
            if existing is not None:
                return await self._recovered(existing, resolved)
            # The key is certainly absent, so the create was not applied: creating again cannot duplicate.
        assert failure is not None
        raise failure  # outcome still unknown: the caller retries the record later and looks it up again then

    async def _create(self, values: Mapping[str, Any]) -> JsonObject:
        body = {self.key_field: self.key_value, **values}
        return await self.client.create(self.resource, body, record_key=self.key_value)

    async def _recovered(self, existing: JsonObject, values: Mapping[str, Any]) -> UpsertResult:
        stats = self.client.stats
        stats.recovered_after_lost_response += 1
        stats.inserts += 1  # the lost create was applied: count it like any other insert
        stats.engine_calls += 1
        result = await self._update_if_changed(existing, values)
        if result.outcome is UpsertOutcome.UNCHANGED:
            return UpsertResult(UpsertOutcome.CREATED, result.pkey)  # our own create landed
        return result

    async def _one(self) -> JsonObject | None:
        rows = await self.client.find_by_key(self.resource, self.key_field, self.key_value)
        if len(rows) > 1:
            raise RecordError(
                f"{len(rows)} {self.resource} rows share {self.key_field}={self.key_value!r}; make {self.key_field} "
                "an identification key in Campaign and remove the duplicates",
                record_key=self.key_value,
            )
        return rows[0] if rows else None

    async def _update_if_changed(self, existing: JsonObject, values: Mapping[str, Any]) -> UpsertResult:
        pkey = str(existing.get("PKey", ""))
        changes = {name: value for name, value in values.items() if not same_value(existing.get(name), value)}
        if not changes:
            self.client.stats.unchanged += 1
            return UpsertResult(UpsertOutcome.UNCHANGED, pkey)
        await self.client.update(self.resource, existing, changes, record_key=self.key_value)
        return UpsertResult(UpsertOutcome.UPDATED, pkey)
