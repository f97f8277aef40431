"""Settings of the Campaign emulator, its IMS clients and the clock every timestamp comes from."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crmbridge.emulators.faults import FaultConfig

__all__ = [
    "CampaignEmulatorSettings",
    "Clock",
    "EventsSettings",
    "ImsClientConfig",
    "format_datetime",
    "load_clients",
]

# The scope list public ACS clients request (campaign-standard-api.md §1.3, community), plus what the
# I/O Management API adds to the same credential, which the events journal needs (adobe-io-events §A.3).
DEFAULT_SCOPES = (
    "openid",
    "AdobeID",
    "campaign_sdk",
    "additional_info.projectedProductContext",
    "campaign_config_server_general",
    "deliverability_service_general",
    "read_organizations",
    "adobeio_api",
)


DEFAULT_IMS_ORG = "0123456789ABCDEF01234567@AdobeOrg"


class Clock:
    """Wall-clock time plus an offset the operator can advance; shared by the app and its plug-ins."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0) if start is None else start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += timedelta(seconds=seconds)
        return self.now()


def format_datetime(moment: datetime) -> str:
    """ACS datetime format: ``YYYY-MM-DD HH:MM:SS.mmmZ`` in UTC (§4.8); sortable as text."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class ImsClientConfig:
    """An OAuth server-to-server credential as Developer Console would create it for a Campaign tenant."""

    client_id: str
    client_secret: str
    ims_org: str = DEFAULT_IMS_ORG
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    # Campaign tenants the credential's product profile covers (projectedProductContext, §1.1).
    tenants: tuple[str, ...] = ("acme",)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> ImsClientConfig:
        scopes = data.get("scopes", DEFAULT_SCOPES)
        if isinstance(scopes, str):
            scopes = [s.strip() for s in scopes.split(",") if s.strip()]
        return cls(
            client_id=str(data["client_id"]),
            client_secret=str(data["client_secret"]),
            ims_org=str(data.get("ims_org", DEFAULT_IMS_ORG)),
            scopes=tuple(scopes),
            tenants=tuple(data.get("tenants", ("acme",))),
        )


def load_clients(path: Path) -> list[ImsClientConfig]:
    """Read IMS clients from a JSON file: a list of objects with client_id, client_secret, scopes, tenants."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of IMS clients")
    return [ImsClientConfig.from_mapping(item) for item in raw]


def _default_clients() -> tuple[ImsClientConfig, ...]:
    return (ImsClientConfig(client_id="crmbridge-emulator", client_secret="emulator-secret"),)  # noqa: S106


@dataclass(slots=True)
class EventsSettings:
    """Email events: the journal registration a consumer reads, its faults, and the export files over SFTP."""

    db_path: str | None = None  # None: next to the core database (``acs.db`` -> ``acs.events.db``), or in memory
    # The ids of the one journal registration (adobe-io-events §A.1); the defaults are the guide's example ids.
    consumer_org_id: str = "23294"
    credential_id: str = "54108"
    registration_id: str = "f89067f2-0d50-4bb2-bf78-209d0eacb6eb"
    client_id: str | None = None  # API key allowed to read the journal; None: the first IMS client's
    ims_org_id: str | None = None  # expected x-ims-org-id; None: that client's IMS org
    duplicate_rate: float = 0.0  # share of events published twice (at least once, §A.8)
    reorder_rate: float = 0.0  # share of events swapped with a later one of the same publication round
    delay_rate: float = 0.0  # share of events held back to the next round, after newer ones
    fault_seed: int = 0
    pump_interval_s: float = 1.0  # how often a served emulator publishes the events the clock has passed
    retry_after_s: int = 10  # retry-after of a 204 at the end of the journal (§A.7)
    exports_folder: Path | None = None  # None: no export files and no SFTP server
    export_interval_s: float = 600.0  # export workflow schedule (§C.8: at most every 10 minutes)
    sftp_host: str = "127.0.0.1"
    sftp_port: int = 0  # 0: a free port, printed at start
    sftp_user: str = "acs-export"
    sftp_password: str = "emulator-secret"  # noqa: S105 - the emulator's documented default


@dataclass(slots=True)
class CampaignEmulatorSettings:
    """Everything that makes one emulated ACS instance; mutable fields may be changed at run time."""

    db_path: str = ":memory:"
    organizations: tuple[str, ...] = ("acme",)
    clients: tuple[ImsClientConfig, ...] = field(default_factory=_default_clients)
    # PKeys differ between instances like real ones; a fixed salt makes them reproducible.
    pkey_salt: str = field(default_factory=lambda: secrets.token_hex(16))
    big_table_threshold: int = 100_000  # XtkBigTableThreshold default (§3.2)
    flag_timestamps: bool = True  # per-flag …LastModified fields seen in real tenant data (§5)
    email_filter_case_sensitive: bool = True  # byEmail case sensitivity is undocumented (§3.5)
    rate_limit_per_s: float | None = None  # gateway 429050 above this many API requests per second
    faults: FaultConfig = field(default_factory=FaultConfig)
    token_lifetime_s: int = 86399
    privacy_step_s: float = 60.0  # time a privacy request spends in each status before moving on (inferred)
    schema_path: Path | None = None  # custom resource schema file; None = the shipped default (cusVehicle)
    seed_profiles: int = 0  # profiles generated at start
    seed: int = 0
    clock: Clock = field(default_factory=Clock)
    events: EventsSettings = field(default_factory=EventsSettings)
