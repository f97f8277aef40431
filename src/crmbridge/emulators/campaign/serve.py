"""Run one Campaign emulator with uvicorn: what ``crmbridge emulate campaign`` calls after parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import uvicorn

from crmbridge.emulators.campaign.emulator import create_campaign_emulator, journal_registration
from crmbridge.emulators.campaign.settings import CampaignEmulatorSettings, EventsSettings, load_clients
from crmbridge.emulators.faults import FaultConfig

__all__ = ["build_settings", "serve"]


def build_settings(
    *,
    db: Path,
    seed_profiles: int,
    latency_ms: float,
    rate_limit: float | None,
    faults: str | None,
    big_table_threshold: int,
    flag_timestamps: bool,
    pkey_salt: str | None,
    clients: list[Path],
    organizations: list[str],
    events: EventsSettings | None = None,
) -> CampaignEmulatorSettings:
    """Settings from CLI values; ``faults`` is a JSON object or a path to one (FaultConfig field names)."""
    fault_data = {}
    if faults:
        text = Path(faults).read_text(encoding="utf-8") if Path(faults).is_file() else faults
        fault_data = json.loads(text)
    if latency_ms:
        fault_data["latency_ms"] = latency_ms
    settings = CampaignEmulatorSettings(
        db_path=str(db),
        big_table_threshold=big_table_threshold,
        flag_timestamps=flag_timestamps,
        rate_limit_per_s=rate_limit,
        faults=FaultConfig.from_mapping(fault_data),
        seed_profiles=seed_profiles,
        events=events or EventsSettings(),
    )
    if pkey_salt is not None:
        settings.pkey_salt = pkey_salt
    if organizations:
        settings.organizations = tuple(organizations)
    if clients:
        settings.clients = tuple(c for path in clients for c in load_clients(path))
    return settings


def serve(settings: CampaignEmulatorSettings, *, host: str, port: int, echo: Callable[[str], None]) -> None:
    """Print what a client configures (the SFTP address follows once its server listens), then serve."""
    app = create_campaign_emulator(settings, announce=echo)
    registration = journal_registration(settings)
    base = f"http://{host}:{port}"
    echo(f"Campaign API:   {base}/{settings.organizations[0]}/campaign (e.g. …/profileAndServices/profile)")
    echo(f"IMS token:      {base}/ims/token/v3")
    echo(f"Events journal: {base}{registration.path}")
    echo(f"Journal reader: x-api-key {registration.client_id}, x-ims-org-id {registration.ims_org_id}")
    echo(f"Operator:       {base}/_emulator/stats, {base}/_emulator/endpoints")
    for client in settings.clients:
        echo(f"IMS client:     {client.client_id} (tenants: {', '.join(client.tenants)})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
