"""The profile a simulated delivery sends to, and how an operator names a delivery's target."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeliveryTarget", "TargetSpec"]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """One recipient of a delivery: the profile's REST key, its externalId (D365 contactid) and email."""

    pkey: str
    external_id: str | None
    email: str


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the operator asked for: the first ``count`` profiles, or exactly the profiles with these PKeys."""

    count: int | None = None
    pkeys: tuple[str, ...] = ()
