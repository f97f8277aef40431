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


def main() -> None:
    """Entry point of the ``crmbridge`` console script."""
    app()
