"""Run the Dataverse emulator with uvicorn (what ``crmbridge emulate dynamics`` calls)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import uvicorn

from crmbridge.emulators.dynamics.app import create_app
from crmbridge.emulators.dynamics.settings import DynamicsEmulatorSettings
from crmbridge.emulators.dynamics.tls import make_tls_files
from crmbridge.emulators.faults import FaultConfig

__all__ = ["ServeOptions", "parse_faults", "serve"]


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    tls: bool = False
    ca_out: str | None = None


def parse_faults(text: str) -> FaultConfig:
    """``latency_ms=120,error_rate=0.01`` (the ``--faults`` CLI syntax) as a :class:`FaultConfig`."""
    kinds = {f.name: f.type for f in fields(FaultConfig)}
    values: dict[str, Any] = {}
    for item in (i for i in text.split(",") if i.strip()):
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals or name not in kinds:
            raise ValueError(f"unknown or malformed fault setting {item!r} (known: {', '.join(sorted(kinds))})")
        values[name] = int(value) if name == "seed" else None if value.strip() == "none" else float(value)
    return FaultConfig.from_mapping(values)


def _print(line: str) -> None:
    print(line, flush=True)  # flushed: scripts and tests read these lines from a pipe


def serve(settings: DynamicsEmulatorSettings, options: ServeOptions, announce: Callable[[str], None] = _print) -> None:
    """Start the emulator and block; prints where clients should point (never the client secret)."""
    ssl: dict[str, str] = {}
    ca_path: Path | None = None
    if options.tls:
        files = make_tls_files(Path(tempfile.mkdtemp(prefix="crmbridge-dynemu-tls-")), options.ca_out)
        ssl = {"ssl_certfile": str(files.cert_path), "ssl_keyfile": str(files.key_path)}
        ca_path = files.ca_path
    scheme = "https" if options.tls else "http"
    app = create_app(settings)
    origin = f"{scheme}://{options.host}:{options.port}"
    tenant = settings.clients[0].tenant if settings.clients else "emulator-tenant"
    announce(f"Dataverse emulator service root: {origin}/api/data/v9.2/")
    announce(f"Token endpoint:                  {origin}/{tenant}/oauth2/v2.0/token (scope {origin}/.default)")
    announce(f"MSAL authority:                  {origin}/{tenant} (instance_discovery=False)")
    announce(f"Client ids:                      {', '.join(c.client_id for c in settings.clients)}")
    if ca_path is not None:
        announce(f"CA certificate for clients:      {ca_path}")
    announce(f"Operator routes:                 {origin}/_emulator/stats (seed, mutate, reset, clock, limits, faults)")
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", **ssl)  # type: ignore[arg-type]
