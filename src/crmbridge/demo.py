"""``crmbridge demo``: both emulators, seeded data, a full sync, live changes, incremental passes, a summary.

Everything runs for real: the emulators are child processes on free ports (Dataverse over HTTPS so MSAL works
unchanged), the sync authenticates through MSAL and Adobe IMS, reads Dataverse change tracking, writes ACS by
business key, reads the I/O Events journal and writes activities back. The summary is checked against what the
emulators then hold.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from crmbridge import event_loop
from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.demo_changes import (
    CAMPAIGN_SECRET_ENV,
    DYNAMICS_SECRET_ENV,
    DemoEmulators,
    create_problem_contact,
    make_live_changes,
)
from crmbridge.demo_summary import Totals, print_summary, write_summary_file
from crmbridge.emulators.launch import (
    CAMPAIGN_CLIENT_ID,
    CAMPAIGN_CLIENT_SECRET,
    DYNAMICS_CLIENT_ID,
    DYNAMICS_CLIENT_SECRET,
    DYNAMICS_TENANT,
    start_campaign,
    start_dynamics,
)
from crmbridge.engine.events import EventStats
from crmbridge.engine.optouts import OptOutStats
from crmbridge.engine.provision import provision
from crmbridge.engine.runner import Runner, Services
from crmbridge.engine.tables import PassStats
from crmbridge.exceptions import CrmbridgeError
from crmbridge.service import start_dashboard

__all__ = ["DemoOptions", "demo_config_text", "run_demo"]

JOURNAL_PATH = "/events/organizations/23294/integrations/54108/f89067f2-0d50-4bb2-bf78-209d0eacb6eb"
IMS_ORG = "0123456789ABCDEF01234567@AdobeOrg"
DASHBOARD_TOKEN_ENV = "CRMBRIDGE_DEMO_DASHBOARD_TOKEN"  # noqa: S105 - the name of an env var, not a secret
SUMMARY_FILE = "summary.json"


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
    dashboard_token: str | None = None,
) -> str:
    """The configuration the demo runs with: a complete, realistic one, written next to its state.

    Benchmarks and e2e tests reuse it, leaving out the event or opt-out sections they do not measure. With a
    ``dashboard_token`` the service section enables the dashboard's actions and runs every flow every 15 s.
    """
    text = f"""\
# Written by `crmbridge demo`: both sides are local emulators. Try `crmbridge config validate` on it.
version: 1
dynamics:
  org_url: {dynamics_url}
  authority_host: {dynamics_url}
  tenant_id: {DYNAMICS_TENANT}
  client_id: "{DYNAMICS_CLIENT_ID}"
  client_secret: ${{{DYNAMICS_SECRET_ENV}:-{DYNAMICS_CLIENT_SECRET}}}
  ca_bundle: {ca_path}
  max_concurrency: {dynamics_concurrency}
campaign:
  organization: acme
  base_url: {campaign_url}
  ims_url: {campaign_url}
  client_id: {CAMPAIGN_CLIENT_ID}
  client_secret: ${{{CAMPAIGN_SECRET_ENV}:-{CAMPAIGN_CLIENT_SECRET}}}
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
    if dashboard_token:
        text += f"""\
service:
  interval: 15s  # a lively dashboard while the demo keeps running; the default is 1m
  dashboard_token: ${{{DASHBOARD_TOKEN_ENV}:-{dashboard_token}}}
"""
    return text


def _start(options: DemoOptions, console: Console) -> DemoEmulators:
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
    return DemoEmulators(dynamics, campaign)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


async def _sync_all(
    runner: Runner, console: Console, title: str, totals: Totals, expected: int | None, changed_at: float | None = None
) -> None:
    """One pass of every flow; ``changed_at`` (time.monotonic() when the live changes ended) records each latency."""

    def done(flow: str) -> None:
        if changed_at is not None:
            totals.latency(flow, time.monotonic() - changed_at)

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
            totals.add(f"tables: {stats.mapping}", stats.counts(), stats.seconds)
            done(f"tables: {stats.mapping}")
        task = progress.add_task("opt-outs", total=None, detail="both sides")
        optouts = await runner.optouts_pass()
        if isinstance(optouts, OptOutStats):
            progress.update(task, total=1, completed=1, detail=_optout_detail(optouts))
            totals.add("opt-outs", optouts.counts(), optouts.seconds)
            done("opt-outs")
        task = progress.add_task("email events", total=None, detail="journal")

        def on_events(stats: EventStats) -> None:
            progress.update(task, detail=f"read {stats.read:,}  written {stats.written:,}  unmatched {stats.unmatched}")

        events = await runner.events_pass(progress=on_events)
        if isinstance(events, EventStats):
            progress.update(task, total=1, completed=1, detail=_event_detail(events))
            by_type = {f"written:{kind}": count for kind, count in events.by_type.items()}
            totals.add("email events", events.counts() | by_type, events.seconds)
            done("email events")


def _optout_detail(stats: OptOutStats) -> str:
    return f"to Campaign {stats.written_campaign}  to Dynamics {stats.written_dynamics}  conflicts {stats.conflicts}"


def _event_detail(stats: EventStats) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_type.items())) or "none"
    return f"written {stats.written:,} ({kinds})  unmatched {stats.unmatched}  duplicates {stats.duplicates}"


class _Stopper:
    """SIGTERM and SIGINT. During the demo's own passes: cancel at once (a batch in hand is abandoned whole, never
    half-committed). While running forever: let the batch in hand finish, as ``crmbridge run`` does, and cancel
    after the grace period; a second signal cancels at once. Either way the emulators are stopped afterwards."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.runner: Runner | None = None  # set once the demo runs forever
        self.grace = 10.0
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.request)

    def request(self) -> None:
        if self.task is None:
            return
        if self.runner is not None and not self.requested:
            self.runner.stop()
            self.loop.call_later(self.grace, self.task.cancel)
        else:
            self.task.cancel()
        self.requested = True


@dataclass
class _Outcome:
    summary_shown: bool = False


async def _run(options: DemoOptions, emulators: DemoEmulators, console: Console, token: str, outcome: _Outcome) -> None:
    stopper = _Stopper()
    config_path = options.workdir / "crmbridge.yaml"
    config_path.write_text(
        demo_config_text(
            emulators.dynamics.base_url,
            emulators.dynamics.ca_path or Path(),
            emulators.campaign.base_url,
            (options.workdir / "state.db").resolve(),
            dashboard_token=token,
        )
    )
    config = load_config(config_path)
    console.print(f"  configuration       {config_path}")
    problem = await asyncio.to_thread(create_problem_contact, emulators)
    console.print(f"  problem contact     {problem}  (two addresses in its email field: Campaign will refuse it)")
    totals = Totals()
    started = time.monotonic()
    async with Services.open(config) as services:
        runner = Runner(services)
        created = await provision(services.dataverse.metadata, config, dry_run=False)
        console.print(f"  provisioned         {len(created)} activity tables, columns and keys in Dynamics")
        dashboard = await start_dashboard(runner, services, port=0)
        console.print(f"  dashboard           {dashboard.url}/")
        try:
            await _sync_all(runner, console, "Initial sync", totals, options.size + 1)
            changes = await asyncio.to_thread(make_live_changes, emulators, size=options.size, seed=options.seed)
            changed_at = time.monotonic()
            console.rule("Live changes")
            for what, count in changes.made.items():
                console.print(f"  {count:>6,}  {what}")
            await _sync_all(runner, console, "Incremental sync", totals, None, changed_at)
            seconds = time.monotonic() - started
            print_summary(totals, console, seconds)
            details = {"live_changes": changes.as_json(), "problem_contact": problem, "dashboard": dashboard.url}
            _finish(options, emulators, console, config, token, totals, seconds, details)
            outcome.summary_shown = True
            if options.keep_running:
                console.print(f"Running every flow on its interval with {config_path}; Ctrl-C stops everything.")
                stopper.runner, stopper.grace = runner, config.service.shutdown_grace.total_seconds()
                if not stopper.requested:
                    await runner.run_forever()
                console.print("stopped: every flow finished its batch")
        finally:
            await dashboard.stop()


def _finish(
    options: DemoOptions,
    emulators: DemoEmulators,
    console: Console,
    config: CrmbridgeConfig,
    token: str,
    totals: Totals,
    seconds: float,
    details: dict[str, Any],
) -> None:
    """Write ``summary.json`` and print where everything is."""
    summary_path = options.workdir / SUMMARY_FILE
    write_summary_file(
        summary_path,
        totals,
        seconds,
        **details,
        config=str((options.workdir / "crmbridge.yaml").resolve()),
        state_url=config.state.url,
        emulators=emulators.describe(),
        demo_pid=os.getpid(),
        keep_running=options.keep_running,
    )
    console.print(f"State store: {config.state.url}  (`crmbridge state info --state {config.state.url}`)")
    console.print(f"Summary:     {summary_path}")
    console.print(f"Dashboard:   {details['dashboard']}/   metrics: {details['dashboard']}/metrics")
    console.print(f"Dashboard token: {token}   (unlocks Retry and Drop on the dashboard)")
    if not options.keep_running:
        console.print(
            "The dashboard and the emulators stop with the demo: `crmbridge demo --keep-running` leaves them up."
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; 0 once the summary was shown, 1 when it was stopped or failed before (the error is printed).

    SIGTERM is handled like Ctrl-C all along, so the emulator processes are always stopped with the demo.
    """
    token = os.environ.get(DASHBOARD_TOKEN_ENV) or secrets.token_urlsafe(18)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _interrupt)
    outcome = _Outcome()
    try:
        emulators = _start(options, console)
        try:
            event_loop.run(_run(options, emulators, console, token, outcome))
        except (KeyboardInterrupt, asyncio.CancelledError):
            console.print("stopped")
        except CrmbridgeError as error:
            console.print(f"[red]stopped:[/red] {error}")
        finally:
            for sig in previous:  # a second signal must not cut the cleanup short
                signal.signal(sig, signal.SIG_IGN)
            emulators.stop()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if outcome.summary_shown else 1
