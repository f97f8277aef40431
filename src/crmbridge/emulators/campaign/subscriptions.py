"""Subscriptions between profiles and services: ``…/profile/<PKey>/subscriptions/`` and the service side (§4.4)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from crmbridge.emulators.campaign import errors
from crmbridge.emulators.campaign.schema import ResourceSpec
from crmbridge.emulators.campaign.settings import format_datetime
from crmbridge.emulators.campaign.storage import DuplicateKey

if TYPE_CHECKING:
    from crmbridge.emulators.campaign.routes import Call

__all__ = ["dispatch"]

SUBSCRIPTION = "subscription"


def _row(call: Call, sub: dict[str, Any]) -> dict[str, Any]:
    ctx = call.context
    profile_spec, service_spec = ctx.schema.resources["profile"], ctx.schema.resources["service"]
    profile = ctx.storage.get(profile_spec, int(sub["profile_id"]), include_hidden=True) or {}
    service = ctx.storage.get(service_spec, int(sub["service_id"]), include_hidden=True) or {}
    profile_pkey = ctx.pkeys.encode("profile", int(sub["profile_id"]))
    service_pkey = ctx.pkeys.encode("service", int(sub["service_id"]))
    pkey = ctx.pkeys.encode(SUBSCRIPTION, int(sub["id"]))
    label = str(service.get("label", ""))
    return {
        "PKey": pkey,
        "created": sub["created"],
        "email": profile.get("email", ""),
        "expirationDate": "",
        "href": f"{call.href('service', service_pkey)}/subscriptions/{pkey}",
        "metadata": "subscriptionRcp",
        "mobilePhone": profile.get("mobilePhone", ""),
        "service": {
            "PKey": service_pkey,
            "href": call.href("service", service_pkey),
            "label": label,
            "name": service.get("name", ""),
            "title": f"{label} ({service.get('name', '')})",
        },
        "serviceName": service.get("name", ""),
        "subscriber": {
            "PKey": profile_pkey,
            "email": profile.get("email", ""),
            "firstName": profile.get("firstName", ""),
            "href": call.href("profile", profile_pkey),
            "lastName": profile.get("lastName", ""),
        },
        "title": f"{label} ({profile.get('email', '')})",  # (inferred layout)
    }


async def _subscribe(call: Call, spec: ResourceSpec, row_id: int) -> Response:
    ctx = call.context
    try:
        body = json.loads(await call.request.body() or b"{}")
    except ValueError:
        raise errors.CampaignError(500, f"{errors.RST_PREFIX} Unable to parse the JSON body") from None
    other_name, link = ("service", "service") if spec.name == "profile" else ("profile", "subscriber")
    other = ctx.schema.resources[other_name]
    node = body.get(link) if isinstance(body, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get("PKey"), str):
        raise errors.CampaignError(500, f"{errors.RST_PREFIX} The '{link}' link is mandatory")  # (inferred)
    other_id = ctx.pkeys.decode(other_name, node["PKey"])
    if other_id is None:
        raise errors.invalid_pkey(node["PKey"], other.label, other.schema)
    if not ctx.storage.exists(other, other_id):
        raise errors.not_found(other.xtk_label, node["PKey"])
    profile_id, service_id = (row_id, other_id) if spec.name == "profile" else (other_id, row_id)
    try:
        sub_id = ctx.storage.subscribe(profile_id, service_id, format_datetime(ctx.now()))
    except DuplicateKey as exc:
        raise errors.duplicate_key("Subscription", node["PKey"], exc.index) from None
    sub = ctx.storage.get_subscription(sub_id)
    assert sub is not None
    return JSONResponse(_row(call, sub), status_code=201)


async def dispatch(call: Call, spec: ResourceSpec, row_id: int, rest: list[str]) -> Response:
    ctx = call.context
    if spec.name not in ("profile", "service") or rest[0] != "subscriptions" or len(rest) > 2:
        raise errors.unknown_resource()
    if ctx.storage.get(spec, row_id) is None:
        raise errors.not_found(spec.xtk_label, ctx.pkeys.encode(spec.name, row_id))
    method = call.request.method
    if len(rest) == 1:
        if method == "POST":
            return await _subscribe(call, spec, row_id)
        column = {"profile_id": row_id} if spec.name == "profile" else {"service_id": row_id}
        rows = [_row(call, sub) for sub in ctx.storage.subscriptions(**column)]
        return JSONResponse({"content": rows, "serverSidePagination": True})
    sub_id = ctx.pkeys.decode(SUBSCRIPTION, rest[1])
    sub = ctx.storage.get_subscription(sub_id) if sub_id is not None else None
    owner = "profile_id" if spec.name == "profile" else "service_id"
    if sub is None or int(sub[owner]) != row_id:
        raise errors.not_found("Subscription", rest[1])
    if method == "DELETE":
        ctx.storage.unsubscribe(int(sub["id"]), format_datetime(ctx.now()))
        return Response(status_code=204)  # unsubscribe -> 204 No Content (§4.3)
    if method == "GET":
        return JSONResponse(_row(call, sub))
    raise errors.unknown_resource()
