"""``crmbridge emulate dynamics``: every option documented, and a real start in --tls mode."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.emulators.dynamics import DEFAULT_CLIENT
from crmbridge.emulators.dynamics.runner import build_settings

from .test_tls_msal import free_port

OPTIONS = (
    "--port", "--db", "--host", "--tls", "--ca-out", "--seed", "--latency-ms", "--limits", "--faults",
    "--clients", "--client-id", "--client-secret", "--tenant", "--expire-change-tracking-days",
)  # fmt: skip


def test_help_documents_every_option() -> None:
    result = CliRunner().invoke(app, ["emulate", "dynamics", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in OPTIONS:
        assert re.search(rf"{option}\s+\S.*\w", result.output), option


def test_bad_limits_are_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["emulate", "dynamics", "--db", ":memory:", "--limits", "nonsense=1"])
    assert result.exit_code == 2
    assert "unknown limit settings" in result.output


def test_cli_serves_tls_and_prints_where_to_point_clients(tmp_path: Path) -> None:
    port = free_port()
    ca = tmp_path / "ca.pem"
    command = [sys.executable, "-m", "crmbridge", "emulate", "dynamics", "--port", str(port), "--db",
               str(tmp_path / "org.db"), "--tls", "--ca-out", str(ca)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        assert process.stdout is not None
        while not any("Operator routes" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"emulator exited early: {lines}"
            lines.append(line)
        output = "".join(lines)
        assert f"https://127.0.0.1:{port}/api/data/v9.2/" in output
        assert f"https://127.0.0.1:{port}/{DEFAULT_CLIENT.tenant}/oauth2/v2.0/token" in output
        assert str(ca) in output
        assert DEFAULT_CLIENT.client_secret not in output
        context = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + 60  # generous: a loaded CI machine starts servers slowly
        while True:
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/api/data/v9.2/", verify=context, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 401  # up, and refusing requests without a token
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_clients_file_and_fault_options_become_settings(tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    clients.write_text(
        '[{"client_id": "app-1", "client_secret": "s1", "tenant": "t1"},'
        ' {"client_id": "app-2", "client_secret": "s2", "tenant": "t1", "application_user": false}]'
    )
    settings = build_settings(
        db=":memory:", clients=str(clients), faults="error_rate=0.5,seed=3", latency_ms=40, limits="max_requests=9"
    )
    assert [(c.client_id, c.application_user) for c in settings.clients] == [("app-1", True), ("app-2", False)]
    assert (settings.faults.error_rate, settings.faults.seed, settings.faults.latency_ms) == (0.5, 3, 40)
    assert settings.limits.max_requests == 9
    with pytest.raises(ValueError, match="not both"):
        build_settings(db=":memory:", clients=str(clients), client_id="x", client_secret="y")
    with pytest.raises(ValueError, match="unknown or malformed fault setting"):
        build_settings(db=":memory:", faults="explode=1")
