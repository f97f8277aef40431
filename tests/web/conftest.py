"""A real SQLite state store with rows written through ``Batch``, a runner status, and the app over them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.state import Batch, ConflictRecord, DeadLetter, Flow, LinkRow, RunStatus, StateStore
from crmbridge.web import FixedStatus, FlowStatus, Metrics, RunnerStatus, create_web_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "crmbridge.yaml"

DASHBOARD_TOKEN = "dash-Token-Value-0b6e"
SECRETS = {
    "CRMBRIDGE_DYNAMICS_CLIENT_SECRET": "Dyn~Secret.Value-7f3a9c",
    "CRMBRIDGE_CAMPAIGN_CLIENT_SECRET": "p8e-AcsSecretValue-41d2",
    "CRMBRIDGE_DASHBOARD_TOKEN": DASHBOARD_TOKEN,
    "CRMBRIDGE_SFTP_KEY_PASSPHRASE": "sftp-Passphrase-93ac",
}
BASE_URL = "http://127.0.0.1:8321"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Record values a reader must find on the page, each in one place only.
REFUSED_RECORD = "contact-3f2a"
REFUSED_REASON = "XTK-170036 Unable to parse expression 'birthDate'"
SECOND_RECORD = "vehicle-77"
CONFLICT_CONTACT = "contact-conflict-91"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, "the page carries no CSRF token"
    return match.group(1)


def seed_store(store: StateStore) -> dict[str, int]:
    """Links, two dead letters, a conflict and finished runs, all through the store's public writes."""
    tables = Batch(Flow.TABLES, "contacts")
    tables.upsert_links(
        LinkRow("contacts", f"c-{index}", f"c-{index}", f"hash-{index}", NOW - timedelta(minutes=5))
        for index in range(3)
    )
    tables.dead_letter(
        DeadLetter(
            Flow.TABLES,
            "contacts",
            REFUSED_RECORD,
            {"firstName": "Zoë <script>alert(1)</script>", "email": "zoe+news@example.com"},
            "RecordError",
            REFUSED_REASON,
            NOW - timedelta(minutes=2),
        )
    )
    tables.advance_to("delta-link-1")
    store.commit(tables)
    vehicles = Batch(Flow.TABLES, "vehicles")
    vehicles.dead_letter(
        DeadLetter(Flow.TABLES, "vehicles", SECOND_RECORD, {"vin": "WVW123"}, "RecordError", "parent missing", NOW)
    )
    store.commit(vehicles)
    optouts = Batch(Flow.OPTOUTS, "donotbulkemail:blackListEmail")
    optouts.log_conflict(
        ConflictRecord(
            at=NOW - timedelta(minutes=1),
            contact_id=CONFLICT_CONTACT,
            pair="donotbulkemail:blackListEmail",
            dynamics_value=False,
            dynamics_changed_at=NOW - timedelta(minutes=20),
            campaign_value=True,
            campaign_changed_at=NOW - timedelta(minutes=10),
            winner="campaign",
            rule="adobe",
            resolved_value=True,
        )
    )
    store.commit(optouts)
    run = store.start_run(Flow.TABLES, "contacts")
    store.finish_run(run, RunStatus.SUCCEEDED, {"read": 3, "written": 2, "failed": 1})
    ids = {letter.record_key: letter.id for letter in store.dead_letters.list()}
    return {key: value for key, value in ids.items() if value is not None}


def runner_status(*, failing: bool = False) -> RunnerStatus:
    flows = [
        FlowStatus(
            name="contacts",
            kind="tables",
            state="failed" if failing else "idle",
            last_pass_at=NOW - timedelta(seconds=40),
            last_counts={"read": 120, "written": 118, "skipped": 1, "failed": 1},
            last_error="Campaign refused the batch: HTTP 500 RST-360011" if failing else None,
            backlog=42,
            lag_seconds=95.0,
            next_run_at=NOW + timedelta(seconds=20),
        ),
        FlowStatus(name="email-events", kind="events", state="running", backlog=None, lag_seconds=12.5),
        FlowStatus(name="optouts", kind="optouts", state="paused"),
    ]
    return RunnerStatus(flows=flows, started_at=NOW - timedelta(hours=2))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def letter_ids(store: StateStore) -> dict[str, int]:
    return seed_store(store)


@pytest.fixture
def config() -> CrmbridgeConfig:
    return load_config(EXAMPLE, environ=SECRETS)


@pytest.fixture
def status() -> FixedStatus:
    return FixedStatus(runner_status())


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(dynamics_daily_entitlement=40_000)


@pytest.fixture
async def client(
    store: StateStore, letter_ids: dict[str, int], status: FixedStatus, metrics: Metrics, config: CrmbridgeConfig
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_web_app(store, status, metrics, config, token=None, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as opened:
        yield opened
