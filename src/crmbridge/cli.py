"""The ``crmbridge`` command line. Thin: it parses arguments, then calls the engine, emulators or web layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crmbridge import __version__

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


# --- emulate ------------------------------------------------------------------------------------------------

emulate_app = typer.Typer(
    help="Run a local emulator of Dataverse or Adobe Campaign Standard (a sandbox to try mappings safely).",
    no_args_is_help=True,
)
app.add_typer(emulate_app, name="emulate")


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


def main() -> None:
    """Entry point of the ``crmbridge`` console script."""
    app()
