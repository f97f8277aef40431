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


def main() -> None:
    """Entry point of the ``crmbridge`` console script."""
    app()
