"""The ``crmbridge`` command line. Thin: it parses arguments, then calls the engine, emulators or web layer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


@state_app.command("purge")
def state_purge(
    older_than: int = typer.Option(
        30,
        "--older-than",
        min=1,
        metavar="DAYS",
        help="Forget what was last seen more than DAYS days ago (match state.dead_letter_retention_days).",
    ),
    state: str = typer.Option(
        DEFAULT_STATE_URL,
        "--state",
        metavar="URL",
        help="State store URL: sqlite:///path/state.db or postgresql://user@host/db.",
    ),
) -> None:
    """Forget personal data (names, email addresses) older than DAYS: dropped and resolved dead letters are
    deleted, open ones keep their key and error but lose their payload (a retry re-reads the source row anyway),
    and unmatched email events are deleted.

    Nothing else is touched: checkpoints, links, the event ledger and the opt-out log hold ids and flags, not names
    or email addresses. `crmbridge run` applies the configured retention every hour; run this where no service
    runs (cron, a systemd timer), or for a one-off purge.
    """
    cutoff = datetime.now(UTC) - timedelta(days=older_than)
    try:
        with StateStore.open(state, create=False) as store:
            result = store.purge_personal_data(cutoff)
    except ConfigError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(
        f"purged what was last seen before {cutoff:%Y-%m-%d %H:%M} UTC: "
        f"{result.dead_letters_deleted} dropped or resolved dead letters deleted, "
        f"{result.dead_letter_payloads_cleared} dead-letter payloads cleared, "
        f"{result.unmatched_deleted} unmatched events deleted"
    )


# --- opt-outs ----------------------------------------------------------------------------------------------

optouts_app = typer.Typer(help="The opt-out audit log and conflicts.", no_args_is_help=True)
app.add_typer(optouts_app, name="optouts")


@optouts_app.command("history")
def optouts_history(
    contact: str = typer.Argument(..., help="The contact id (Dynamics contactid = Campaign externalId)."),
    state: str = typer.Option(
        DEFAULT_STATE_URL,
        "--state",
        metavar="URL",
        help="State store URL: sqlite:///path/state.db or postgresql://user@host/db.",
    ),
) -> None:
    """Every opt-out change crmbridge made for one contact (when, which side, old and new value, why, under which
    rule), then the conflicts it resolved for that contact. Exit code 1 when it has none.
    """
    from crmbridge.state.report import optout_history_tables

    try:
        with StateStore.open(state, create=False) as store:
            writes, conflicts = store.optout_history(contact)
    except ConfigError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    if not writes and not conflicts:
        console.print(f"crmbridge made no opt-out change and saw no conflict for contact {contact}.")
        raise typer.Exit(1)
    for table in optout_history_tables(contact, writes, conflicts):
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


_CAMPAIGN_EXPORTS_OPTION = typer.Option(
    None,
    "--exports",
    metavar="DIR",
    help="Write ACS-workflow-style export files (delivery and tracking logs) to DIR and serve DIR over SFTP.",
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
    journal_consumer_org: str = typer.Option(
        "23294", "--journal-consumer-org", help="Consumer org id in the events journal URL."
    ),
    journal_credential: str = typer.Option(
        "54108", "--journal-credential-id", help="Credential (integration) id in the events journal URL."
    ),
    journal_registration: str = typer.Option(
        "f89067f2-0d50-4bb2-bf78-209d0eacb6eb", "--journal-registration-id", help="Registration id in the journal URL."
    ),
    journal_client: str | None = typer.Option(
        None, "--journal-client-id", help="API key allowed to read the journal (default: the first IMS client)."
    ),
    journal_ims_org: str | None = typer.Option(
        None, "--journal-ims-org", help="x-ims-org-id the journal expects (default: that client's IMS org)."
    ),
    journal_duplicates: float = typer.Option(
        0.0, "--journal-duplicates", min=0.0, max=1.0, metavar="RATE", help="Share of events published twice."
    ),
    journal_reorder: float = typer.Option(
        0.0,
        "--journal-reorder",
        min=0.0,
        max=1.0,
        metavar="RATE",
        help="Share of events swapped with a later one published in the same round.",
    ),
    journal_delay: float = typer.Option(
        0.0,
        "--journal-delay",
        min=0.0,
        max=1.0,
        metavar="RATE",
        help="Share of events held back to the next publication round, after newer ones (reorders across rounds).",
    ),
    journal_pump_interval: float = typer.Option(
        1.0, "--journal-pump-interval", min=0.01, help="Seconds between publications of the events the clock passed."
    ),
    exports: Path | None = _CAMPAIGN_EXPORTS_OPTION,
    export_interval: float = typer.Option(
        600.0, "--export-interval", min=0.0, help="Emulator seconds between export runs (ACS: at most every 600)."
    ),
    sftp_port: int = typer.Option(0, "--sftp-port", help="SFTP port of the export folder (0: a free port, printed)."),
    sftp_user: str = typer.Option("acs-export", "--sftp-user", help="SFTP user name of the export folder."),
    sftp_password: str = typer.Option("emulator-secret", "--sftp-password", help="SFTP password of that user."),
    client_secret: str | None = typer.Option(
        None,
        "--client-secret",
        envvar="CRMBRIDGE_EMULATOR_CAMPAIGN_SECRET",
        help="Secret of the built-in IMS client crmbridge-emulator (or env var; default: emulator-secret).",
    ),
) -> None:
    """Run an Adobe Campaign Standard emulator: IMS, gateway, profileAndServices, custom resources, privacy, and
    email events (simulated deliveries, the Adobe I/O Events journal, export files over SFTP).

    Prints the API, IMS and journal URLs, and the SFTP address with --exports.
    """
    from crmbridge.emulators.campaign.serve import build_settings, serve
    from crmbridge.emulators.campaign.settings import EventsSettings

    events = EventsSettings(
        consumer_org_id=journal_consumer_org,
        credential_id=journal_credential,
        registration_id=journal_registration,
        client_id=journal_client,
        ims_org_id=journal_ims_org,
        duplicate_rate=journal_duplicates,
        reorder_rate=journal_reorder,
        delay_rate=journal_delay,
        pump_interval_s=journal_pump_interval,
        exports_folder=exports,
        export_interval_s=export_interval,
        sftp_host=host,
        sftp_port=sftp_port,
        sftp_user=sftp_user,
        sftp_password=sftp_password,
    )
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
        events=events,
        default_client_secret=client_secret,
    )
    serve(settings, host=host, port=port, echo=typer.echo)  # plain lines: rich would fold the long journal URL


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
        help="Write nothing: print per mapping the creates, updates, deletes and skips a pass would make, and the "
        "Dataverse requests and ACS engine calls it would spend.",
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
    """The long-running service: every flow on its interval until SIGTERM or Ctrl-C (ends the batch in hand).

    The configuration file is watched (SIGHUP checks it at once): a changed mapping is applied without stopping the
    other flows; an invalid file is logged and ignored.
    """
    from crmbridge.service import run_service

    raise typer.Exit(run_service(_load(config_path), console, config_path))


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


# --- operations: check, provision, status, dlq, replay, reconcile -------------------------------------------


@app.command("check")
def check(config_path: Path = _CONFIG_OPTION) -> None:
    """Check the configuration against both live services before the first sync.

    Dataverse: every mapped table exists and has change tracking on (contact too, for opt-outs), every mapped,
    filtered and lookup column exists, and its type fits the Campaign field it feeds; the activity tables and
    roll-up columns of the events flow exist. Campaign: every resource, field, key field, link and key filter
    (byExternalId, by<Key>) exists; and whether the tenant sends per-flag ...LastModified opt-out timestamps
    (the report says which timestamp the opt-out flow will use).

    Prints one line per finding with its fix. Exit code 1 when there is an error, 0 otherwise (warnings allowed).
    """
    from crmbridge.engine.ops_commands import run_check

    raise typer.Exit(run_check(_load(config_path), console))


@app.command("provision")
def provision(
    config_path: Path = _CONFIG_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be created; change nothing."),
) -> None:
    """Create the Dataverse tables and columns the email-events flow writes, where they are missing.

    One custom activity table per enabled event type (events.activity_tables), with the columns of
    events.columns and the event-key column as alternate key; with events.rollups.enabled, the roll-up columns
    on contact. Safe to run again: it creates only what is missing and prints what it created. Needs a
    Dataverse user allowed to customize the system (System Customizer or System Administrator).
    """
    from crmbridge.engine.ops_commands import run_provision

    raise typer.Exit(run_provision(_load(config_path), console, dry_run=dry_run))


@app.command("status")
def status(config_path: Path = _CONFIG_OPTION) -> None:
    """At a glance, from the state store: per flow its checkpoint age, last run (status, counts, error),
    open dead letters, opt-out conflicts and parked children. Contacts no service.
    """
    from crmbridge.engine.ops_commands import run_status

    raise typer.Exit(run_status(_load(config_path), console))


dlq_app = typer.Typer(
    help="Dead letters: records a target refused. List them, inspect one, retry (re-reads the source) or drop.",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")
_LETTER_IDS = typer.Argument(help="Dead-letter ids, as `crmbridge dlq list` shows them.", show_default=False)


@dlq_app.command("list")
def dlq_list(
    config_path: Path = _CONFIG_OPTION,
    status: str = typer.Option(
        "open", "--status", help="open, retrying, dropped, resolved, or all.", show_default=True
    ),
    mapping: str | None = typer.Option(None, "--mapping", "-m", help="Only this mapping (or events/optouts scope)."),
) -> None:
    """List dead letters with their error and reason, oldest first."""
    from crmbridge.engine.ops_commands import run_dlq_list

    if status not in ("open", "retrying", "dropped", "resolved", "all"):
        err_console.print("--status: use open, retrying, dropped, resolved or all")
        raise typer.Exit(2)
    raise typer.Exit(run_dlq_list(_load(config_path), console, status=status, mapping=mapping))


@dlq_app.command("show")
def dlq_show(
    letter_id: int = typer.Argument(help="The dead letter's id.", show_default=False),
    config_path: Path = _CONFIG_OPTION,
) -> None:
    """Show one dead letter: the error, the reason the target gave, attempts, and the payload it failed with."""
    from crmbridge.engine.ops_commands import run_dlq_show

    raise typer.Exit(run_dlq_show(_load(config_path), console, letter_id))


@dlq_app.command("retry")
def dlq_retry(letter_ids: list[int] = _LETTER_IDS, config_path: Path = _CONFIG_OPTION) -> None:
    """Retry dead letters. A table row is re-read from Dynamics as it is now and written through the mapping (never
    the stale payload); an email event, which never changes, is written again under its own activity id. A letter
    is resolved when the write succeeds; it stays open, with its attempts counted, when the target refuses it again
    (exit code 1).
    """
    from crmbridge.engine.ops_commands import run_dlq_retry

    raise typer.Exit(run_dlq_retry(_load(config_path), console, letter_ids))


@dlq_app.command("drop")
def dlq_drop(letter_ids: list[int] = _LETTER_IDS, config_path: Path = _CONFIG_OPTION) -> None:
    """Mark dead letters dropped: kept for the record, never retried."""
    from crmbridge.engine.ops_commands import run_dlq_drop

    raise typer.Exit(run_dlq_drop(_load(config_path), console, letter_ids))


@app.command("replay")
def replay(
    mapping: str = typer.Argument(help="The table mapping to replay (its `name:`).", show_default=False),
    config_path: Path = _CONFIG_OPTION,
) -> None:
    """Re-read the whole Dynamics table of one mapping and rewrite every row in Campaign, including fields with
    apply_updates: false. Other mappings are untouched. Resumable: run it again after an interruption and it
    continues from the last committed page.
    """
    from crmbridge.engine.ops_commands import run_replay

    raise typer.Exit(run_replay(_load(config_path), console, mapping))


@app.command("reconcile")
def reconcile(
    mapping: str = typer.Argument(help="The table mapping to compare (its `name:`).", show_default=False),
    config_path: Path = _CONFIG_OPTION,
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Write only what differs: create missing rows, update different ones, delete extra "
        "rows that crmbridge created.",
    ),
) -> None:
    """Compare both sides of one mapping completely: every Dynamics row through the mapping against every Campaign
    row, matched by business key. Reports rows missing in Campaign, extra rows (keys Dynamics does not imply) and
    different rows with their field diffs (Campaign value → what Dynamics implies).

    Exit code 0 when both sides agree (or --repair fixed everything), 1 otherwise. Rows Campaign made itself
    (no key) are ignored; an extra row crmbridge did not create is reported but never deleted.
    """
    from crmbridge.engine.ops_commands import run_reconcile

    raise typer.Exit(run_reconcile(_load(config_path), console, mapping, repair=repair))


def main() -> None:
    """Entry point of the ``crmbridge`` console script."""
    app()
