"""Operator routes of the Dataverse emulator, under ``/_emulator/`` only (never mixed into the data API).

``POST seed``, ``POST mutate``, ``POST reset``, ``GET stats``, ``POST clock``, ``PUT limits``, ``PUT faults``,
``PUT settings``. They need no token: the emulator is a local sandbox.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crmbridge.dynamics.odata import format_datetime
from crmbridge.emulators.dynamics.changes import purge_expired_tombstones
from crmbridge.emulators.dynamics.limits import LimitSettings
from crmbridge.emulators.dynamics.seed import mutate, seed
from crmbridge.emulators.faults import FaultConfig

if TYPE_CHECKING:
    from crmbridge.emulators.dynamics.app import DynamicsEmulator

__all__ = ["operator_routes"]


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _bad(error: Exception) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=400)


def operator_routes(emulator: DynamicsEmulator) -> list[Route]:
    org = emulator.org

    async def seed_route(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            started = time.perf_counter()
            report = seed(
                org,
                contacts=int(body.get("contacts", 1000)),
                accounts=body.get("accounts"),
                vehicles_share=float(body.get("vehicles_share", 0.3)),
                optout_share=float(body.get("optout_share", 0.15)),
                seed_value=int(body.get("seed", 0)),
            )
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        seconds = round(time.perf_counter() - started, 3)
        return JSONResponse({**asdict(report), "seconds": seconds})

    async def mutate_route(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            table = str(body.get("table", "contact"))
            if table not in org.storage.schema.tables:
                raise ValueError(f"unknown table {table!r}")
            result = mutate(
                org,
                table,
                updates=int(body.get("updates", 0)),
                deletes=int(body.get("deletes", 0)),
                ids=body.get("ids"),
                changes=body.get("changes"),
                seed_value=body.get("seed"),
            )
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        return JSONResponse(result)

    async def reset_route(request: Request) -> JSONResponse:
        org.storage.reset()
        return JSONResponse({"reset": True, "counts": org.storage.counts()})

    async def stats_route(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "counts": org.storage.counts(),
                "version": org.storage.version,
                "clock": format_datetime(org.clock.now()),
                "expire_change_tracking_in_days": org.expire_change_tracking_in_days,
                "limits": emulator.limits.stats(),
                "faults": {"config": emulator.faults.config.as_dict(), "injected": dict(emulator.faults.injected)},
            }
        )

    async def clock_route(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            seconds = float(body.get("advance_seconds", 0)) + 86400 * float(body.get("advance_days", 0))
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        now = org.clock.advance(seconds)
        purged = purge_expired_tombstones(org)
        return JSONResponse({"clock": format_datetime(now), "tombstones_purged": purged})

    async def limits_route(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            emulator.limits.settings = LimitSettings.from_mapping({**emulator.limits.settings.as_dict(), **body})
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        return JSONResponse(emulator.limits.settings.as_dict())

    async def faults_route(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            emulator.faults.configure(FaultConfig.from_mapping({**emulator.faults.config.as_dict(), **body}))
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        return JSONResponse(emulator.faults.config.as_dict())

    async def settings_route(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            if "expire_change_tracking_in_days" in body:
                days = int(body["expire_change_tracking_in_days"])
                if not 0 <= days <= 365:
                    raise ValueError("expire_change_tracking_in_days must be 0..365 (§4.5)")
                org.expire_change_tracking_in_days = days
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        return JSONResponse({"expire_change_tracking_in_days": org.expire_change_tracking_in_days})

    return [
        Route("/seed", seed_route, methods=["POST"]),
        Route("/mutate", mutate_route, methods=["POST"]),
        Route("/reset", reset_route, methods=["POST"]),
        Route("/stats", stats_route, methods=["GET"]),
        Route("/clock", clock_route, methods=["POST"]),
        Route("/limits", limits_route, methods=["PUT"]),
        Route("/faults", faults_route, methods=["PUT"]),
        Route("/settings", settings_route, methods=["PUT"]),
    ]
