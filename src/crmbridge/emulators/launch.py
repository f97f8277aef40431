"""Start the emulators as child processes on free ports and wait until they answer (demo, e2e tests, benchmarks).

Separate processes, as real services are: the sync's own CPU and memory are then measured apart from theirs.
The Dataverse emulator serves HTTPS with a generated CA, because MSAL refuses http authorities (NOTES.md).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "CAMPAIGN_CLIENT_ID",
    "CAMPAIGN_CLIENT_SECRET",
    "DYNAMICS_CLIENT_ID",
    "DYNAMICS_CLIENT_SECRET",
    "DYNAMICS_TENANT",
    "EmulatorProcess",
    "free_port",
    "start_campaign",
    "start_dynamics",
]

# The emulators' built-in sandbox credentials (not secrets: documented in docs/emulators.md).
DYNAMICS_TENANT = "emulator-tenant"
DYNAMICS_CLIENT_ID = "00000000-0000-0000-0000-00000000c11e"
DYNAMICS_CLIENT_SECRET = "emulator-secret"  # noqa: S105
CAMPAIGN_CLIENT_ID = "crmbridge-emulator"
CAMPAIGN_CLIENT_SECRET = "emulator-secret"  # noqa: S105


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class EmulatorProcess:
    """A running emulator: its base URL, its process, and the CA file for HTTPS ones."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ca_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        verify: bool | str = str(self.ca_path) if self.ca_path else True
        last_error = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.name} emulator exited ({self.process.returncode}); see {self.log_path}")
            if self.ca_path is None or self.ca_path.exists():
                try:
                    with httpx.Client(verify=_verify(verify), timeout=2.0, trust_env=False) as client:
                        if client.get(self.base_url + path).status_code < 500:
                            return
                except httpx.HTTPError as error:
                    last_error = str(error)
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the {self.name} emulator did not answer within {timeout:.0f} s ({last_error})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _verify(verify: bool | str) -> bool | ssl.SSLContext:
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def _spawn(args: list[str], log_path: Path, env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Secrets go through the environment, never argv: argv is visible to every user in `ps`.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    # The child runs this very crmbridge (a worktree or checkout), not whichever one the venv has installed.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    # The child gets its own copy of the descriptor; the parent's is closed at once instead of leaking.
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module, arguments built here
            [sys.executable, "-m", "crmbridge", "emulate", *args], stdout=log, stderr=subprocess.STDOUT, env=env
        )


def start_dynamics(
    workdir: Path,
    *,
    seed: int = 0,
    latency_ms: float = 0.0,
    limits: str = "",
    faults: str = "",
    port: int = 0,
    client_secret: str | None = None,
) -> EmulatorProcess:
    """The Dataverse emulator over HTTPS; ``ca_path`` is the CA a client must trust.

    ``client_secret`` replaces the sandbox secret of the one application user (client id unchanged).
    """
    port = port or free_port()
    ca_path = workdir / "dynamics-ca.pem"
    ca_path.unlink(missing_ok=True)
    args = ["dynamics", "--port", str(port), "--db", str(workdir / "dynamics.db"), "--tls", "--ca-out", str(ca_path)]
    args += ["--seed", str(seed)] if seed else []
    args += ["--latency-ms", str(latency_ms)] if latency_ms else []
    args += ["--limits", limits] if limits else []
    args += ["--faults", faults] if faults else []
    env: dict[str, str] = {}
    if client_secret is not None:
        args += ["--client-id", DYNAMICS_CLIENT_ID, "--tenant", DYNAMICS_TENANT]
        env["CRMBRIDGE_EMULATOR_CLIENT_SECRET"] = client_secret
    process = _spawn(args, workdir / "dynamics.log", env)
    emulator = EmulatorProcess("Dataverse", f"https://127.0.0.1:{port}", process, workdir / "dynamics.log", ca_path)
    emulator.wait_ready("/_emulator/stats", timeout=120.0 + seed / 500)
    return emulator


def start_campaign(
    workdir: Path,
    *,
    latency_ms: float = 0.0,
    extra_args: list[str] | None = None,
    port: int = 0,
    client_secret: str | None = None,
) -> EmulatorProcess:
    """The Campaign emulator (IMS, REST API, journal) over HTTP on 127.0.0.1.

    ``client_secret`` replaces the sandbox secret of the built-in IMS client (client id unchanged).
    """
    port = port or free_port()
    args = ["campaign", "--port", str(port), "--db", str(workdir / "campaign.db")]
    args += ["--latency-ms", str(latency_ms)] if latency_ms else []
    args += extra_args or []
    env = {"CRMBRIDGE_EMULATOR_CAMPAIGN_SECRET": client_secret} if client_secret is not None else {}
    process = _spawn(args, workdir / "campaign.log", env)
    emulator = EmulatorProcess("Campaign", f"http://127.0.0.1:{port}", process, workdir / "campaign.log")
    emulator.wait_ready("/_emulator/stats")
    return emulator
