"""Marketing history of a profile: ``/profileAndServices/history/<PKey>`` and its ``events`` (§6.1, A18).

The core emulator records subscription history (subHisto); delivery logs belong to the email-events package,
so ``countBroadLogEvents`` stays 0 here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from crmbridge.emulators.campaign import errors
from crmbridge.emulators.campaign.filters import filter_sql

if TYPE_CHECKING:
    from crmbridge.emulators.campaign.routes import Call

__all__ = ["dispatch"]

EVENT = "subHistoEvent"


def _event(call: Call, profile_pkey: str, event: dict[str, Any]) -> dict[str, Any]:
    ctx = call.context
    service = ctx.storage.get(ctx.schema.resources["service"], int(event["service_id"]), include_hidden=True) or {}
    pkey = ctx.pkeys.encode(EVENT, int(event["id"]))
    verb = "Subscription to" if event["action"] == "subscription" else "Unsubscription from"
    return {
        "PKey": pkey,
        "category": "subscription",  # (inferred: the docs only show an "email" send event)
        "date": event["date"],
        "href": f"{call.href('history', profile_pkey)}/events/{pkey}",
        "label": f"{verb} '{service.get('label', '')}'",
        "type": event["action"],
    }


def _history(call: Call, row: dict[str, Any], *, with_href: bool) -> dict[str, Any]:
    ctx = call.context
    spec = ctx.schema.resources["profile"]
    body = call.serialize(spec, row, with_href=False)
    pkey = body["PKey"]
    events = ctx.storage.subscription_history(int(row["id"]))
    body.update(
        {
            "countBroadLogEvents": 0,
            "countSubHistoEvents": len(events),
            "countryIsoA2": body.get("location", {}).get("countryCode", ""),
            "events": {"href": f"{call.href('history', pkey)}/events/", "metadata": "subHisto"},
            "kpisAndChart": {"href": f"{call.href('history', pkey)}/kpisAndChart/"},
            "minBroadLogEvents": "",
            "minSubHistoEvents": events[0]["date"] if events else "",
        }
    )
    body.pop("subscriptions", None)
    if with_href:
        body["href"] = call.href("history", pkey)
    return dict(sorted(body.items(), key=lambda item: item[0].lower()))


async def dispatch(call: Call, rest: list[str]) -> Response:
    ctx = call.context
    spec = ctx.schema.resources["profile"]
    if call.request.method != "GET" or not rest:
        raise errors.unknown_resource()
    if rest == ["byEmail"]:
        fsql = filter_sql(spec, call.api, rest, call.request.query_params,
                          email_case_sensitive=ctx.settings.email_filter_case_sensitive)  # fmt: skip
        rows = ctx.storage.db.execute(
            f"SELECT t.* FROM r_profile t WHERE {' AND '.join(fsql.conditions)} ORDER BY t.id LIMIT 100", fsql.params
        )
        return JSONResponse({"content": [_history(call, dict(r), with_href=True) for r in rows]})
    row_id = ctx.pkeys.decode("profile", rest[0])
    if row_id is None:
        raise errors.invalid_pkey(rest[0], spec.label, spec.schema)
    row = ctx.storage.get(spec, row_id)
    if row is None:
        raise errors.not_found(spec.xtk_label, rest[0])
    if len(rest) == 1:
        return JSONResponse(_history(call, row, with_href=False))
    if rest[1] != "events" or len(rest) > 3:
        raise errors.unknown_resource()
    events = ctx.storage.subscription_history(row_id)
    if len(rest) == 2:
        return JSONResponse({"content": [_event(call, rest[0], e) for e in events], "serverSidePagination": True})
    event_id = ctx.pkeys.decode(EVENT, rest[2])
    event = next((e for e in events if event_id is not None and int(e["id"]) == event_id), None)
    if event is None:
        raise errors.not_found("Event", rest[2])
    return JSONResponse(_event(call, rest[0], event))
