"""Operator-only endpoints under ``/_emulator/`` (never part of the ACS API): seed, reset, stats, landing-page
opt-outs, the clock, and run-time limits and faults."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crmbridge.emulators.campaign.context import EmulatorContext
from crmbridge.emulators.campaign.resources import finish_write
from crmbridge.emulators.campaign.schema import FLAG_TIMESTAMP_FIELDS
from crmbridge.emulators.campaign.seed import DEFAULT_LOCALES, seed_profiles
from crmbridge.emulators.campaign.settings import format_datetime
from crmbridge.emulators.faults import FaultConfig

__all__ = ["operator_routes"]

_FLAGS = (*FLAG_TIMESTAMP_FIELDS, "blackListPushnotification")


def _context(request: Request) -> EmulatorContext:
    context: EmulatorContext = request.app.state.campaign
    return context


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _seed(request: Request) -> Response:
    ctx = _context(request)
    body = await _body(request)
    count = int(body.get("profiles", 100))
    locales = tuple(body.get("locales", DEFAULT_LOCALES))
    total = seed_profiles(
        ctx.storage,
        count,
        now=ctx.now(),
        seed=int(body.get("seed", ctx.settings.seed)),
        locales=locales,
        external_id_share=float(body.get("externalIdShare", 0.7)),
    )
    return JSONResponse({"seeded": count, "profiles": total})


async def _reset(request: Request) -> Response:
    ctx = _context(request)
    ctx.storage.reset()
    ctx.privacy.reset()
    return JSONResponse({"reset": True})


async def _stats(request: Request) -> Response:
    ctx = _context(request)
    return JSONResponse(
        {
            "rows": ctx.storage.stats(),
            "now": format_datetime(ctx.now()),
            "rateLimited": ctx.limiter.rejected,
            "faultsInjected": dict(ctx.faults.injected) if ctx.faults else {},
        }
    )


def _matching_profiles(ctx: EmulatorContext, body: dict[str, Any]) -> list[int]:
    if "pkey" in body:
        row_id = ctx.pkeys.decode("profile", str(body["pkey"]))
        return [row_id] if row_id is not None and ctx.storage.db.execute(
            "SELECT 1 FROM r_profile WHERE id = ?", (row_id,)
        ).fetchone() else []  # fmt: skip
    for key in ("externalId", "email"):
        if key in body:
            rows = ctx.storage.db.execute(f'SELECT id FROM r_profile WHERE "{key}" = ?', (str(body[key]),))
            return [int(r[0]) for r in rows]
    raise ValueError("give one of pkey, externalId or email")


def _moment(body: dict[str, Any], ctx: EmulatorContext) -> datetime:
    """``at`` (ISO 8601): when the landing page was submitted, for tests that need two services' times equal."""
    at = body.get("at")
    if at is None:
        return ctx.now()
    moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _optouts(request: Request) -> Response:
    """What a Campaign denylist landing page does: set flags on the profile, stamping lastModified (§5, S3)."""
    ctx = _context(request)
    body = await _body(request)
    flags = body.get("flags", {})
    if (
        not isinstance(flags, dict)
        or not flags
        or any(k not in _FLAGS or not isinstance(v, bool) for k, v in flags.items())
    ):
        return _bad(f"flags must map some of {', '.join(_FLAGS)} to true/false")
    try:
        ids = _matching_profiles(ctx, body)
        moment = _moment(body, ctx)
    except ValueError as exc:
        return _bad(str(exc))
    spec = ctx.schema.resources["profile"]
    updated = []
    for row_id in ids:
        existing = ctx.storage.get(spec, row_id, include_hidden=True)
        if existing is None:
            continue
        values = finish_write(spec, {k: int(v) for k, v in flags.items()}, existing, moment)
        ctx.storage.update(spec, row_id, values)
        updated.append(ctx.pkeys.encode("profile", row_id))
    return JSONResponse({"updated": updated}, status_code=200 if updated else 404)


async def _clock(request: Request) -> Response:
    ctx = _context(request)
    if request.method == "POST":
        body = await _body(request)
        ctx.settings.clock.advance(float(body.get("advanceSeconds", 0)))
        ctx.privacy.settle()
    return JSONResponse({"now": format_datetime(ctx.now())})


async def _config(request: Request) -> Response:
    ctx = _context(request)
    settings = ctx.settings
    if request.method == "POST":
        body = await _body(request)
        if "rateLimitPerS" in body:
            settings.rate_limit_per_s = None if body["rateLimitPerS"] is None else float(body["rateLimitPerS"])
            ctx.limiter.rate = settings.rate_limit_per_s
        if "bigTableThreshold" in body:
            settings.big_table_threshold = int(body["bigTableThreshold"])
        if "flagTimestamps" in body:
            settings.flag_timestamps = bool(body["flagTimestamps"])
        if "emailFilterCaseSensitive" in body:
            settings.email_filter_case_sensitive = bool(body["emailFilterCaseSensitive"])
        if ("faults" in body or "latencyMs" in body) and ctx.faults is not None:
            try:
                faults = dict(body["faults"]) if "faults" in body else settings.faults.as_dict()
                if "latencyMs" in body:
                    faults["latency_ms"] = float(body["latencyMs"])
                settings.faults = FaultConfig.from_mapping(faults)
            except (TypeError, ValueError) as exc:
                return _bad(str(exc))
            ctx.faults.configure(settings.faults)
    return JSONResponse(
        {
            "rateLimitPerS": settings.rate_limit_per_s,
            "bigTableThreshold": settings.big_table_threshold,
            "flagTimestamps": settings.flag_timestamps,
            "emailFilterCaseSensitive": settings.email_filter_case_sensitive,
            "faults": settings.faults.as_dict(),
        }
    )


def operator_routes() -> list[BaseRoute]:
    return [
        Route("/seed", _seed, methods=["POST"]),
        Route("/reset", _reset, methods=["POST"]),
        Route("/stats", _stats, methods=["GET"]),
        Route("/optouts", _optouts, methods=["POST"]),
        Route("/clock", _clock, methods=["GET", "POST"]),
        Route("/config", _config, methods=["GET", "POST"]),
    ]
