"""Both emulators as child processes, a test configuration, and the real CLI run as a subprocess.

The emulators start once per session (starting them costs seconds); each test gets a clean org through their
operator endpoints (reset, seed) and a fresh state file, so tests do not see each other's rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

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
from tests.e2e.kill import ForkServer
from tests.e2e.oracle import CampaignReader, DataverseReader

SRC = Path(__file__).resolve().parents[2] / "src"
# A hang guard, not a speed check: after a long crash suite the org's 5-minute execution-time budget can be spent,
# and a correct sync then waits out Dataverse's Retry-After (up to the window) before it finishes.
CLI_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class OptOutsSection:
    """The config's ``optouts:`` section; the default pushes donotbulkemail to blackListEmail."""

    mode: str = "dynamics_to_campaign"
    pairs: tuple[tuple[str, str], ...] = (("donotbulkemail", "blackListEmail"),)
    conflict_rule: str | None = None  # None: the product default (adobe)
    timestamps: str | None = None  # None: the product default (auto)

    def yaml(self) -> str:
        lines = ["optouts:", f"  mode: {self.mode}", "  pairs:"]
        lines += [f"    - {{dynamics: {d}, campaign: {c}}}" for d, c in self.pairs]
        if self.conflict_rule is not None:
            lines.append(f"  conflict_rule: {self.conflict_rule}")
        if self.timestamps is not None:
            lines.append(f"  timestamps: {self.timestamps}")
        return "\n".join(lines) + "\n"


DEFAULT_OPTOUTS = OptOutsSection()


def e2e_config_text(
    dynamics_url: str,
    ca_path: Path,
    campaign_url: str,
    state_path: Path,
    *,
    events: str = "",
    authority_url: str | None = None,
    optouts: OptOutsSection = DEFAULT_OPTOUTS,
) -> str:
    """The demo's two table mappings (the oracle spells the same rules out by hand), and an ``optouts:`` section.

    ``events`` is appended as is: an ``events:`` section (see ``events_section``), or nothing for the tables tests.
    ``authority_url`` sends token requests elsewhere than ``dynamics_url`` (a kill proxy in front of the Web API).
    """
    return f"""\
version: 1
dynamics:
  org_url: {dynamics_url}
  authority_host: {authority_url or dynamics_url}
  tenant_id: {DYNAMICS_TENANT}
  client_id: "{DYNAMICS_CLIENT_ID}"
  client_secret: {DYNAMICS_CLIENT_SECRET}
  ca_bundle: {ca_path}
  max_concurrency: 8
campaign:
  organization: acme
  base_url: {campaign_url}
  ims_url: {campaign_url}
  client_id: {CAMPAIGN_CLIENT_ID}
  client_secret: {CAMPAIGN_CLIENT_SECRET}
  ims_org_id: "0123456789ABCDEF01234567@AdobeOrg"
  max_concurrency: 8
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
      - {{lookup: new_contactid, mapping: contacts, campaign_link: profile, max_wait: 1h}}
{optouts.yaml()}state:
  url: sqlite:///{state_path}
{events}"""


# The journal registration the Campaign emulator serves by default (`crmbridge emulate campaign` options).
JOURNAL_PATH = "/events/organizations/23294/integrations/54108/f89067f2-0d50-4bb2-bf78-209d0eacb6eb"
IMS_ORG = "0123456789ABCDEF01234567@AdobeOrg"


def events_section(
    journal_base: str,
    *,
    types: str = "{send: true, open: true, click: true, bounce: hard}",
    page_limit: int = 25,
) -> str:
    """The email-events flow from the start of the journal, small pages (many batches), roll-ups and follow-up tasks.

    The default names (cmb_ tables and columns, subject template) are left implicit on purpose: the oracle
    (tests/e2e/events_oracle.py) spells them out, so a changed default shows as a failure.
    """
    return f"""\
events:
  source:
    journal:
      url: {journal_base}{JOURNAL_PATH}
      ims_org_id: "{IMS_ORG}"
      start: oldest
      page_limit: {page_limit}
  types: {types}
  rollups: {{enabled: true}}
  followup_tasks: {{on_click: true, on_hard_bounce: true}}
"""


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        """The ``sync --json`` document."""
        return dict(json.loads(self.stdout.strip().splitlines()[-1]))

    def tables(self) -> dict[str, dict[str, Any]]:
        return {row["mapping"]: row for row in self.report()["tables"]}


def cli_command(config: Path, *args: str, command: str = "sync") -> list[str]:
    return [sys.executable, "-m", "crmbridge", command, "-c", str(config), *args]


def state_url(config: Path) -> str:
    """The state store URL ``Emulators.write_config`` put into CONFIG."""
    return f"sqlite:///{(config.parent / 'state.db').resolve()}"


def cli_env() -> dict[str, str]:
    # The worktree's own sources, whatever the venv has installed; no proxy settings from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return env | {"PYTHONPATH": str(SRC), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def run_sync(
    config: Path, *args: str, timeout: float = CLI_TIMEOUT_S, check: bool = True, command_name: str = "sync"
) -> CliResult:
    """``python -m crmbridge sync -c CONFIG ARGS`` (or another command) as a subprocess; raises when it fails."""
    command = cli_command(config, *args, command=command_name)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=cli_env(), check=False)
    result = CliResult(command, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return result


class ForkedCli:
    """The real CLI, each run a process forked from ``tests/e2e/forkserver.py`` (crmbridge imported once).

    Same processes as ``python -m crmbridge`` (see forkserver.py) without paying the import for every run; for
    tests that run the CLI many times.
    """

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.server = ForkServer(cli_env())
        self.runs = 0

    def close(self) -> None:
        self.server.close()

    def run(self, *args: str, timeout: float = CLI_TIMEOUT_S, check: bool = True) -> CliResult:
        """``crmbridge ARGS``; raises with its output when it fails (unless ``check`` is False)."""
        self.runs += 1
        out, err = self.workdir / f"run-{self.runs}.out", self.workdir / f"run-{self.runs}.err"
        self.server.start(list(args), out, err=err)
        code = self.server.wait(timeout)
        result = CliResult(["crmbridge", *args], code, out.read_text(errors="replace"), err.read_text(errors="replace"))
        if check and code != 0:
            raise AssertionError(f"crmbridge {' '.join(args)} exited {code}\n{result.stdout}\n{result.stderr}")
        return result

    def sync(self, config: Path, *args: str, timeout: float = CLI_TIMEOUT_S) -> CliResult:
        """``crmbridge sync -c CONFIG --json ARGS``."""
        return self.run("sync", "-c", str(config), "--json", *args, timeout=timeout)


@dataclass
class Emulators:
    """The two running emulators, with plain operator and oracle clients."""

    dynamics: EmulatorProcess
    campaign: EmulatorProcess

    @classmethod
    def start(cls, workdir: Path) -> Emulators:
        dynamics = start_dynamics(workdir)
        try:
            campaign = start_campaign(workdir)
        except BaseException:
            dynamics.stop()
            raise
        return cls(dynamics, campaign)

    def stop(self) -> None:
        self.dynamics.stop()
        self.campaign.stop()

    def dynamics_operator(self) -> httpx.Client:
        import ssl

        assert self.dynamics.ca_path is not None
        verify = ssl.create_default_context(cafile=str(self.dynamics.ca_path))
        return httpx.Client(base_url=f"{self.dynamics.base_url}/_emulator", verify=verify, timeout=120.0)

    def campaign_operator(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.campaign.base_url}/_emulator", timeout=60.0, trust_env=False)

    def dataverse_reader(self) -> DataverseReader:
        assert self.dynamics.ca_path is not None
        return DataverseReader(
            self.dynamics.base_url, self.dynamics.ca_path, DYNAMICS_TENANT, DYNAMICS_CLIENT_ID, DYNAMICS_CLIENT_SECRET
        )

    def campaign_reader(self) -> CampaignReader:
        return CampaignReader(self.campaign.base_url, CAMPAIGN_CLIENT_ID, CAMPAIGN_CLIENT_SECRET)

    def write_config(
        self,
        directory: Path,
        *,
        campaign_url: str | None = None,
        dynamics_url: str | None = None,
        ca_path: Path | None = None,
        events: str = "",
        optouts: OptOutsSection = DEFAULT_OPTOUTS,
    ) -> Path:
        """A config with a fresh state file; ``campaign_url`` / ``dynamics_url`` (with the ``ca_path`` that trusts
        it) point API calls elsewhere (a kill proxy); tokens still come from the emulators themselves.
        ``events``: an ``events:`` section (``events_section``), none by default; ``optouts``: the ``optouts:``
        section."""
        directory.mkdir(parents=True, exist_ok=True)
        state = directory / "state.db"
        state.unlink(missing_ok=True)
        path = directory / "crmbridge.yaml"
        assert self.dynamics.ca_path is not None
        campaign = campaign_url or self.campaign.base_url
        text = e2e_config_text(
            dynamics_url or self.dynamics.base_url,
            ca_path or self.dynamics.ca_path,
            campaign,
            state.resolve(),
            events=events,
            optouts=optouts,
            authority_url=self.dynamics.base_url,
        )
        path.write_text(text)
        return path


@dataclass
class Org:
    """A clean pair of instances for one test: seeded Dynamics, empty Campaign, a fresh state file."""

    emulators: Emulators
    config: Path
    dataverse: DataverseReader
    campaign: CampaignReader

    def mutate(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.emulators.dynamics_operator() as operator:
            answer = operator.post("/mutate", json=body)
            answer.raise_for_status()
            return dict(answer.json())

    def update(self, table: str, ids: list[str], changes: dict[str, Any]) -> None:
        self.mutate({"table": table, "ids": ids, "changes": changes})

    def delete(self, table: str, ids: list[str]) -> None:
        self.mutate({"table": table, "ids": ids, "deletes": len(ids)})

    def advance_dynamics_clock(self, days: float) -> dict[str, Any]:
        with self.emulators.dynamics_operator() as operator:
            answer = operator.post("/clock", json={"advance_days": days})
            answer.raise_for_status()
            return dict(answer.json())

    def set_latency(self, *, dynamics_ms: float, campaign_ms: float) -> None:
        with self.emulators.dynamics_operator() as operator:
            operator.put("/faults", json={"latency_ms": dynamics_ms}).raise_for_status()
        with self.emulators.campaign_operator() as operator:
            operator.post("/config", json={"latencyMs": campaign_ms}).raise_for_status()

    def dynamics_faults(self, **settings: Any) -> None:
        with self.emulators.dynamics_operator() as operator:
            operator.put("/faults", json=settings).raise_for_status()

    def campaign_faults(self, **settings: Any) -> None:
        with self.emulators.campaign_operator() as operator:
            current = operator.get("/config").json()["faults"]
            operator.post("/config", json={"faults": current | settings}).raise_for_status()

    def campaign_optout(self, contact: str, flags: dict[str, bool], *, at: str | None = None) -> None:
        """A landing-page opt-out (or opt-in) on the profile whose externalId is CONTACT; ``at``: its moment."""
        body: dict[str, Any] = {"externalId": contact, "flags": flags} | ({"at": at} if at is not None else {})
        with self.emulators.campaign_operator() as operator:
            operator.post("/optouts", json=body).raise_for_status()

    def campaign_flag_timestamps(self, on: bool) -> None:
        """Per-flag …LastModified fields on profiles (a tenant with them) or not (a tenant without)."""
        with self.emulators.campaign_operator() as operator:
            operator.post("/config", json={"flagTimestamps": on}).raise_for_status()

    def advance_campaign_clock(self, seconds: float) -> None:
        with self.emulators.campaign_operator() as operator:
            operator.post("/clock", json={"advanceSeconds": seconds}).raise_for_status()

    def close(self) -> None:
        self.dataverse.close()
        self.campaign.close()


def clean_org(
    emulators: Emulators,
    directory: Path,
    *,
    contacts: int,
    vehicles_share: float,
    seed: int,
    optouts: OptOutsSection = DEFAULT_OPTOUTS,
) -> Org:
    """Reset both instances (faults and latency off), seed Dynamics, write a config with a fresh state file."""
    with emulators.dynamics_operator() as operator:
        operator.post("/reset").raise_for_status()
        operator.put("/faults", json={"latency_ms": 0, "drop_after_rate": 0, "seed": seed}).raise_for_status()
        if contacts:
            operator.post(
                "/seed", json={"contacts": contacts, "vehicles_share": vehicles_share, "seed": seed}
            ).raise_for_status()
    with emulators.campaign_operator() as operator:
        operator.post("/reset").raise_for_status()
        operator.post("/config", json={"faults": {"seed": seed}, "flagTimestamps": True}).raise_for_status()
    align_clocks(emulators)
    config = emulators.write_config(directory, optouts=optouts)
    return Org(emulators, config, emulators.dataverse_reader(), emulators.campaign_reader())


def align_clocks(emulators: Emulators) -> None:
    """Move the emulator clock that is behind forward to the other's time (both only move forward).

    Earlier tests move one clock or the other by days (expired delta tokens, opens that come days after a send), and
    ``/reset`` keeps the clocks. Real Dataverse and ACS clocks agree to well under a second, which the opt-out rule
    relies on when it compares a Campaign timestamp with a Dynamics one; a test must not run with days between them.
    """
    with emulators.dynamics_operator() as dynamics, emulators.campaign_operator() as campaign:
        dynamics_now = _instant(dynamics.get("/stats").json()["clock"])
        campaign_now = _instant(campaign.get("/clock").json()["now"])
        ahead = (campaign_now - dynamics_now).total_seconds()
        if ahead > 0.5:
            dynamics.post("/clock", json={"advance_seconds": ahead}).raise_for_status()
        elif ahead < -0.5:
            campaign.post("/clock", json={"advanceSeconds": -ahead}).raise_for_status()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
