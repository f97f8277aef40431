"""The journal event for a simulated email event: a CloudEvents 1.0 envelope (§A.9) around an ACS payload.

Adobe publishes neither the Campaign Standard provider's event codes nor its ``data`` schema (§B "Not public").
Everything inside ``data``, and the ``type`` and ``source`` values, are (inferred): the fields are the attributes
the Adobe D365 connector shows (campaign and delivery ids, time, mirror page URL, clicked URL, §B) plus the
keys a consumer needs to match and dedupe (broadlog and tracking-log ids, profile externalId/email/PKey), named
after the XDM Campaign ExperienceEvent fields (``broadlogID``, ``trackinglogID``, ``campaignID``, …, §B [X1]).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from crmbridge.emulators.campaign.events.simulation import SimulatedEvent

__all__ = ["EVENT_TYPES", "addressed_to", "cloud_event", "event_data", "iso_millis"]

# (inferred) reverse-DNS event codes in the style of other CloudEvents providers (§A.9 Marketo example)
EVENT_TYPES = {
    "send": "com.adobe.campaign.standard.email.send",
    "open": "com.adobe.campaign.standard.email.open",
    "click": "com.adobe.campaign.standard.email.click",
    "bounce": "com.adobe.campaign.standard.email.bounce",
}
EVENT_SOURCE = "urn:adobe:campaign:standard"  # (inferred)


def iso_millis(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a Z, the XML date format of ACS exports (§C.5)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_data(event: SimulatedEvent) -> dict[str, Any]:
    """The (inferred) ACS payload carried in ``event.data``."""
    spec = event.spec
    data: dict[str, Any] = {
        "eventType": event.kind,
        "timestamp": iso_millis(event.occurred_at),
        "channel": "email",
        "campaignID": spec.campaign_id,
        "campaignLabel": spec.campaign_label,
        "deliveryID": spec.delivery_id,
        "deliveryLabel": spec.delivery_label,
        "broadlogID": event.broadlog_id,
        "mirrorPageUrl": event.mirror_page_url,
        "profile": {"PKey": event.target.pkey, "externalId": event.target.external_id, "email": event.target.email},
    }
    if event.tracking_log_id is not None:
        data["trackinglogID"] = event.tracking_log_id
        data["urlType"] = event.url_type
        data["urlLabel"] = event.url_label
    if event.kind == "click":
        data["url"] = event.url
    if event.kind == "bounce":
        data["bounceType"] = event.bounce_type
        data["bounceReason"] = event.bounce_reason
    return data


def cloud_event(event: SimulatedEvent) -> dict[str, Any]:
    """The envelope as stored; the journal adds the registration's client id with :func:`addressed_to`."""
    return {
        "specversion": "1.0",
        "type": EVENT_TYPES[event.kind],
        "source": EVENT_SOURCE,
        "id": event.event_id,
        "time": iso_millis(event.occurred_at),
        "datacontenttype": "application/json",
        "eventid": event.event_id,
        "event_id": event.event_id,  # deprecated duplicate, still sent until its removal (§A.9)
        "data": event_data(event),
    }


def addressed_to(envelope_json: str, recipient_client_id: str) -> str:
    """The stored envelope as one registration receives it, with its client id under the new and the deprecated
    name; spliced into the stored JSON text, because decoding and re-encoding every event dominated page time."""
    if not envelope_json.endswith("}"):
        raise ValueError("a stored envelope is a JSON object")
    client = json.dumps(recipient_client_id)
    return f'{envelope_json[:-1]}, "recipientclientid": {client}, "recipient_client_id": {client}}}'
