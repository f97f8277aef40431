"""``crmbridge demo``: both emulators, seeded data, a full sync, live changes, incremental passes, a summary.

Everything runs for real: the emulators are child processes on free ports (Dataverse over HTTPS so MSAL works
unchanged), the sync authenticates through MSAL and Adobe IMS, reads Dataverse change tracking, writes ACS by
business key, reads the I/O Events journal and writes activities back. The summary is checked against what the
emulators then hold.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from crmbridge import event_loop
from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.emulators.launch import (
    CAMPAIGN_CLIENT_ID,
    CAMPAIGN_CLIENT_SECRET,
    DYNAMICS_CLIENT_ID,
    DYNAMICS_CLIENT_SECRET,
    DYNAMICS_TENANT,
    EmulatorProcess,
    start_campaign,
    start_dynamics,
)
from crmbridge.engine.events import EventStats
from crmbridge.engine.optouts import OptOutStats
from crmbridge.engine.provision import provision
from crmbridge.engine.runner import Runner, Services
from crmbridge.engine.tables import PassStats
from crmbridge.service import start_dashboard

__all__ = ["DemoOptions", "demo_config_text", "run_demo"]

JOURNAL_PATH = "/events/organizations/23294/integrations/54108/f89067f2-0d50-4bb2-bf78-209d0eacb6eb"
IMS_ORG = "0123456789ABCDEF01234567@AdobeOrg"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    size: int = 2000  # contacts seeded in Dynamics (vehicles and accounts follow)
    workdir: Path = Path(".crmbridge/demo")
    keep_running: bool = False
    latency_ms: float = 0.0  # emulator latency per request; real services answer in 10s-100s of ms
    seed: int = 7


def demo_config_text(
    dynamics_url: str,
    ca_path: Path,
    campaign_url: str,
    state_path: Path,
    *,
    events: bool = True,
    optouts: bool = True,
    campaign_concurrency: int = 16,
    dynamics_concurrency: int = 8,
) -> str:
    """The configuration the demo runs with: a complete, realistic one, written next to its state.

    Benchmarks and e2e tests reuse it, leaving out the event or opt-out sections they do not measure.
    """
    text = f"""\
# Written by `crmbridge demo`: both sides are local emulators. Try `crmbridge config validate` on it.
version: 1
dynamics:
  org_url: {dynamics_url}
  authority_host: {dynamics_url}
  tenant_id: {DYNAMICS_TENANT}
  client_id: "{DYNAMICS_CLIENT_ID}"
  client_secret: ${{CRMBRIDGE_DEMO_DYNAMICS_SECRET:-{DYNAMICS_CLIENT_SECRET}}}
  ca_bundle: {ca_path}
  max_concurrency: {dynamics_concurrency}
campaign:
  organization: acme
  base_url: {campaign_url}
  ims_url: {campaign_url}
  client_id: {CAMPAIGN_CLIENT_ID}
  client_secret: ${{CRMBRIDGE_DEMO_CAMPAIGN_SECRET:-{CAMPAIGN_CLIENT_SECRET}}}
  ims_org_id: "{IMS_ORG}"
  max_concurrency: {campaign_concurrency}
  keys_are_identification_keys: true  # the emulator declares externalId and vehicleId as identification keys
mappings:
  - name: contacts
    table: contact
    entity_set: contacts
    resource: profileAndServicesExt
    key: {{dynamics: contactid, campaign: externalId}}
    deletes: propagate
    fields:
      - {{dynamics: firstname, campaign: firstName}}
      - {{dynamics: lastname, campaign: lastName}}
      - {{dynamics: emailaddress1, campaign: email}}
      - {{dynamics: telephone1, campaign: phone}}
      - {{dynamics: address1_city, campaign: location.city}}
      - {{dynamics: address1_postalcode, campaign: location.zipCode}}
      - {{dynamics: birthdate, campaign: birthDate, apply_updates: false}}
      - dynamics: gendercode
        campaign: gender
        picklist: label
        replacements: {{Male: male, Female: female, null: unknown}}
    filters:
      conditions: [{{column: statecode, op: eq, value: 0}}]
      on_filtered_out: delete
  - name: vehicles
    table: new_vehicle
    entity_set: new_vehicles
    resource: cusVehicle
    key: {{dynamics: new_vehicleid, campaign: vehicleId}}
    deletes: propagate
    fields:
      - {{dynamics: new_name, campaign: name}}
      - {{dynamics: new_vin, campaign: vin}}
      - {{dynamics: new_model, campaign: model}}
      - {{dynamics: new_year, campaign: year}}
    links:
      - {{lookup: new_contactid, mapping: contacts, campaign_link: profile, max_wait: 10m}}
state:
  url: sqlite:///{state_path}
"""
    if events:
        text += f"""\
events:
  source:
    journal:
      url: {campaign_url}{JOURNAL_PATH}
      ims_org_id: "{IMS_ORG}"
      start: oldest
  types: {{send: true, open: true, click: true, bounce: hard}}
  rollups: {{enabled: false}}
  followup_tasks: {{on_click: true, on_hard_bounce: true}}
"""
    if optouts:
        text += """\
optouts:
  mode: bidirectional
  conflict_rule: adobe
  pairs:
    - {dynamics: donotbulkemail, campaign: blackListEmail}
"""
    return text


@dataclass
class _Totals:
    """Per flow, what every pass of the demo did."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, flow: str, counts: dict[str, int], seconds: float) -> None:
        row = self.rows.setdefault(flow, {"seconds": 0.0})
        for name, value in counts.items():
            row[name] = row.get(name, 0) + value
        row["seconds"] += seconds


class _Emulators:
    def __init__(self, dynamics: EmulatorProcess, campaign: EmulatorProcess) -> None:
        self.dynamics = dynamics
        self.campaign = campaign

    def stop(self) -> None:
        self.dynamics.stop()
        self.campaign.stop()

    def dynamics_http(self) -> httpx.Client:
        import ssl

        context = ssl.create_default_context(cafile=str(self.dynamics.ca_path))
        return httpx.Client(base_url=self.dynamics.base_url, verify=context, timeout=60.0, trust_env=False)

    def campaign_http(self) -> httpx.Client:
        return httpx.Client(base_url=self.campaign.base_url, timeout=60.0, trust_env=False)


DYNAMICS_SECRET_ENV = "CRMBRIDGE_DEMO_DYNAMICS_SECRET"  # noqa: S105 - names of env vars, not secrets
CAMPAIGN_SECRET_ENV = "CRMBRIDGE_DEMO_CAMPAIGN_SECRET"  # noqa: S105


def _demo_secrets() -> tuple[str, str]:
    """The emulators' client secrets: the demo config's env vars when set (the secret scan uses them), else the
    sandbox defaults. The emulators get them through their environment, the config through ``${ENV}``."""
    return (
        os.environ.get(DYNAMICS_SECRET_ENV) or DYNAMICS_CLIENT_SECRET,
        os.environ.get(CAMPAIGN_SECRET_ENV) or CAMPAIGN_CLIENT_SECRET,
    )


def _start(options: DemoOptions, console: Console) -> _Emulators:
    if options.workdir.exists():
        shutil.rmtree(options.workdir)
    options.workdir.mkdir(parents=True)
    with console.status(f"Starting the Dataverse emulator and seeding {options.size:,} contacts…"):
        dynamics = start_dynamics(
            options.workdir,
            seed=options.size,
            latency_ms=options.latency_ms,
            client_secret=os.environ.get(DYNAMICS_SECRET_ENV) or None,
        )
    console.print(f"  Dataverse emulator  {dynamics.base_url}/api/data/v9.2/  (HTTPS, CA {dynamics.ca_path})")
    try:
        with console.status("Starting the Campaign emulator…"):
            campaign = start_campaign(
                options.workdir,
                latency_ms=options.latency_ms,
                client_secret=os.environ.get(CAMPAIGN_SECRET_ENV) or None,
            )
    except BaseException:
        dynamics.stop()
        raise
    console.print(f"  Campaign emulator   {campaign.base_url}/acme/campaign/  (IMS and I/O Events journal)")
    return _Emulators(dynamics, campaign)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


async def _sync_all(runner: Runner, console: Console, title: str, totals: _Totals, expected: int | None) -> None:
    console.rule(title)
    with _progress(console) as progress:
        tasks: dict[str, Any] = {}

        def on_tables(name: str) -> Callable[[PassStats], None]:
            task = progress.add_task(f"tables: {name}", total=expected if name == "contacts" else None, detail="")
            tasks[name] = task

            def update(stats: PassStats) -> None:
                detail = f"read {stats.read:,}  written {stats.written:,}  skipped {stats.skipped + stats.filtered:,}"
                detail += f"  parked {stats.parked:,}  failed {stats.failed:,}"
                progress.update(task, completed=stats.read, detail=detail)

            return update

        for stats in await runner.tables_pass(progress=on_tables):
            progress.update(tasks[stats.mapping], total=stats.read, completed=stats.read)
            totals.add(f"tables: {stats.mapping}", stats.counts() | {"written": stats.written}, stats.seconds)
        task = progress.add_task("opt-outs", total=None, detail="both sides")
        optouts = await runner.optouts_pass()
        if isinstance(optouts, OptOutStats):
            progress.update(task, total=1, completed=1, detail=_optout_detail(optouts))
            totals.add("opt-outs", optouts.counts(), optouts.seconds)
        task = progress.add_task("email events", total=None, detail="journal")

        def on_events(stats: EventStats) -> None:
            progress.update(task, detail=f"read {stats.read:,}  written {stats.written:,}  unmatched {stats.unmatched}")

        events = await runner.events_pass(progress=on_events)
        if isinstance(events, EventStats):
            progress.update(task, total=1, completed=1, detail=_event_detail(events))
            totals.add("email events", events.counts(), events.seconds)


def _optout_detail(stats: OptOutStats) -> str:
    return f"to Campaign {stats.written_campaign}  to Dynamics {stats.written_dynamics}  conflicts {stats.conflicts}"


def _event_detail(stats: EventStats) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_type.items())) or "none"
    return f"written {stats.written:,} ({kinds})  unmatched {stats.unmatched}  duplicates {stats.duplicates}"


def _live_changes(emulators: _Emulators, options: DemoOptions) -> dict[str, int]:
    """What a CRM user and a marketer would do meanwhile, through the emulators' operator endpoints."""
    made: dict[str, int] = {}
    updates, deletes = max(5, options.size // 20), max(2, options.size // 200)
    with emulators.dynamics_http() as dynamics, emulators.campaign_http() as campaign:
        response = dynamics.post(
            "/_emulator/mutate", json={"table": "contact", "updates": updates, "deletes": deletes, "seed": options.seed}
        )
        response.raise_for_status()
        changed = response.json()
        made["contacts edited in Dynamics"] = len(changed["updated"])
        made["contacts deleted in Dynamics"] = len(changed["deleted"])
        survivors = [i for i in changed["updated"] if i not in changed["deleted"]]
        opt_outs = survivors[:3]
        if opt_outs:
            dynamics.post(
                "/_emulator/mutate", json={"table": "contact", "ids": opt_outs, "changes": {"donotbulkemail": True}}
            ).raise_for_status()
        made["opt-outs set in Dynamics"] = len(opt_outs)
        externals = _some_external_ids(campaign, count=6)
        opted = 0
        for external_id in externals[:3]:
            answer = campaign.post(
                "/_emulator/optouts", json={"externalId": external_id, "flags": {"blackListEmail": True}}
            )
            opted += answer.status_code == 200
        made["opt-outs set in Campaign"] = opted
        delivery = campaign.post(
            "/_emulator/deliveries",
            json={
                "campaign": {"id": "2026SpringCamp", "label": "Spring 2026"},
                "delivery": {"id": "DM190", "label": "Spring newsletter"},
                "target": {"count": min(options.size, 300)},
                "seed": options.seed,
            },
        )
        delivery.raise_for_status()
        made["emails in the simulated delivery"] = int(delivery.json().get("sends", delivery.json().get("messages", 0)))
        # Opens and clicks come over the next hours: move the Campaign clock on, then publish what is due.
        campaign.post("/_emulator/clock", json={"advanceSeconds": 3 * 86400}).raise_for_status()
        campaign.post("/_emulator/journal/release").raise_for_status()
    return made


def _some_external_ids(campaign: httpx.Client, *, count: int) -> list[str]:
    """externalIds of a few synced profiles, read the documented way (IMS token, then the REST API)."""
    token = campaign.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": CAMPAIGN_CLIENT_ID,
            "client_secret": _demo_secrets()[1],
            "scope": "AdobeID,openid,campaign_sdk",
        },
    )
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}", "X-Api-Key": CAMPAIGN_CLIENT_ID}
    listing = campaign.get(
        "/acme/campaign/profileAndServicesExt/profile", params={"_lineCount": count * 3}, headers=headers
    )
    listing.raise_for_status()
    ids = [str(row["externalId"]) for row in listing.json().get("content", []) if row.get("externalId")]
    return ids[:count]


def _summary(totals: _Totals, console: Console, seconds: float) -> None:
    table = Table(title=f"crmbridge demo: summary ({seconds:.1f} s)", show_lines=False)
    columns = ("read", "written", "skipped", "failed", "seconds")
    table.add_column("flow")
    for name in columns:
        table.add_column(name, justify="right")
    for flow, row in totals.rows.items():
        skipped = row.get("skipped", 0) + row.get("filtered", 0) + row.get("duplicates", 0) + row.get("not_enabled", 0)
        read = row.get("read", row.get("dynamics_changes", 0) + row.get("campaign_changes", 0))
        written = row.get("written", row.get("written_dynamics", 0) + row.get("written_campaign", 0))
        failed = row.get("failed", 0) + row.get("unmatched", 0)
        table.add_row(
            flow, f"{read:,.0f}", f"{written:,.0f}", f"{skipped:,.0f}", f"{failed:,.0f}", f"{row['seconds']:.1f}"
        )
    console.print(table)


async def _run(options: DemoOptions, emulators: _Emulators, console: Console) -> CrmbridgeConfig:
    config_path = options.workdir / "crmbridge.yaml"
    config_path.write_text(
        demo_config_text(
            emulators.dynamics.base_url,
            emulators.dynamics.ca_path or Path(),
            emulators.campaign.base_url,
            (options.workdir / "state.db").resolve(),
        )
    )
    config = load_config(config_path)
    console.print(f"  configuration       {config_path}")
    totals = _Totals()
    started = time.monotonic()
    async with Services.open(config) as services:
        runner = Runner(services)
        created = await provision(services.dataverse.metadata, config, dry_run=False)
        console.print(f"  provisioned         {len(created)} activity tables, columns and keys in Dynamics")
        dashboard = await start_dashboard(runner, services, port=0)
        console.print(f"  dashboard           {dashboard.url}/")
        try:
            await _sync_all(runner, console, "Initial sync", totals, options.size)
            made = await asyncio.to_thread(_live_changes, emulators, options)
            console.rule("Live changes")
            for what, count in made.items():
                console.print(f"  {count:>6,}  {what}")
            await _sync_all(runner, console, "Incremental sync", totals, None)
            _summary(totals, console, time.monotonic() - started)
            console.print(f"State store: {config.state.url}  (`crmbridge state info --state {config.state.url}`)")
            console.print(f"Dashboard:   {dashboard.url}/   metrics: {dashboard.url}/metrics")
            if options.keep_running:
                console.print(f"Running every flow on its interval with {config_path}; Ctrl-C stops everything.")
                await runner.run_forever()
        finally:
            await dashboard.stop()
    return config


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; 0 when everything synced, 1 when a flow failed (the error is printed)."""
    emulators = _start(options, console)
    try:
        event_loop.run(_run(options, emulators, console))
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        emulators.stop()
    return 0
