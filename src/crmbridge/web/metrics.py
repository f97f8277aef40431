"""Prometheus metrics of a running crmbridge, on a registry of its own (never the process-global one).

The runner calls the ``observe_*`` methods as passes finish and HTTP clients report; ``/metrics`` refreshes the
status and state gauges just before it renders, so backlog, lag and dead-letter counts are never stale.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from crmbridge.http import HttpStats
from crmbridge.state import StateInfo
from crmbridge.web.status import RunnerStatus

__all__ = ["DEFAULT_DYNAMICS_DAILY_ENTITLEMENT", "Metrics", "campaign_engine_calls"]

# Application users draw on the tenant pool: 500,000 requests per 24 h with Dynamics 365 Enterprise/Professional
# licences, plus 5,000 per licence (shared/protocols/dataverse-web-api.md §7.5). Set your own tenant's figure.
DEFAULT_DYNAMICS_DAILY_ENTITLEMENT = 500_000

DYNAMICS = "dynamics"
_DAY_SECONDS = 86_400
_BUCKET_SECONDS = 60  # the 24 h window is kept per minute: 1,440 buckets at most, whatever the traffic
_FLOW_STATES = ("idle", "running", "failed", "paused")


def campaign_engine_calls(*, created: int = 0, updated: int = 0, unchanged: int = 0, deleted: int = 0) -> int:
    """ACS licence "engine calls" by the 1/1/2 rule: 1 per insert, 1 per delete, 2 per update, 1 per no-op update.

    A write crmbridge skipped because the values hash did not change is not sent, so it costs nothing
    (shared/protocols/campaign-standard-api.md §8).
    """
    if min(created, updated, unchanged, deleted) < 0:
        raise ValueError("write counts cannot be negative")
    return created + deleted + 2 * updated + unchanged


class _SlidingDay:
    """Requests in the last 24 h, in one-minute buckets."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: deque[tuple[int, int]] = deque()  # (minute, requests)

    def add(self, requests: int) -> None:
        minute = int(self._clock() // _BUCKET_SECONDS)
        if self._buckets and self._buckets[-1][0] == minute:
            self._buckets[-1] = (minute, self._buckets[-1][1] + requests)
        else:
            self._buckets.append((minute, requests))
        self._forget_old(minute)

    def total(self) -> int:
        self._forget_old(int(self._clock() // _BUCKET_SECONDS))
        return sum(requests for _, requests in self._buckets)

    def _forget_old(self, minute: int) -> None:
        oldest_kept = minute - _DAY_SECONDS // _BUCKET_SECONDS + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            self._buckets.popleft()


class Metrics:
    """Every crmbridge metric family; ``render()`` gives the Prometheus text format."""

    def __init__(
        self,
        *,
        dynamics_daily_entitlement: int = DEFAULT_DYNAMICS_DAILY_ENTITLEMENT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._define_flow_metrics()
        self._define_api_metrics()
        self._define_state_metrics()
        self._seen_http: dict[str, HttpStats] = {}
        self._flows_seen: set[str] = set()
        self._dynamics_day = _SlidingDay(clock)
        self.dynamics_entitlement.set(dynamics_daily_entitlement)

    def _define_flow_metrics(self) -> None:
        registry = self.registry
        self.records = Counter(
            "crmbridge_records",
            "Records per flow and outcome (read, written, skipped, failed, ...); do not sum across outcomes.",
            ["flow", "outcome"],
            registry=registry,
        )
        self.passes = Counter(
            "crmbridge_passes", "Finished passes per flow and result.", ["flow", "result"], registry=registry
        )
        self.pass_seconds = Histogram(
            "crmbridge_pass_duration_seconds",
            "Duration of finished passes.",
            ["flow"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=registry,
        )
        self.last_pass = Gauge(
            "crmbridge_last_pass_timestamp_seconds",
            "When the last pass of a flow finished.",
            ["flow"],
            registry=registry,
        )
        self.backlog = Gauge(
            "crmbridge_backlog_records", "Changes known to be waiting, per flow.", ["flow"], registry=registry
        )
        self.lag = Gauge(
            "crmbridge_lag_seconds", "Age of the oldest change not yet applied, per flow.", ["flow"], registry=registry
        )
        self.flow_state = Gauge(
            "crmbridge_flow_state",
            "1 for the state each flow is in, 0 for the others.",
            ["flow", "state"],
            registry=registry,
        )

    def _define_api_metrics(self) -> None:
        registry = self.registry
        self.api_requests = Counter(
            "crmbridge_api_requests",
            "HTTP requests sent per service, retries included.",
            ["service"],
            registry=registry,
        )
        self.api_throttled = Counter(
            "crmbridge_api_throttled", "429 responses per service.", ["service"], registry=registry
        )
        self.api_retries = Counter(
            "crmbridge_api_retries", "Requests repeated per service.", ["service"], registry=registry
        )
        self.api_failures = Counter(
            "crmbridge_api_failures", "Calls given up per service.", ["service"], registry=registry
        )
        self.api_responses = Counter(
            "crmbridge_api_responses",
            "Responses per service and HTTP status.",
            ["service", "status"],
            registry=registry,
        )
        self.dynamics_requests_day = Gauge(
            "crmbridge_dynamics_requests_24h",
            "Dataverse requests (inner $batch operations included) in the last 24 h, counted against the entitlement.",
            registry=registry,
        )
        self.dynamics_entitlement = Gauge(
            "crmbridge_dynamics_request_entitlement_24h",
            "Dataverse requests allowed per 24 h for this application user (configured).",
            registry=registry,
        )
        self.engine_calls = Counter(
            "crmbridge_campaign_engine_calls",
            "ACS engine calls by the 1/1/2 rule (insert 1, delete 1, update 2, unchanged update 1).",
            registry=registry,
        )
        self.campaign_writes = Counter(
            "crmbridge_campaign_writes", "ACS writes sent, per kind.", ["kind"], registry=registry
        )

    def _define_state_metrics(self) -> None:
        registry = self.registry
        self.dead_letters_open = Gauge(
            "crmbridge_dead_letters_open", "Open dead letters per flow and scope.", ["flow", "scope"], registry=registry
        )
        self.conflicts = Gauge(
            "crmbridge_optout_conflicts", "Opt-out conflicts logged per pair.", ["scope"], registry=registry
        )
        self.pending = Gauge(
            "crmbridge_parked_children",
            "Child rows waiting for their parent, per mapping.",
            ["scope"],
            registry=registry,
        )
        self.unmatched_events = Gauge(
            "crmbridge_unmatched_events", "Email events whose profile has no usable externalId.", registry=registry
        )

    # --- called by the runner -------------------------------------------------------------------------------------

    def observe_pass(self, flow: str, counts: Mapping[str, int], seconds: float, *, failed: bool = False) -> None:
        """A pass of ``flow`` finished after ``seconds`` with these counts (``read``, ``written``, ``failed``, ...)."""
        for outcome, count in counts.items():
            if count < 0:
                raise ValueError(f"count {outcome}={count} of flow {flow} is negative")
            self.records.labels(flow=flow, outcome=outcome).inc(count)
        self.passes.labels(flow=flow, result="failed" if failed else "succeeded").inc()
        self.pass_seconds.labels(flow=flow).observe(seconds)
        self.last_pass.labels(flow=flow).set_to_current_time()

    def observe_http(self, service: str, stats: HttpStats) -> None:
        """Take the service's cumulative ``HttpStats``; only what grew since the last call is added.

        Counters that went down mean a new client (a restart of the flow): its values are taken whole.
        """
        previous = self._seen_http.get(service)
        if previous is None or stats.requests < previous.requests:
            previous = HttpStats()
        new_requests = stats.requests - previous.requests
        self.api_requests.labels(service=service).inc(new_requests)
        self.api_throttled.labels(service=service).inc(max(0, stats.throttled - previous.throttled))
        self.api_retries.labels(service=service).inc(max(0, stats.retries - previous.retries))
        self.api_failures.labels(service=service).inc(max(0, stats.failures - previous.failures))
        for status, count in stats.by_status.items():
            grown = count - previous.by_status.get(status, 0)
            if grown > 0:
                self.api_responses.labels(service=service, status=str(status)).inc(grown)
        self._seen_http[service] = HttpStats(
            stats.requests, stats.throttled, stats.retries, stats.failures, dict(stats.by_status)
        )
        if service == DYNAMICS and new_requests:
            self._dynamics_day.add(new_requests)

    def observe_dynamics_inner_operations(self, operations: int) -> None:
        """Count the operations inside a ``$batch``: each one draws on the daily entitlement (§7.5)."""
        if operations < 0:
            raise ValueError("operations cannot be negative")
        self._dynamics_day.add(operations)

    def observe_campaign_writes(
        self, *, created: int = 0, updated: int = 0, unchanged: int = 0, deleted: int = 0
    ) -> None:
        """ACS writes sent: ``updated`` changed a value, ``unchanged`` was an update that changed nothing."""
        self.engine_calls.inc(
            campaign_engine_calls(created=created, updated=updated, unchanged=unchanged, deleted=deleted)
        )
        for kind, count in (("created", created), ("updated", updated), ("unchanged", unchanged), ("deleted", deleted)):
            if count:
                self.campaign_writes.labels(kind=kind).inc(count)

    def observe_status(self, status: RunnerStatus) -> None:
        """Set backlog, lag and state gauges from the runner's snapshot (a missing value removes the series)."""
        for flow in status.flows:
            _set_or_clear(self.backlog, flow.name, flow.backlog)
            _set_or_clear(self.lag, flow.name, flow.lag_seconds)
            for state in _FLOW_STATES:
                self.flow_state.labels(flow=flow.name, state=state).set(1 if flow.state == state else 0)
        current = {flow.name for flow in status.flows}
        for gone in self._flows_seen - current:  # a flow removed from the config stops reporting
            _set_or_clear(self.backlog, gone, None)
            _set_or_clear(self.lag, gone, None)
            for state in _FLOW_STATES:
                with contextlib.suppress(KeyError):
                    self.flow_state.remove(gone, state)
        self._flows_seen = current

    def observe_state(self, info: StateInfo) -> None:
        """Set the dead-letter, conflict and parked-children gauges from the state store's summary."""
        for scope in info.scopes:
            self.dead_letters_open.labels(flow=scope.flow, scope=scope.scope).set(scope.dead_letters_open)
            if scope.flow == "optouts":
                self.conflicts.labels(scope=scope.scope).set(scope.conflicts)
            if scope.flow == "tables":
                self.pending.labels(scope=scope.scope).set(scope.pending)
        self.unmatched_events.set(info.unmatched_events)

    # --- read by /metrics -----------------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every family."""
        self.dynamics_requests_day.set(self._dynamics_day.total())
        return generate_latest(self.registry)


def _set_or_clear(gauge: Gauge, flow: str, value: float | None) -> None:
    if value is not None:
        gauge.labels(flow=flow).set(value)
        return
    with contextlib.suppress(KeyError):  # never set: nothing to remove
        gauge.remove(flow)
