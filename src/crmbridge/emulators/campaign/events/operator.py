"""Operator routes under ``/_emulator/``: simulate deliveries, inspect and fault the journal, configure exports.

These are the emulator's own controls, not an Adobe API; their JSON shapes are ours (see docs/emulator-campaign.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crmbridge.emulators.campaign.events.exports import ExportSettings
from crmbridge.emulators.campaign.events.hub import EventsHub, JournalFaults
from crmbridge.emulators.campaign.events.journal_query import QueryError, parse_duration
from crmbridge.emulators.campaign.events.simulation import DEFAULT_LINKS, DeliverySpec, Rates, TrackedLink
from crmbridge.emulators.campaign.targets import TargetResolver, TargetSpec

__all__ = ["TargetResolver", "delivery_spec_from_json", "operator_routes", "target_spec_from_json"]


class _BadRequest(ValueError):
    pass


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _BadRequest(f"{name} must be a non-empty string")
    return value


def _object(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = body.get(name, {})
    if not isinstance(value, Mapping):
        raise _BadRequest(f"{name} must be an object")
    return value


def _whole_number(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _BadRequest(f"{name} must be a non-negative integer")
    return value


def target_spec_from_json(body: Mapping[str, Any]) -> TargetSpec:
    target = _object(body, "target")
    count, pkeys = target.get("count"), target.get("pkeys")
    if (count is None) == (pkeys is None):
        raise _BadRequest('target needs exactly one of "count" (a number of profiles) or "pkeys" (a list)')
    if count is not None:
        # which profiles a count picks: target.seed, else the delivery's seed
        seed = _whole_number(target.get("seed", body.get("seed", 0)), "target.seed")
        return TargetSpec(count=_whole_number(count, "target.count"), seed=seed)
    if not isinstance(pkeys, list) or not all(isinstance(key, str) for key in pkeys):
        raise _BadRequest("target.pkeys must be a list of PKey strings")
    return TargetSpec(pkeys=tuple(pkeys))


def delivery_spec_from_json(body: Mapping[str, Any], now: datetime) -> DeliverySpec:
    campaign, delivery = _object(body, "campaign"), _object(body, "delivery")
    start = body.get("start")
    try:
        start_at = datetime.fromisoformat(start) if isinstance(start, str) else now
        links = tuple(TrackedLink(_text(link, "label"), _text(link, "url")) for link in body.get("links", ()))
        return DeliverySpec(
            campaign_id=_text(campaign, "id"),
            campaign_label=str(campaign.get("label", campaign.get("id"))),
            delivery_id=_text(delivery, "id"),
            delivery_label=str(delivery.get("label", delivery.get("id"))),
            start=start_at,
            seed=int(body.get("seed", 0)),
            rates=Rates(**_object(body, "rates")),
            links=links or DEFAULT_LINKS,
        )
    except (TypeError, ValueError) as error:
        raise _BadRequest(str(error)) from error


def operator_routes(hub: EventsHub, resolve_targets: TargetResolver, *, prefix: str = "/_emulator") -> list[BaseRoute]:
    """The operator routes; pass ``prefix=""`` when mounting them inside an app already at ``/_emulator``."""

    async def post_delivery(request: Request) -> Response:
        body = await _json_body(request)
        spec = delivery_spec_from_json(body, hub.clock())
        try:
            targets = resolve_targets(target_spec_from_json(body))
        except LookupError as error:
            raise _BadRequest(f"unknown target profiles: {error}") from error
        return JSONResponse(hub.simulate_delivery(spec, targets).as_json(), status_code=201)

    async def list_deliveries(request: Request) -> Response:
        return JSONResponse({"deliveries": hub.deliveries()})

    async def journal_stats(request: Request) -> Response:
        hub.release_due()
        return JSONResponse(hub.stats())

    async def set_faults(request: Request) -> Response:
        hub.configure_faults(JournalFaults.from_mapping(await _json_body(request)))
        return JSONResponse(hub.faults.as_dict())

    async def release(request: Request) -> Response:
        return JSONResponse({"released": hub.release_due()})

    async def expire(request: Request) -> Response:
        body = await _json_body(request)
        if "publishedBefore" in body:
            cutoff: datetime | None = datetime.fromisoformat(_text(body, "publishedBefore"))
        elif "olderThan" in body:
            cutoff = hub.clock() + parse_duration(_text(body, "olderThan"))
        else:
            cutoff = None
        return JSONResponse({"expired": hub.expire_journal(cutoff)})

    async def purge(request: Request) -> Response:
        return JSONResponse({"expired": hub.expire_journal(None)})

    async def export_settings(request: Request) -> Response:
        if request.method == "PUT":
            hub.configure_exports(ExportSettings.from_mapping(await _json_body(request), hub.exporter.settings))
        settings = hub.exporter.settings.as_dict()
        return JSONResponse({**settings, "partialUploads": [str(p) for p in hub.exporter.partial_uploads]})

    async def run_export(request: Request) -> Response:
        hub.release_due(run_due_export=False)  # this run is the one that exports what was just released
        return JSONResponse({"written": [str(path) for path in hub.run_export()]})

    async def complete_exports(request: Request) -> Response:
        return JSONResponse({"completed": [str(path) for path in hub.complete_partial_exports()]})

    handlers = [
        ("/deliveries", post_delivery, ["POST"]),
        ("/deliveries", list_deliveries, ["GET"]),
        ("/journal", journal_stats, ["GET"]),
        ("/journal", purge, ["DELETE"]),
        ("/journal/faults", set_faults, ["PUT"]),
        ("/journal/release", release, ["POST"]),
        ("/journal/expire", expire, ["POST"]),
        ("/exports", export_settings, ["GET", "PUT"]),
        ("/exports/run", run_export, ["POST"]),
        ("/exports/complete", complete_exports, ["POST"]),
    ]
    return [
        Route(prefix + path, _refusing_bad_requests(handler), methods=methods) for path, handler, methods in handlers
    ]


Handler = Callable[[Request], Awaitable[Response]]


def _refusing_bad_requests(handler: Handler) -> Handler:
    """Turns validation errors of operator input into 400 responses that say what to fix."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except (QueryError, ValueError, TypeError) as error:  # _BadRequest is a ValueError
            return JSONResponse({"error": str(error)}, status_code=400)

    return guarded


async def _json_body(request: Request) -> Mapping[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = await request.json()
    except ValueError as error:
        raise _BadRequest(f"the body is not JSON: {error}") from error
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body
