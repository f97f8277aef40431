"""Turn ``crmbridge emulate dynamics`` options into settings and serve (keeps cli.py to parsing only)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from crmbridge.emulators.dynamics.auth import ClientApp, load_clients
from crmbridge.emulators.dynamics.limits import LimitSettings
from crmbridge.emulators.dynamics.serve import ServeOptions, parse_faults, serve
from crmbridge.emulators.dynamics.settings import DEFAULT_CLIENT, DynamicsEmulatorSettings

__all__ = ["build_settings", "run_from_cli"]


def build_settings(
    *,
    db: str,
    seed: int = 0,
    latency_ms: float = 0.0,
    limits: str = "",
    faults: str = "",
    clients: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    tenant: str = "emulator-tenant",
    change_tracking_days: int = 7,
) -> DynamicsEmulatorSettings:
    if clients and client_id:
        raise ValueError("use either --clients FILE or --client-id/--client-secret, not both")
    if client_id and not client_secret:
        raise ValueError("--client-id needs --client-secret (or CRMBRIDGE_EMULATOR_CLIENT_SECRET)")
    if clients:
        apps = load_clients(clients)
    elif client_id and client_secret:
        apps = [ClientApp(client_id, client_secret, tenant)]
    else:
        apps = [replace(DEFAULT_CLIENT, tenant=tenant)]
    fault_config = parse_faults(faults)
    if latency_ms:
        fault_config = replace(fault_config, latency_ms=latency_ms)
    if not 0 <= change_tracking_days <= 365:
        raise ValueError("--expire-change-tracking-days must be between 0 and 365")
    if db != ":memory:":
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    return DynamicsEmulatorSettings(
        db_path=db,
        clients=apps,
        limits=LimitSettings.parse(limits) if limits else LimitSettings(),
        faults=fault_config,
        expire_change_tracking_in_days=change_tracking_days,
        seed_contacts=seed,
    )


def run_from_cli(*, port: int, host: str, tls: bool, ca_out: str | None, **settings_options: object) -> None:
    settings = build_settings(**settings_options)  # type: ignore[arg-type]
    serve(settings, ServeOptions(host=host, port=port, tls=tls, ca_out=ca_out))
