"""What every handler of the Dataverse emulator shares: storage, the org's clock and its settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from crmbridge.dynamics.odata import format_datetime
from crmbridge.emulators.dynamics.storage import Storage

__all__ = ["Clock", "Org"]


class Clock:
    """Wall-clock time plus an offset the operator can advance (token expiry, change-tracking retention)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=seconds)
        return self.now()

    def stamp(self) -> str:
        return format_datetime(self.now())


@dataclass
class Org:
    """One emulated organization."""

    storage: Storage
    clock: Clock = field(default_factory=Clock)
    expire_change_tracking_in_days: int = 7  # Organization.ExpireChangeTrackingInDays, default 7 (§4.5)
    organization_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    business_unit_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    users: dict[str, str] = field(default_factory=dict)  # client id -> systemuserid of its application user

    def user_id(self, client_id: str) -> str:
        return self.users.setdefault(client_id, str(uuid.uuid5(uuid.NAMESPACE_URL, f"systemuser:{client_id}")))
