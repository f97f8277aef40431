"""Pure simulation of one email delivery: who gets sent, bounces, opens and clicks, and when.

Counts are exact functions of the configured rates (``round(rate * population)``) and the seed only picks
*which* messages and *when*, so a test can assert counts and a fixed seed replays the same delivery.
Timing follows ACS facts where they exist (async bounces up to a week after the send, shared/protocols
adobe-io-events-and-exports.md §C.2, §C.7); the delay distributions themselves are (inferred).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from crmbridge.emulators.campaign.targets import DeliveryTarget

__all__ = [
    "BOUNCE_REASONS",
    "BounceReason",
    "DeliveryReport",
    "DeliverySpec",
    "EventKind",
    "Rates",
    "SimulatedEvent",
    "TrackedLink",
    "report_of",
    "simulate",
]

EventKind = Literal["send", "open", "click", "bounce"]
URL_TYPE_OPEN = "Open"
URL_TYPE_CLICK = "Email click"
URL_TYPE_MIRROR = "Mirror page"
URL_TYPE_OPT_OUT = "Opt-out"
MAX_ASYNC_BOUNCE_DELAY = timedelta(days=7)  # §C.2: asynchronous bounces arrive up to one week after sending


@dataclass(frozen=True, slots=True)
class BounceReason:
    label: str  # the "Nature of failure" UI label (§C.2)
    failure_type: Literal["Hard", "Soft"]
    weight: int  # relative frequency among bounces of this type (inferred)
    asynchronous: bool  # can come back from the remote MTA after a "Sent" (inferred)


# Email reasons of §C.2; "Ignored" types and SMS-only reasons do not count as bounces.
BOUNCE_REASONS: tuple[BounceReason, ...] = (
    BounceReason("User unknown", "Hard", 60, True),
    BounceReason("Quarantined address", "Hard", 10, False),
    BounceReason("Address on denylist", "Hard", 5, False),
    BounceReason("Address empty", "Hard", 2, False),
    BounceReason("Unreachable", "Hard", 8, True),
    BounceReason("Refused", "Hard", 10, True),
    BounceReason("Account disabled", "Hard", 5, True),
    BounceReason("Mailbox full", "Soft", 40, True),
    BounceReason("Invalid domain", "Soft", 15, False),
    BounceReason("Not defined", "Soft", 15, True),
    BounceReason("Unreachable", "Soft", 10, True),
    BounceReason("Refused", "Soft", 10, True),
    BounceReason("Account disabled", "Soft", 10, True),
)


@dataclass(frozen=True, slots=True)
class Rates:
    """Shares of the population each behaviour applies to. Defaults are typical marketing-email numbers (inferred)."""

    bounce_rate: float = 0.02  # of all messages
    hard_bounce_share: float = 0.5  # of bounces
    async_bounce_share: float = 0.3  # of bounces: "Sent" first, then "Failed" later
    open_rate: float = 0.2  # of delivered messages, opened at least once
    repeat_open_rate: float = 0.3  # of opened messages, opened a second time
    click_rate: float = 0.15  # of opened messages (click-to-open)
    mirror_page_share: float = 0.05  # of clicks, on the mirror-page link
    opt_out_share: float = 0.02  # of clicks, on the opt-out link
    send_window_s: float = 600.0  # sends spread evenly over this span
    open_delay_mean_s: float = 6 * 3600.0
    click_delay_mean_s: float = 120.0
    async_bounce_delay_mean_s: float = 2 * 3600.0
    max_reaction_delay_s: float = 3 * 86400.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = float(getattr(self, name))
            if name.endswith(("_rate", "_share")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            if name.endswith("_s") and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.mirror_page_share + self.opt_out_share > 1.0:
            raise ValueError("mirror_page_share + opt_out_share must not exceed 1")


@dataclass(frozen=True, slots=True)
class TrackedLink:
    label: str
    url: str


DEFAULT_LINKS = (
    TrackedLink("Shop the collection", "https://shop.example.com/spring?utm_source=acs&utm_medium=email"),
    TrackedLink("Read the story", "https://www.example.com/blog/spring-story"),
)


@dataclass(frozen=True, slots=True)
class DeliverySpec:
    campaign_id: str  # the campaign's ID ("Campaign Name" in the D365 connector, §B)
    campaign_label: str
    delivery_id: str  # the delivery's ID, e.g. DM190 ("Delivery Name", §B)
    delivery_label: str
    start: datetime
    seed: int = 0
    rates: Rates = field(default_factory=Rates)
    links: tuple[TrackedLink, ...] = DEFAULT_LINKS
    instance_url: str = "https://emulator.campaign.adobe.com"  # base of mirror-page and opt-out URLs (inferred)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("DeliverySpec.start must be timezone-aware")
        if not self.links:
            raise ValueError("a delivery needs at least one tracked link")


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """One send, open, click or bounce of one message, with everything a journal event or export row needs."""

    event_id: str  # unique event UUID (§A.8)
    kind: EventKind
    occurred_at: datetime
    spec: DeliverySpec = field(repr=False)
    target: DeliveryTarget
    broadlog_id: str
    tracking_log_id: str | None = None
    url: str | None = None
    url_label: str | None = None
    url_type: str | None = None  # §C.3 tracking type for opens and clicks
    bounce_type: Literal["Hard", "Soft"] | None = None
    bounce_reason: str | None = None
    sent_before_bounce: bool = False  # an asynchronous bounce: the log row went Sent, then Failed

    @property
    def mirror_page_url(self) -> str:
        return f"{self.spec.instance_url}/m/?id={self.broadlog_id}"  # (inferred) shape of ACS mirror-page links


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    campaign_id: str
    delivery_id: str
    messages: int
    counts: dict[str, int]  # per event kind
    bounces_by_type: dict[str, int]  # "Hard" / "Soft"
    clicks_by_url_type: dict[str, int]
    first_event_at: datetime | None
    last_event_at: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "campaignId": self.campaign_id,
            "deliveryId": self.delivery_id,
            "messages": self.messages,
            "counts": self.counts,
            "bouncesByType": self.bounces_by_type,
            "clicksByUrlType": self.clicks_by_url_type,
            "firstEventAt": self.first_event_at.isoformat() if self.first_event_at else None,
            "lastEventAt": self.last_event_at.isoformat() if self.last_event_at else None,
        }


def report_of(spec: DeliverySpec, messages: int, events: Sequence[SimulatedEvent]) -> DeliveryReport:
    kinds = Counter(event.kind for event in events)
    return DeliveryReport(
        campaign_id=spec.campaign_id,
        delivery_id=spec.delivery_id,
        messages=messages,
        counts={kind: kinds.get(kind, 0) for kind in ("send", "open", "click", "bounce")},
        bounces_by_type=dict(Counter(e.bounce_type for e in events if e.bounce_type)),
        clicks_by_url_type=dict(Counter(e.url_type for e in events if e.kind == "click" and e.url_type)),
        first_event_at=min((e.occurred_at for e in events), default=None),
        last_event_at=max((e.occurred_at for e in events), default=None),
    )


class _Ids:
    """Sequential broadlog and tracking-log ids, continuing from where the previous delivery stopped."""

    def __init__(self, first_broadlog_id: int, first_tracking_log_id: int) -> None:
        self.next_broadlog = first_broadlog_id
        self.next_tracking = first_tracking_log_id

    def broadlog(self) -> str:
        self.next_broadlog += 1
        return str(self.next_broadlog - 1)

    def tracking(self) -> str:
        self.next_tracking += 1
        return str(self.next_tracking - 1)


def simulate(
    spec: DeliverySpec,
    targets: Sequence[DeliveryTarget],
    *,
    first_broadlog_id: int = 1,
    first_tracking_log_id: int = 1,
    id_namespace: uuid.UUID = uuid.NAMESPACE_URL,
) -> list[SimulatedEvent]:
    """Every event of the delivery, ordered by occurrence time.

    Event ids are derived from ``id_namespace`` and the message's own ids, not from the seed, so two
    deliveries simulated with the same seed never share an event id (§A.8: every event has a unique UUID).
    """
    rng = random.Random(spec.seed)
    rates = spec.rates
    ids = _Ids(first_broadlog_id, first_tracking_log_id)
    broadlogs = [ids.broadlog() for _ in targets]
    send_times = [_send_time(spec, index, len(targets)) for index in range(len(targets))]
    order = list(range(len(targets)))

    bounced = _pick(rng, order, rates.bounce_rate)
    hard = set(_pick(rng, bounced, rates.hard_bounce_share))
    late = set(_pick(rng, bounced, rates.async_bounce_share))
    bounced_set = set(bounced)
    delivered = [index for index in order if index not in bounced_set]
    opened = _pick(rng, delivered, rates.open_rate)
    reopened = set(_pick(rng, opened, rates.repeat_open_rate))
    clickers = _pick(rng, opened, rates.click_rate)

    events: list[SimulatedEvent] = []

    def add(kind: EventKind, index: int, when: datetime, **details: Any) -> None:
        event_id = str(uuid.uuid5(id_namespace, f"{broadlogs[index]}/{kind}/{details.get('tracking_log_id', '')}"))
        events.append(SimulatedEvent(event_id, kind, when, spec, targets[index], broadlogs[index], **details))

    for index in order:
        if index not in bounced_set or index in late:
            add("send", index, send_times[index])
    for index in bounced:
        reason = _bounce_reason(rng, "Hard" if index in hard else "Soft", asynchronous=index in late)
        when = send_times[index]
        if index in late:
            when += min(timedelta(seconds=rng.expovariate(1 / rates.async_bounce_delay_mean_s)), MAX_ASYNC_BOUNCE_DELAY)
        add(
            "bounce",
            index,
            when,
            bounce_type=reason.failure_type,
            bounce_reason=reason.label,
            sent_before_bounce=index in late,
        )
    open_times: dict[int, datetime] = {}
    for index in opened:
        first = send_times[index] + _delay(rng, rates.open_delay_mean_s, rates.max_reaction_delay_s)
        open_times[index] = first
        add("open", index, first, tracking_log_id=ids.tracking(), url_type=URL_TYPE_OPEN, url_label=URL_TYPE_OPEN)
        if index in reopened:
            again = first + _delay(rng, rates.open_delay_mean_s, rates.max_reaction_delay_s)
            add("open", index, again, tracking_log_id=ids.tracking(), url_type=URL_TYPE_OPEN, url_label=URL_TYPE_OPEN)
    for index, url_type in zip(clickers, _click_types(rng, len(clickers), rates), strict=True):
        when = open_times[index] + _delay(rng, rates.click_delay_mean_s, rates.max_reaction_delay_s)
        label, url = _click_target(rng, spec, url_type, broadlogs[index])
        add("click", index, when, tracking_log_id=ids.tracking(), url=url, url_label=label, url_type=url_type)
    events.sort(key=lambda event: (event.occurred_at, int(event.broadlog_id), event.kind))
    return events


def _send_time(spec: DeliverySpec, index: int, population: int) -> datetime:
    return spec.start + timedelta(seconds=spec.rates.send_window_s * index / max(population, 1))


def _pick(rng: random.Random, population: Sequence[int], share: float) -> list[int]:
    """Exactly round(share * len) members, chosen by the seed, in population order."""
    chosen = rng.sample(list(population), round(share * len(population)))
    return sorted(chosen)


def _delay(rng: random.Random, mean_s: float, cap_s: float) -> timedelta:
    if mean_s <= 0:
        return timedelta(0)
    return timedelta(seconds=min(rng.expovariate(1 / mean_s), cap_s))


def _bounce_reason(rng: random.Random, failure_type: str, *, asynchronous: bool) -> BounceReason:
    candidates = [r for r in BOUNCE_REASONS if r.failure_type == failure_type and (r.asynchronous or not asynchronous)]
    return rng.choices(candidates, weights=[r.weight for r in candidates])[0]


def _click_types(rng: random.Random, clicks: int, rates: Rates) -> list[str]:
    mirror = round(rates.mirror_page_share * clicks)
    opt_out = min(round(rates.opt_out_share * clicks), clicks - mirror)
    types = [URL_TYPE_MIRROR] * mirror + [URL_TYPE_OPT_OUT] * opt_out
    types += [URL_TYPE_CLICK] * (clicks - len(types))
    rng.shuffle(types)
    return types


def _click_target(rng: random.Random, spec: DeliverySpec, url_type: str, broadlog_id: str) -> tuple[str, str]:
    if url_type == URL_TYPE_MIRROR:
        return "Mirror page", f"{spec.instance_url}/m/?id={broadlog_id}"
    if url_type == URL_TYPE_OPT_OUT:
        return "Unsubscribe", f"{spec.instance_url}/webApp/unsubscribe?id={broadlog_id}"  # (inferred) URL shape
    link = rng.choice(spec.links)
    return link.label, link.url
