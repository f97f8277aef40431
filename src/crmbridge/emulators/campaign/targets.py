"""The profile data a simulated delivery needs; filled by the storage, consumed by the events package."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeliveryTarget"]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    pkey: str
    external_id: str | None
    email: str
