"""Assembles the core of one emulated ACS instance: IMS and the REST API behind the fault middleware, operator
routes aside.

Plug-ins add API routes with ``extra_routes`` (faulted like the API, sharing the IMS tokens through
``ims.verify_bearer``) and operator routes with ``extra_operator_routes`` (under ``/_emulator/``); the complete
emulator, email events included, is ``crmbridge.emulators.campaign.emulator.create_campaign_emulator``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import Lifespan

from crmbridge.emulators.campaign.context import EmulatorContext
from crmbridge.emulators.campaign.gateway import RateLimiter
from crmbridge.emulators.campaign.ims import TokenStore, ims_routes
from crmbridge.emulators.campaign.keys import PKeyCodec
from crmbridge.emulators.campaign.operator import operator_routes
from crmbridge.emulators.campaign.privacy import PrivacyRequests
from crmbridge.emulators.campaign.routes import campaign_routes
from crmbridge.emulators.campaign.schema import load_schema
from crmbridge.emulators.campaign.seed import seed_profiles
from crmbridge.emulators.campaign.settings import CampaignEmulatorSettings
from crmbridge.emulators.campaign.storage import Storage
from crmbridge.emulators.faults import FaultInjector

__all__ = ["assemble_app", "build_context", "create_app"]


def build_context(settings: CampaignEmulatorSettings) -> EmulatorContext:
    schema = load_schema(settings.schema_path)
    pkeys = PKeyCodec(settings.pkey_salt)
    storage = Storage(settings.db_path, schema, pkeys)
    context = EmulatorContext(
        settings=settings,
        schema=schema,
        storage=storage,
        pkeys=pkeys,
        ims=TokenStore(settings.clients, settings.clock, settings.token_lifetime_s),
        limiter=RateLimiter(settings.rate_limit_per_s),
        privacy=PrivacyRequests(storage, pkeys, settings.clock, settings.privacy_step_s),
    )
    # Top up to the requested size, so restarting on the same --db file does not keep adding profiles.
    missing = settings.seed_profiles - storage.table_size(schema.resources["profile"])
    if missing > 0:
        seed_profiles(storage, missing, now=settings.clock.now(), seed=settings.seed)
    return context


def create_app(
    settings: CampaignEmulatorSettings,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    extra_operator_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ASGI app of one instance (without email events); ``app.state.campaign`` is its :class:`EmulatorContext`."""
    return assemble_app(build_context(settings), extra_routes=extra_routes, extra_operator_routes=extra_operator_routes)


def assemble_app(
    context: EmulatorContext,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    extra_operator_routes: Sequence[BaseRoute] = (),
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    """The app around an already built context; ``lifespan`` runs with the outer app (mounted apps' do not)."""
    api = Starlette(routes=[*ims_routes(), *extra_routes, *campaign_routes()])
    context.faults = FaultInjector(api, context.settings.faults, exempt_prefix="/_emulator")
    operator = Starlette(routes=[*operator_routes(), *extra_operator_routes])
    app = Starlette(routes=[Mount("/_emulator", app=operator), Mount("", app=context.faults)], lifespan=lifespan)
    for each in (app, api, operator):
        each.state.campaign = context
    return app
