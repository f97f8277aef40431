"""Which profiles a simulated delivery sends to: the target as the operator names it, and as the storage finds it.

One definition for the core (``Storage.delivery_targets`` fills :class:`DeliveryTarget`) and the events package
(which simulates a delivery to them); :func:`storage_target_resolver` joins the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmbridge.emulators.campaign.storage import Storage

__all__ = ["DeliveryTarget", "TargetResolver", "TargetSpec", "storage_target_resolver"]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """One recipient of a delivery: the profile's REST key, its externalId (D365 contactid) and email."""

    pkey: str
    external_id: str | None
    email: str


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the operator asked for: ``count`` targetable profiles picked by ``seed``, or exactly these PKeys."""

    count: int | None = None
    pkeys: tuple[str, ...] = ()
    seed: int = 0


# Returns the targeted profiles; raises LookupError naming what it could not find.
TargetResolver = Callable[[TargetSpec], list[DeliveryTarget]]


def storage_target_resolver(storage: Storage) -> TargetResolver:
    """Resolve targets against the instance's profiles: only profiles with an email and not opted out of email
    can be targeted (§5, S3), so a named PKey that is unknown or not targetable is an error, not a silent skip."""

    def resolve(spec: TargetSpec) -> list[DeliveryTarget]:
        if spec.count is not None:
            return storage.delivery_targets(count=spec.count, seed=spec.seed)
        found = storage.delivery_targets(pkeys=spec.pkeys)
        known = {target.pkey for target in found}
        missing = [pkey for pkey in spec.pkeys if pkey not in known]
        if missing:
            raise LookupError(f"{', '.join(missing)} (unknown, without an email, or opted out of email)")
        return found

    return resolve
