"""What Dynamics must hold after the email-events flow, computed from what Campaign published, by hand.

It must not import ``crmbridge.engine`` (activities, events) or ``crmbridge.mapping``: it reads the Adobe I/O
Events journal with plain httpx (an IMS token, ``Link: rel="next"`` until 204), keeps one copy of each event by
its CloudEvents ``id`` (§A.8: a repeated event keeps its id), and applies the rules of the test configuration
(``harness.events_section``: default cmb_ names, the subject of Adobe's integration, follow-up tasks on click and
hard bounce, roll-ups) spelled out below. Dynamics is read through the plain OData reader of ``oracle.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.oracle import DataverseReader

EVENT_KINDS = ("send", "open", "click", "bounce")
ENTITY_SETS = {kind: f"cmb_email{kind}s" for kind in EVENT_KINDS}  # the flow's default activity tables
SUBJECT = "Campaign Name: {campaign}; Delivery Name: {delivery}"  # Adobe's integration, reference §3.12
ACTIVITY_COLUMNS = [
    "activityid",
    "subject",
    "_regardingobjectid_value",
    "actualend",
    "statecode",
    "statuscode",
    "cmb_occurredon",
    "cmb_campaignname",
    "cmb_deliveryname",
    "cmb_trackingurl",
    "cmb_mirrorpageurl",
    "cmb_bouncereason",
    "cmb_eventkey",
]
TASK_COLUMNS = ["activityid", "subject", "_regardingobjectid_value", "scheduledend", "statecode"]
ROLLUP_DATES = {
    "send": "cmb_lastemailsenton",
    "open": "cmb_lastemailopenedon",
    "click": "cmb_lastemailclickedon",
    "bounce": "cmb_lastemailbouncedon",
}
ROLLUP_COUNTS = {
    "send": "cmb_emailsentcount",
    "open": "cmb_emailopencount",
    "click": "cmb_emailclickcount",
    "bounce": "cmb_emailbouncecount",
}
HARD_BOUNCED = "cmb_emailhardbounced"
ROLLUP_COLUMNS = [*ROLLUP_DATES.values(), *ROLLUP_COUNTS.values(), HARD_BOUNCED]


@dataclass(frozen=True)
class EnabledTypes:
    """The ``types:`` of the test configuration."""

    send: bool = True
    open: bool = True
    click: bool = True
    bounce: str = "hard"  # hard | hard_and_soft | off

    def writes(self, kind: str, bounce_type: str | None) -> bool:
        if kind == "bounce":
            return self.bounce == "hard_and_soft" or (self.bounce == "hard" and bounce_type == "Hard")
        return bool(getattr(self, kind))


class JournalReader:
    """Reads the whole journal of the emulator's registration, the way the I/O Events guide shows it."""

    def __init__(self, campaign_url: str, journal_path: str, client_id: str, secret: str, ims_org: str) -> None:
        self.http = httpx.Client(base_url=campaign_url, timeout=60.0, trust_env=False)
        self.journal_path = journal_path
        self._credentials = (client_id, secret, ims_org)

    def close(self) -> None:
        self.http.close()

    def _headers(self) -> dict[str, str]:
        client_id, secret, ims_org = self._credentials
        token = self.http.post(
            "/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": "openid,AdobeID,read_organizations,adobeio_api",
            },
        )
        token.raise_for_status()
        bearer = f"Bearer {token.json()['access_token']}"
        return {"Authorization": bearer, "x-api-key": client_id, "x-ims-org-id": ims_org}

    def events(self) -> list[dict[str, Any]]:
        """Every event still in the journal, in journal order, repeats included."""
        headers = self._headers()
        found: list[dict[str, Any]] = []
        url = self.journal_path
        while True:
            page = self.http.get(url, headers=headers)
            if page.status_code == 204:
                return found
            page.raise_for_status()
            found.extend(entry["event"] for entry in page.json()["events"])
            url = page.links["next"]["url"]


def unique_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One copy per event id; a repeat must be the same event (else the journal itself is broken)."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for event in events:
        first = by_id.setdefault(str(event["id"]), event)
        assert first["data"] == event["data"], f"event {event['id']} repeated with other data"
    return list(by_id.values())


def _second(timestamp: str) -> str:
    """ISO time with milliseconds and Z, cut to the second: Dataverse date-time columns keep seconds."""
    return timestamp[:19] + "Z"


ActivityKey = tuple[str, str, str, str]  # contact, occurred (second), clicked URL, mirror page URL (holds the broadlog)
TaskKey = tuple[str, str, str]  # contact, subject, due


@dataclass
class ExpectedEvents:
    activities: dict[str, dict[ActivityKey, dict[str, Any]]] = field(default_factory=dict)  # by entity set
    tasks: set[TaskKey] = field(default_factory=set)
    rollups: dict[str, dict[str, Any]] = field(default_factory=dict)  # by contact id
    unmatched: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # unique journal events per kind (all, not only enabled)
    bounce_types: Counter[str] = field(default_factory=Counter)  # unique bounces per bounceType (Hard, Soft)

    def written(self) -> int:
        return sum(len(rows) for rows in self.activities.values())


def expected_events(events: Iterable[Mapping[str, Any]], contact_ids: set[str], types: EnabledTypes) -> ExpectedEvents:
    """Apply the configuration's rules to the unique journal events; ``contact_ids`` are the contacts in Dynamics."""
    expected = ExpectedEvents(activities={ENTITY_SETS[kind]: {} for kind in EVENT_KINDS})
    for event in events:
        data = event["data"]
        kind = str(data["eventType"])
        expected.by_kind[kind] += 1
        if kind == "bounce":
            expected.bounce_types[str(data.get("bounceType"))] += 1
        if not types.writes(kind, data.get("bounceType")):
            continue
        contact = (data.get("profile") or {}).get("externalId") or None
        if contact is None or contact not in contact_ids:
            expected.unmatched += 1  # a profile without externalId, or one whose contact Dynamics does not have
            continue
        when = _second(str(event["time"]))
        url = str(data.get("url") or "") if kind == "click" else ""
        key = (contact, when, url, str(data.get("mirrorPageUrl") or ""))
        table = expected.activities[ENTITY_SETS[kind]]
        assert key not in table, f"two journal events with one natural key: {key}"
        table[key] = {
            "subject": SUBJECT.format(campaign=data["campaignID"], delivery=data["deliveryID"]),
            "cmb_campaignname": data["campaignID"],
            "cmb_deliveryname": data["deliveryID"],
            "cmb_occurredon": when,
            "actualend": when,
            "cmb_trackingurl": url or None,
            "cmb_mirrorpageurl": data.get("mirrorPageUrl"),
            "cmb_bouncereason": data.get("bounceReason") if kind == "bounce" else None,
            "statecode": 1,  # completed: a finished activity on the timeline
        }
        if kind == "click":
            expected.tasks.add((contact, f"Follow up on URL click: {url}"[:200], when))
        if kind == "bounce" and data.get("bounceType") == "Hard":
            expected.tasks.add((contact, f"Reconcile the invalid email address ({data['deliveryID']})", when))
        _fold_rollup(expected.rollups, contact, kind, when, data.get("bounceType"))
    return expected


def _fold_rollup(rollups: dict[str, dict[str, Any]], contact: str, kind: str, when: str, bounce: str | None) -> None:
    fresh = {**dict.fromkeys(ROLLUP_DATES.values()), **dict.fromkeys(ROLLUP_COUNTS.values(), 0), HARD_BOUNCED: False}
    row = rollups.setdefault(contact, fresh)
    date_column = ROLLUP_DATES[kind]
    if row[date_column] is None or when > row[date_column]:  # same-format ISO strings sort as times
        row[date_column] = when
    row[ROLLUP_COUNTS[kind]] += 1
    row[HARD_BOUNCED] = row[HARD_BOUNCED] or bounce == "Hard"


@dataclass
class DynamicsEvents:
    """Activity rows per entity set, tasks, and roll-up columns of every contact, as Dynamics holds them."""

    activities: dict[str, list[dict[str, Any]]]
    tasks: list[dict[str, Any]]
    rollups: dict[str, dict[str, Any]]

    def activity_count(self) -> int:
        return sum(len(rows) for rows in self.activities.values())

    def values(self) -> DynamicsEvents:
        """Without annotations (ETags, formatted values): what a rewrite of the same values leaves unchanged."""

        def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(({k: v for k, v in r.items() if "@" not in k} for r in rows), key=lambda r: r["activityid"])

        return DynamicsEvents(
            {name: plain(rows) for name, rows in self.activities.items()}, plain(self.tasks), self.rollups
        )


def _rows_if_table(reader: DataverseReader, entity_set: str, columns: list[str]) -> list[dict[str, Any]]:
    """The rows of a table, none when provision did not create it (its event type is off)."""
    try:
        return reader.rows(entity_set, columns)
    except httpx.HTTPStatusError as error:
        if error.response.status_code == 404:
            return []
        raise


def read_dynamics_events(reader: DataverseReader) -> DynamicsEvents:
    activities = {name: _rows_if_table(reader, name, ACTIVITY_COLUMNS) for name in ENTITY_SETS.values()}
    tasks = reader.rows("tasks", TASK_COLUMNS)
    contacts = reader.rows("contacts", ["contactid", *ROLLUP_COLUMNS])
    rollups = {str(row["contactid"]): {c: row.get(c) for c in ROLLUP_COLUMNS} for row in contacts}
    return DynamicsEvents(activities, tasks, rollups)


def _activity_key(row: Mapping[str, Any]) -> ActivityKey:
    return (
        str(row["_regardingobjectid_value"]),
        str(row["cmb_occurredon"]),
        str(row.get("cmb_trackingurl") or ""),
        str(row.get("cmb_mirrorpageurl") or ""),
    )


def event_differences(expected: ExpectedEvents, actual: DynamicsEvents, *, limit: int = 25) -> list[str]:
    """Missing, extra and duplicated activities and tasks, wrong fields and roll-ups. Empty when all is right."""
    found: list[str] = []
    for entity_set, want in expected.activities.items():
        rows = actual.activities.get(entity_set, [])
        per_key = Counter(_activity_key(row) for row in rows)
        found += [f"{entity_set} {key}: {n} rows for one event" for key, n in per_key.items() if n > 1]
        per_event_key = Counter(str(row["cmb_eventkey"]) for row in rows)
        found += [f"{entity_set} event key {key}: {n} rows" for key, n in per_event_key.items() if n > 1]
        have = {_activity_key(row): row for row in rows}
        found += [f"{entity_set} {key}: missing" for key in sorted(want.keys() - have.keys())]
        found += [f"{entity_set} {key}: no such event" for key in sorted(have.keys() - want.keys())]
        for key in sorted(want.keys() & have.keys()):
            for column, value in want[key].items():
                if have[key].get(column) != value:
                    found.append(f"{entity_set} {key}.{column}: {have[key].get(column)!r}, expected {value!r}")
    tasks = Counter(
        (str(t["_regardingobjectid_value"]), str(t["subject"]), str(t["scheduledend"])) for t in actual.tasks
    )
    found += [f"task {key}: {n} rows for one event" for key, n in tasks.items() if n > 1]
    found += [f"task {key}: missing" for key in sorted(expected.tasks - tasks.keys())]
    found += [f"task {key}: no such event" for key in sorted(tasks.keys() - expected.tasks)]
    untouched = dict.fromkeys(ROLLUP_COLUMNS)
    for contact, have_rollup in sorted(actual.rollups.items()):
        want_rollup = expected.rollups.get(contact, untouched)
        if have_rollup != want_rollup:
            found.append(f"roll-ups of contact {contact}: {have_rollup}, expected {want_rollup}")
    found += [f"roll-ups of {c}: contact missing" for c in sorted(expected.rollups.keys() - actual.rollups.keys())]
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])
