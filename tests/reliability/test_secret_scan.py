"""Secrets given to the demo through its env vars appear nowhere: output, workdir files, state, /metrics, dashboard.

Also: TLS verification is on by default, so the same config without ``ca_bundle`` fails against the emulator's
self-signed HTTPS with a clear TLS error instead of talking to it.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

DASHBOARD_LINE = re.compile(r"Dashboard:\s+(http://127\.0\.0\.1:\d+)/")
# Only ${ENV} references may stand where a secret goes in a config file.
SECRET_LINE = re.compile(r"^\s*client_secret:\s*(.*)$", re.MULTILINE)


class OutputPump:
    """Collects a child's merged output on a thread, so a full pipe never blocks it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.text())
            if found:
                return found
            time.sleep(0.5)
        return None

    def join(self) -> None:
        self._thread.join(timeout=30)
        self._stream.close()


def _files(root: Path) -> Iterator[Path]:
    return (path for path in sorted(root.rglob("*")) if path.is_file())


def _as_text(path: Path) -> str:
    """A file as text; SQLite databases (state, emulator storage) dumped row by row."""
    data = path.read_bytes()
    if data.startswith(b"SQLite format 3"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return "\n".join(db.iterdump())
    return data.decode("utf-8", errors="replace")


@pytest.fixture
def demo_secrets() -> dict[str, str]:
    return {
        "CRMBRIDGE_DEMO_DYNAMICS_SECRET": "dv-" + secrets.token_hex(12),
        "CRMBRIDGE_DEMO_CAMPAIGN_SECRET": "acs-" + secrets.token_hex(12),
    }


def test_demo_secrets_appear_nowhere_and_tls_is_verified_by_default(
    tmp_path: Path, demo_secrets: dict[str, str]
) -> None:
    workdir = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, "-m", "crmbridge", "demo", "--size", "60", "--workdir", str(workdir), "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "160", **demo_secrets},
    )
    pump = OutputPump(process)
    pages: dict[str, str] = {}
    tls_output = ""
    try:
        found = pump.wait_for(DASHBOARD_LINE, timeout=300)
        assert found is not None, pump.text()
        with httpx.Client(base_url=found.group(1), timeout=30, trust_env=False) as web:
            for path in ("/", "/metrics", "/healthz", "/api/status", "/api/dead-letters", "/api/conflicts"):
                pages[path] = web.get(path).text
            letters = web.get("/api/dead-letters").json()
            for letter in (letters if isinstance(letters, list) else letters.get("items", []))[:3]:
                pages[f"letter {letter['id']}"] = web.get(f"/dead-letters/{letter['id']}").text
        tls_output = _sync_without_ca_bundle(workdir, tmp_path, demo_secrets)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        pump.join()

    assert "metric" in pages["/metrics"].lower() or "# HELP" in pages["/metrics"]
    haystacks = {"demo output": pump.text(), "sync without ca_bundle": tls_output, **pages}
    files = list(_files(workdir))
    assert any(path.name == "state.db" for path in files), [p.name for p in files]
    haystacks.update({str(path.relative_to(workdir)): _as_text(path) for path in files})
    for name, value in demo_secrets.items():
        leaks = [where for where, text in haystacks.items() if value in text]
        assert leaks == [], f"{name} leaked into {leaks}"
    config = (workdir / "crmbridge.yaml").read_text()
    assert [v.strip() for v in SECRET_LINE.findall(config)] == [
        "${CRMBRIDGE_DEMO_DYNAMICS_SECRET:-emulator-secret}",
        "${CRMBRIDGE_DEMO_CAMPAIGN_SECRET:-emulator-secret}",
    ]


def _sync_without_ca_bundle(workdir: Path, tmp_path: Path, demo_secrets: dict[str, str]) -> str:
    """The demo's config minus ``ca_bundle``, with a fresh state: the first HTTPS call must fail on the certificate."""
    config = (workdir / "crmbridge.yaml").read_text()
    assert "ca_bundle:" in config
    config = re.sub(r"^\s*ca_bundle:.*\n", "", config, flags=re.MULTILINE)
    config = re.sub(r"sqlite:///\S+", f"sqlite:///{tmp_path / 'tls-state.db'}", config)
    path = tmp_path / "no-ca.yaml"
    path.write_text(config)
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}
    result = subprocess.run(
        [sys.executable, "-m", "crmbridge", "sync", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "200", **demo_secrets},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"certificate|TLS|SSL", output), output
    assert "Traceback" not in output, output
    return output
