"""Helper for the Dataverse benchmarks (not a benchmark): the emulator behind uvicorn over HTTPS, in a thread."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from crmbridge.config import DynamicsSettings
from crmbridge.emulators.dynamics import DEFAULT_CLIENT, DynamicsEmulatorSettings, create_app
from crmbridge.emulators.dynamics.tls import make_tls_files


@dataclass(frozen=True)
class Served:
    app: Starlette
    origin: str
    ca_path: Path

    def settings(self, **overrides: Any) -> DynamicsSettings:
        """Production-shaped settings: MSAL against the emulator's Entra endpoints, its CA trusted."""
        values: dict[str, Any] = {
            "org_url": self.origin,
            "authority_host": self.origin,
            "tenant_id": DEFAULT_CLIENT.tenant,
            "client_id": DEFAULT_CLIENT.client_id,
            "client_secret": DEFAULT_CLIENT.client_secret,
            "ca_bundle": self.ca_path,
        }
        return DynamicsSettings(**{**values, **overrides})


@contextmanager
def served_emulator(**settings: Any) -> Iterator[Served]:
    app = create_app(DynamicsEmulatorSettings(**settings))
    with tempfile.TemporaryDirectory(prefix="crmbridge-bench-") as directory:
        tls = make_tls_files(directory)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="critical", lifespan="off", ssl_certfile=str(tls.cert_path), ssl_keyfile=str(tls.key_path)
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        try:
            yield Served(app, f"https://127.0.0.1:{port}", tls.ca_path)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
