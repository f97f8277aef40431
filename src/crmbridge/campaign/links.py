"""Links between Campaign records, resolved from the parent's business key when a write is made.

ACS sets a link through the parent's PKey, and PKeys are opaque and instance-specific (§2.2, §2.3): crmbridge
never persists them. A :class:`LinkResolver` looks the PKey up by business key and caches it for one pass at most.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crmbridge.campaign.errors import ParentNotFound
from crmbridge.exceptions import RecordError

__all__ = ["LinkResolver", "LinkTo", "resolve_links"]

FindByKey = Callable[[str, str, str], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class LinkTo:
    """Value of a link field in a write: "the ``resource`` row whose ``key_field`` is ``key_value``"."""

    resource: str  # e.g. "profile", "cusVehicle"
    key_field: str  # e.g. "externalId", "vehicleId"
    key_value: str


class LinkResolver:
    """Business key -> PKey, cached for the lifetime of this object (create one per pass, never persist it)."""

    def __init__(self, find_by_key: FindByKey) -> None:
        self._find = find_by_key
        self._cache: dict[LinkTo, str] = {}
        self.lookups = 0

    async def pkey_of(self, link: LinkTo) -> str:
        cached = self._cache.get(link)
        if cached is not None:
            return cached
        self.lookups += 1
        rows = await self._find(link.resource, link.key_field, link.key_value)
        if not rows:
            raise ParentNotFound(
                f"{link.resource} with {link.key_field}={link.key_value!r} does not exist in Campaign (yet)",
                record_key=link.key_value,
            )
        if len(rows) > 1:
            raise RecordError(
                f"{len(rows)} {link.resource} rows have {link.key_field}={link.key_value!r}: the link is ambiguous",
                record_key=link.key_value,
            )
        pkey = rows[0].get("PKey")
        if not isinstance(pkey, str) or not pkey:
            raise RecordError(f"{link.resource} row found by {link.key_field} carries no PKey")
        self._cache[link] = pkey
        return pkey

    def forget(self, link: LinkTo) -> None:
        """Drop one cached PKey (e.g. the parent was deleted and re-created during the pass)."""
        self._cache.pop(link, None)


async def resolve_links(values: Mapping[str, Any], resolver: LinkResolver) -> dict[str, Any]:
    """A copy of ``values`` where each :class:`LinkTo` became ``{"PKey": ...}`` (ACS ignores a link without it)."""
    resolved: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, LinkTo):
            resolved[name] = {"PKey": await resolver.pkey_of(value)}
        elif isinstance(value, Mapping):
            resolved[name] = await resolve_links(value, resolver)
        else:
            resolved[name] = value
    return resolved
