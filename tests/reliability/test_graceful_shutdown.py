"""SIGTERM during a large sync: ``crmbridge run`` exits within ``service.shutdown_grace`` plus a small margin, and
the next start resumes with nothing lost or duplicated.

Both emulators run as child processes (Dataverse over HTTPS); the oracle reads them through their public APIs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from crmbridge.demo import demo_config_text
from crmbridge.emulators.launch import (
    CAMPAIGN_CLIENT_ID,
    CAMPAIGN_CLIENT_SECRET,
    DYNAMICS_CLIENT_ID,
    DYNAMICS_CLIENT_SECRET,
    DYNAMICS_TENANT,
    EmulatorProcess,
    free_port,
    start_campaign,
    start_dynamics,
)

from . import oracle

SRC = Path(__file__).resolve().parents[2] / "src"  # the child runs this checkout's sources, like tests/e2e
GRACE_S = 10.0  # the default service.shutdown_grace
MARGIN_S = 5.0  # interpreter exit, closing connections, a loaded machine


@pytest.fixture
def emulators(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[EmulatorProcess, EmulatorProcess]]:
    size = int(getattr(request, "param", 1200))
    dynamics = start_dynamics(tmp_path, seed=size)
    try:
        campaign = start_campaign(tmp_path, latency_ms=15.0)  # slows the sync so SIGTERM lands in the middle
    except BaseException:
        dynamics.stop()
        raise
    yield dynamics, campaign
    dynamics.stop()
    campaign.stop()


def write_config(tmp_path: Path, dynamics: EmulatorProcess, campaign: EmulatorProcess) -> Path:
    text = demo_config_text(
        dynamics.base_url,
        dynamics.ca_path or Path(),
        campaign.base_url,
        tmp_path / "state.db",
        events=False,
        optouts=False,
    )
    # Filters would make "every active contact" the oracle anyway; the service section binds a free port.
    text += f"service:\n  port: {free_port()}\n  interval: 2s\n  log_format: json\n"
    path = tmp_path / "crmbridge.yaml"
    path.write_text(text)
    return path


def start_run(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(  # our own interpreter and CLI
            [sys.executable, "-m", "crmbridge", "run", "-c", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(SRC)},
        )


def profile_count(campaign: EmulatorProcess) -> int:
    with httpx.Client(base_url=campaign.base_url, timeout=30, trust_env=False) as http:
        rows = http.get("/_emulator/stats").json()["rows"]
    return int(rows.get("profile", 0)) if isinstance(rows, dict) else 0


async def sides(dynamics: EmulatorProcess, campaign: EmulatorProcess) -> tuple[list[dict[str, object]], list[str]]:
    import ssl

    verify = ssl.create_default_context(cafile=str(dynamics.ca_path))
    async with (
        httpx.AsyncClient(base_url=dynamics.base_url, verify=verify, timeout=60, trust_env=False) as dv,
        httpx.AsyncClient(base_url=campaign.base_url, timeout=60, trust_env=False) as acs,
    ):
        token = await oracle.dataverse_token(dv, DYNAMICS_TENANT, DYNAMICS_CLIENT_ID, DYNAMICS_CLIENT_SECRET)
        contacts = await oracle.dataverse_rows(dv, token, "contacts", "contactid,statecode")
        acs_token = await oracle.campaign_token(acs, CAMPAIGN_CLIENT_ID, CAMPAIGN_CLIENT_SECRET)
        profiles = await oracle.campaign_rows(acs, acs_token, CAMPAIGN_CLIENT_ID, "profile")
    return contacts, [str(p.get("externalId") or "") for p in profiles]


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def stop_within_grace(process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=GRACE_S + MARGIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(
            f"still running {GRACE_S + MARGIN_S:.0f} s after SIGTERM:\n{log.read_text()[-3000:]}"
        ) from None
    return time.monotonic() - started


@pytest.mark.slow  # two emulator processes, 1,200 contacts and two service runs: about two minutes here
def test_sigterm_mid_sync_exits_within_grace_and_the_next_start_resumes_exactly(
    tmp_path: Path, emulators: tuple[EmulatorProcess, EmulatorProcess]
) -> None:
    dynamics, campaign = emulators
    config = write_config(tmp_path, dynamics, campaign)
    log = tmp_path / "run.log"
    contacts, _ = anyio.run(sides, dynamics, campaign)
    active = sorted(str(c["contactid"]) for c in contacts if c.get("statecode") == 0)

    first = start_run(config, log)
    try:
        wait_until(lambda: profile_count(campaign) >= 100, 240, "the sync to write its first profiles")
    except BaseException:
        first.kill()
        first.wait()
        raise
    seconds = stop_within_grace(first, log)
    print(f"SIGTERM to exit: {seconds:.1f} s (grace {GRACE_S:.0f} s)")
    assert first.returncode == 0, log.read_text()[-3000:]
    interrupted_at = profile_count(campaign)
    assert interrupted_at < len(active), "SIGTERM came after the sync had finished: make the sync larger"

    second = start_run(config, log)
    try:
        wait_until(lambda: profile_count(campaign) >= len(active), 300, "the resumed sync to finish")
        time.sleep(3)  # one more interval: a duplicate written late would show up here
    finally:
        stop_within_grace(second, log)

    _, profile_keys = anyio.run(sides, dynamics, campaign)
    assert oracle.duplicates(profile_keys) == {}
    assert sorted(profile_keys) == active, f"stopped after {seconds:.1f} s at {interrupted_at} profiles"
