"""Settings of one Dataverse emulator instance (what the CLI options and tests configure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from crmbridge.emulators.dynamics.auth import ClientApp
from crmbridge.emulators.dynamics.limits import LimitSettings
from crmbridge.emulators.faults import FaultConfig

__all__ = ["DEFAULT_CLIENT", "DynamicsEmulatorSettings"]

# A well-known sandbox identity; real deployments pass --client-id/--client-secret or --clients.
DEFAULT_CLIENT = ClientApp(
    client_id="00000000-0000-0000-0000-00000000c11e",
    client_secret="emulator-secret",  # noqa: S106 - sandbox credential, documented in docs/emulators.md
    tenant="emulator-tenant",
)


@dataclass
class DynamicsEmulatorSettings:
    db_path: str = ":memory:"
    clients: list[ClientApp] = field(default_factory=lambda: [DEFAULT_CLIENT])
    limits: LimitSettings = field(default_factory=LimitSettings)
    faults: FaultConfig = field(default_factory=FaultConfig)
    expire_change_tracking_in_days: int = 7
    token_lifetime_s: int = 3599
    seed_contacts: int = 0
    seed: int = 0
