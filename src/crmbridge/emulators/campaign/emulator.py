"""The complete emulated ACS instance: the core app plus email events (simulated deliveries, the I/O Events
journal, export files over SFTP), sharing one clock, one IMS and one profile store.

The app's lifespan publishes events as the clock passes them (``EventsHub.pump``) and serves the export folder
over SFTP when one is configured; in-process tests that skip the lifespan publish with
``POST /_emulator/journal/release`` (every journal read publishes what is due, too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crmbridge.emulators.campaign.app import assemble_app, build_context
from crmbridge.emulators.campaign.events import (
    EventsHub,
    ExportSettings,
    ExportSftpServer,
    JournalFaults,
    JournalRegistration,
    SftpAccount,
    journal_routes,
)
from crmbridge.emulators.campaign.events import operator_routes as events_operator_routes
from crmbridge.emulators.campaign.ims import verify_bearer
from crmbridge.emulators.campaign.settings import CampaignEmulatorSettings
from crmbridge.emulators.campaign.targets import storage_target_resolver

__all__ = [
    "ExportServer",
    "create_campaign_emulator",
    "events_db_path",
    "journal_faults",
    "journal_registration",
]

Announce = Callable[[str], None]


@dataclass(slots=True)
class ExportServer:
    """The export folder's SFTP server and whether the lifespan has started it (in-process tests do not)."""

    sftp: ExportSftpServer
    listening: bool = False

    @property
    def url(self) -> str:
        return f"sftp://{self.sftp.account.username}@{self.sftp.host}:{self.sftp.port}/"


def events_db_path(settings: CampaignEmulatorSettings) -> str:
    """The events database: the configured one, else a sibling of the core database (``acs.db`` ->
    ``acs.events.db``), so a restart on the same ``--db`` keeps journal positions; in memory with the core."""
    if settings.events.db_path is not None:
        return settings.events.db_path
    if settings.db_path == ":memory:":
        return ":memory:"
    core = Path(settings.db_path)
    return str(core.with_name(f"{core.stem}.events{core.suffix or '.db'}"))


def journal_registration(settings: CampaignEmulatorSettings) -> JournalRegistration:
    """The registration the journal serves; its reader defaults to the first IMS client and that client's org."""
    events = settings.events
    first_client = settings.clients[0] if settings.clients else None
    client_id = events.client_id or (first_client.client_id if first_client else "")
    reader = next((client for client in settings.clients if client.client_id == client_id), first_client)
    if not client_id:
        raise ValueError("the events journal needs a client id: configure an IMS client or events.client_id")
    return JournalRegistration(
        consumer_org_id=events.consumer_org_id,
        credential_id=events.credential_id,
        registration_id=events.registration_id,
        client_id=client_id,
        ims_org_id=events.ims_org_id or (reader.ims_org if reader else ""),
    )


def journal_faults(settings: CampaignEmulatorSettings) -> JournalFaults:
    events = settings.events
    return JournalFaults(
        duplicate_rate=events.duplicate_rate,
        reorder_rate=events.reorder_rate,
        delay_rate=events.delay_rate,
        seed=events.fault_seed,
    )


def create_campaign_emulator(settings: CampaignEmulatorSettings, *, announce: Announce | None = None) -> Starlette:
    """The ASGI app of one complete instance. ``app.state.campaign`` is the core context, ``app.state.events`` the
    :class:`EventsHub` and ``app.state.exports`` the export folder's :class:`ExportServer` (None without one);
    ``announce`` receives the SFTP address once the server listens."""
    context = build_context(settings)
    events = settings.events
    hub = EventsHub(
        events_db_path(settings),
        clock=settings.clock.now,
        exports=ExportSettings(folder=events.exports_folder, interval_s=events.export_interval_s),
        faults=journal_faults(settings),
    )
    registration = journal_registration(settings)
    exports = None
    if events.exports_folder is not None:
        account = SftpAccount(events.sftp_user, password=events.sftp_password)
        exports = ExportServer(
            ExportSftpServer(events.exports_folder, account, host=events.sftp_host, port=events.sftp_port)
        )
    app = assemble_app(
        context,
        extra_routes=journal_routes(verify_bearer, hub, registration, retry_after_s=events.retry_after_s),
        extra_operator_routes=[
            *events_operator_routes(hub, storage_target_resolver(context.storage), prefix=""),
            *_endpoint_routes(settings, registration, exports),
        ],
        lifespan=_lifespan(hub, exports, events.pump_interval_s, announce or (lambda line: None)),
    )
    app.state.events = hub
    app.state.exports = exports
    return app


def _lifespan(
    hub: EventsHub, exports: ExportServer | None, pump_interval_s: float, announce: Announce
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as background:
            background.start_soon(hub.pump, pump_interval_s)
            try:
                if exports is not None:
                    await exports.sftp.start()
                    exports.listening = True
                    announce(f"SFTP exports: {exports.url} (folder {exports.sftp.folder})")
                    announce(f"SFTP host key: {exports.sftp.host_public_key}")
                yield
            finally:
                if exports is not None:
                    exports.listening = False
                    await exports.sftp.close()
                background.cancel_scope.cancel()

    return lifespan


def _endpoint_routes(
    settings: CampaignEmulatorSettings, registration: JournalRegistration, exports: ExportServer | None
) -> list[BaseRoute]:
    async def endpoints(request: Request) -> Response:
        """What a client puts in its configuration, as seen from the caller's side of the socket."""
        base = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse(
            {
                "api": f"{base}/{settings.organizations[0]}/campaign",
                "ims": f"{base}/ims/token/v3",
                "journal": f"{base}{registration.path}",
                "journalHeaders": {"x-api-key": registration.client_id, "x-ims-org-id": registration.ims_org_id},
                "sftp": None
                if exports is None or not exports.listening
                else {
                    "url": exports.url,
                    "host": exports.sftp.host,
                    "port": exports.sftp.port,
                    "username": exports.sftp.account.username,
                    "folder": str(exports.sftp.folder),
                    "hostKey": exports.sftp.host_public_key,
                },
            }
        )

    return [Route("/endpoints", endpoints, methods=["GET"])]
