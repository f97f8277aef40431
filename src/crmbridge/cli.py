"""The ``crmbridge`` command line. Thin: it parses arguments, then calls the engine, emulators or web layer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crmbridge import __version__
from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.exceptions import ConfigError
from crmbridge.state import StateStore
from crmbridge.state.report import info_tables

app = typer.Typer(
    name="crmbridge",
    help=(
        "Keep Microsoft Dynamics 365 (Dataverse) and Adobe Campaign Standard in sync: contacts and custom "
        "tables to Campaign, email events back to the Dynamics timeline, opt-outs both ways."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"crmbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version_callback, is_eager=True
    ),
) -> None:
    """Keep Dynamics 365 and Adobe Campaign Standard in sync."""


# --- config -------------------------------------------------------------------------------------------------

config_app = typer.Typer(help="Check and describe crmbridge.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("validate")
def config_validate(
    file: Annotated[Path, typer.Argument(help="The configuration file, e.g. crmbridge.yaml.", show_default=False)],
) -> None:
    """Check FILE without contacting any service.

    Prints "OK: ..." with a summary, or every problem as FILE:LINE: path: message.

    Exit code 0 when valid, 1 when the configuration has problems, 2 when the file cannot be read or is not YAML.

    ${ENV_VAR} references are resolved from the environment; secrets are never printed.
    """
    from crmbridge.config.report import validate_file

    report = validate_file(file)
    for line in report.lines:
        typer.echo(line, err=report.exit_code != 0)
    raise typer.Exit(report.exit_code)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of crmbridge.yaml (point your editor's YAML language server at it)."""
    import json

    from crmbridge.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2, ensure_ascii=False))


# --- state --------------------------------------------------------------------------------------------------

state_app = typer.Typer(help="Inspect the state store (checkpoints, links, dead letters, ...).", no_args_is_help=True)
app.add_typer(state_app, name="state")

DEFAULT_STATE_URL = "sqlite:///.crmbridge/state.db"


@state_app.command("info")
def state_info(
    state: str = typer.Option(
        DEFAULT_STATE_URL,
        "--state",
        metavar="URL",
        help="State store URL: sqlite:///path/state.db or postgresql://user@host/db.",
    ),
) -> None:
    """Show what the state store holds per flow: checkpoint age, links, deleted, parked children, open dead letters,
    conflicts, event ledger, unmatched events and the last run.

    Opening the store applies pending schema migrations; a missing SQLite file is reported, not created.
    """
    try:
        with StateStore.open(state, create=False) as store:
            info = store.info()
    except ConfigError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"state store {info.url} (schema revision {info.schema_revision})")
    tables = info_tables(info, datetime.now(UTC))
    if not tables:
        console.print("The store is empty: no flow has committed anything yet.")
    for table in tables:
        console.print(table)


# --- emulate ------------------------------------------------------------------------------------------------

emulate_app = typer.Typer(
    help="Run a local emulator of Dataverse or Adobe Campaign Standard (a sandbox to try mappings safely).",
    no_args_is_help=True,
)
app.add_typer(emulate_app, name="emulate")


_CAMPAIGN_DB_OPTION = typer.Option(
    Path("campaign-emulator.db"), "--db", help="SQLite file holding the instance's data."
)
_CAMPAIGN_CLIENTS_OPTION = typer.Option(
    [], "--clients", help="JSON file of IMS clients [{client_id, client_secret, scopes, tenants}]; repeatable."
)
_CAMPAIGN_ORG_OPTION = typer.Option(
    [], "--organization", help="Campaign tenant id(s) served (default: acme); repeatable."
)


@emulate_app.command("campaign")
def emulate_campaign(
    port: int = typer.Option(8081, "--port", help="TCP port to listen on."),
    db: Path = _CAMPAIGN_DB_OPTION,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (keep 127.0.0.1 unless you mean it)."),
    seed: int = typer.Option(
        0, "--seed", help="Make sure the instance holds at least this many profiles, generating realistic ones (Faker)."
    ),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Latency added to every API request, in ms."),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", help="Answer 429 (error_code 429050) above this many API requests per second."
    ),
    faults: str | None = typer.Option(
        None, "--faults", help="Fault injection as a JSON object or file (e.g. '{\"error_rate\": 0.05}')."
    ),
    big_table_threshold: int = typer.Option(
        100_000, "--big-table-threshold", help="Rows above which `next` needs _forcePagination=true."
    ),
    no_flag_timestamps: bool = typer.Option(
        False, "--no-flag-timestamps", help="Omit the per-flag …LastModified fields, like a tenant without them."
    ),
    pkey_salt: str | None = typer.Option(
        None, "--pkey-salt", help="Fixed PKey salt (default: random, so PKeys differ between instances)."
    ),
    clients: list[Path] = _CAMPAIGN_CLIENTS_OPTION,
    organization: list[str] = _CAMPAIGN_ORG_OPTION,
) -> None:
    """Run an Adobe Campaign Standard emulator (IMS, gateway, profileAndServices, custom resources, privacy)."""
    from crmbridge.emulators.campaign.serve import build_settings, serve

    settings = build_settings(
        db=db,
        seed_profiles=seed,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        faults=faults,
        big_table_threshold=big_table_threshold,
        flag_timestamps=not no_flag_timestamps,
        pkey_salt=pkey_salt,
        clients=clients,
        organizations=organization,
    )
    serve(settings, host=host, port=port, echo=console.print)


@emulate_app.command("dynamics")
def emulate_dynamics(
    port: int = typer.Option(8765, "--port", help="TCP port to listen on."),
    db: str = typer.Option(
        ".crmbridge/dynamics-emulator.db", "--db", help="SQLite file holding the org's rows (created if missing)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; keep 127.0.0.1 unless you mean it."),
    tls: bool = typer.Option(False, "--tls", help="Serve HTTPS with a certificate from a freshly generated local CA."),
    ca_out: str | None = typer.Option(
        None, "--ca-out", help="With --tls: where to write the CA certificate clients must trust (default: temp dir)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed this many realistic contacts (plus accounts, vehicles) if empty."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Latency added to every data API request."),
    limits: str = typer.Option(
        "",
        "--limits",
        help="Service protection limits, e.g. 'max_requests=600,window_s=30,max_concurrent=8,row_write_ms=10' "
        "(defaults: 6000 requests, 1,200,000 ms execution time, 52 concurrent per 300 s).",
    ),
    faults: str = typer.Option(
        "", "--faults", help="Fault injection, e.g. 'error_rate=0.01,throttle_rate=0.02,drop_after_rate=0.001,seed=7'."
    ),
    clients: str | None = typer.Option(
        None, "--clients", help='JSON file: [{"client_id","client_secret","tenant","application_user"}, ...].'
    ),
    client_id: str | None = typer.Option(None, "--client-id", help="Client id of the one application user."),
    client_secret: str | None = typer.Option(
        None, "--client-secret", envvar="CRMBRIDGE_EMULATOR_CLIENT_SECRET", help="Its client secret (or env var)."
    ),
    tenant: str = typer.Option("emulator-tenant", "--tenant", help="Tenant id in the token and authority URLs."),
    change_tracking_days: int = typer.Option(
        7, "--expire-change-tracking-days", help="ExpireChangeTrackingInDays: delta token retention (0-365)."
    ),
) -> None:
    """Run a local Dataverse Web API emulator (Dynamics 365 Sales org) with an Entra ID token endpoint."""
    from crmbridge.emulators.dynamics.runner import run_from_cli  # imported late: keeps `crmbridge --help` fast

    try:
        run_from_cli(
            port=port,
            host=host,
            tls=tls,
            ca_out=ca_out,
            db=db,
            seed=seed,
            latency_ms=latency_ms,
            limits=limits,
            faults=faults,
            clients=clients,
            client_id=client_id,
            client_secret=client_secret,
            tenant=tenant,
            change_tracking_days=change_tracking_days,
        )
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


# --- sync, run, demo ----------------------------------------------------------------------------------------

_CONFIG_OPTION = typer.Option(
    Path("crmbridge.yaml"), "--config", "-c", envvar="CRMBRIDGE_CONFIG", help="The configuration file."
)


def _load(path: Path) -> CrmbridgeConfig:
    try:
        return load_config(path)
    except ConfigError as error:
        err_console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None


@app.command("sync")
def sync(
    config_path: Path = _CONFIG_OPTION,
    mapping: str | None = typer.Option(None, "--mapping", "-m", help="Only this table mapping (default: every flow)."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Write nothing: print per mapping the creates, updates, deletes and skips a pass would make.",
    ),
    replay: bool = typer.Option(False, "--replay", help="Re-read the whole table and rewrite every row (resumable)."),
    json_output: bool = typer.Option(
        False, "--json", help="Print the counts of every flow as one JSON document on stdout (progress on stderr)."
    ),
) -> None:
    """One pass of every flow (tables, opt-outs, email events), or of one table mapping; then exit."""
    from crmbridge.engine.commands import run_sync  # imported late: keeps `crmbridge --help` fast

    code = run_sync(
        _load(config_path), console, mapping=mapping, dry_run=dry_run, replay=replay, json_output=json_output
    )
    raise typer.Exit(code)


@app.command("run")
def run(config_path: Path = _CONFIG_OPTION) -> None:
    """The long-running service: every flow on its interval until SIGTERM or Ctrl-C (finishes the batch in hand)."""
    from crmbridge.engine.commands import run_service

    raise typer.Exit(run_service(_load(config_path), console))


_DEMO_WORKDIR_OPTION = typer.Option(Path(".crmbridge/demo"), "--workdir", help="Where the demo keeps its files.")


@app.command("demo")
def demo(
    size: int = typer.Option(2000, "--size", min=10, help="Contacts seeded in Dynamics (vehicles follow)."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave the emulators up after the summary."),
    latency_ms: float = typer.Option(
        0.0, "--latency-ms", help="Latency the emulators add to every request (real services: 10s-100s of ms)."
    ),
    workdir: Path = _DEMO_WORKDIR_OPTION,
) -> None:
    """Both emulators, seeded data, a full sync with progress bars, live changes, incremental passes, a summary."""
    from crmbridge.demo import DemoOptions, run_demo

    options = DemoOptions(size=size, workdir=workdir, keep_running=keep_running, latency_ms=latency_ms)
    raise typer.Exit(run_demo(options, console))


def main() -> None:
    """Entry point of the ``crmbridge`` console script."""
    app()
