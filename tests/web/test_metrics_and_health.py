"""/metrics in the Prometheus text format with every family, the counting rules behind it, and /healthz."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crmbridge.http import HttpStats
from crmbridge.web import FixedStatus, Metrics, RunnerStatus, campaign_engine_calls
from tests.web.conftest import runner_status

FAMILIES = {
    "crmbridge_records",
    "crmbridge_passes",
    "crmbridge_pass_duration_seconds",
    "crmbridge_last_pass_timestamp_seconds",
    "crmbridge_backlog_records",
    "crmbridge_lag_seconds",
    "crmbridge_flow_state",
    "crmbridge_api_requests",
    "crmbridge_api_throttled",
    "crmbridge_api_retries",
    "crmbridge_api_failures",
    "crmbridge_api_responses",
    "crmbridge_dynamics_requests_24h",
    "crmbridge_dynamics_request_entitlement_24h",
    "crmbridge_campaign_engine_calls",
    "crmbridge_campaign_writes",
    "crmbridge_dead_letters_open",
    "crmbridge_optout_conflicts",
    "crmbridge_parked_children",
    "crmbridge_unmatched_events",
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


@pytest.mark.anyio
async def test_metrics_endpoint_parses_and_has_every_family(client: httpx.AsyncClient, metrics: Metrics) -> None:
    metrics.observe_pass("contacts", {"read": 10, "written": 7, "failed": 1}, 2.5)
    metrics.observe_http("dynamics", HttpStats(requests=12, throttled=2, retries=2, by_status={200: 10, 429: 2}))
    metrics.observe_campaign_writes(created=3, updated=2, unchanged=1, deleted=1)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert names >= FAMILIES
    text = response.text
    assert value(text, "crmbridge_records_total", flow="contacts", outcome="written") == 7
    assert value(text, "crmbridge_api_throttled_total", service="dynamics") == 2
    assert value(text, "crmbridge_api_responses_total", service="dynamics", status="429") == 2
    assert value(text, "crmbridge_campaign_engine_calls_total") == 3 + 4 + 1 + 1
    assert value(text, "crmbridge_dynamics_requests_24h") == 12
    assert value(text, "crmbridge_dynamics_request_entitlement_24h") == 40_000
    # From the runner status and the state store, read at scrape time:
    assert value(text, "crmbridge_backlog_records", flow="contacts") == 42
    assert value(text, "crmbridge_lag_seconds", flow="email-events") == 12.5
    assert value(text, "crmbridge_flow_state", flow="optouts", state="paused") == 1
    assert value(text, "crmbridge_flow_state", flow="optouts", state="running") == 0
    assert value(text, "crmbridge_dead_letters_open", flow="tables", scope="contacts") == 1
    assert value(text, "crmbridge_optout_conflicts", scope="donotbulkemail:blackListEmail") == 1


@pytest.mark.parametrize(
    ("created", "updated", "unchanged", "deleted", "calls"),
    [(1, 0, 0, 0, 1), (0, 1, 0, 0, 2), (0, 0, 1, 0, 1), (0, 0, 0, 1, 1), (5, 3, 2, 4, 17), (0, 0, 0, 0, 0)],
)
def test_campaign_engine_calls_follow_the_one_one_two_rule(
    created: int, updated: int, unchanged: int, deleted: int, calls: int
) -> None:
    assert campaign_engine_calls(created=created, updated=updated, unchanged=unchanged, deleted=deleted) == calls


def test_http_stats_are_added_by_what_grew_and_a_new_client_counts_whole() -> None:
    metrics = Metrics()
    metrics.observe_http("campaign", HttpStats(requests=5, throttled=1, by_status={200: 4, 429: 1}))
    metrics.observe_http("campaign", HttpStats(requests=8, throttled=1, by_status={200: 7, 429: 1}))
    metrics.observe_http("campaign", HttpStats(requests=2, by_status={200: 2}))  # restarted client
    text = metrics.render().decode()
    assert value(text, "crmbridge_api_requests_total", service="campaign") == 10
    assert value(text, "crmbridge_api_responses_total", service="campaign", status="200") == 9
    assert value(text, "crmbridge_api_throttled_total", service="campaign") == 1
    assert value(text, "crmbridge_dynamics_requests_24h") == 0  # Campaign traffic is not Dataverse entitlement


def test_dynamics_requests_older_than_a_day_leave_the_window() -> None:
    now = [1_000_000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.observe_http("dynamics", HttpStats(requests=100))
    now[0] += 12 * 3600
    metrics.observe_http("dynamics", HttpStats(requests=130))
    metrics.observe_dynamics_inner_operations(20)  # operations inside a $batch count one by one
    assert value(metrics.render().decode(), "crmbridge_dynamics_requests_24h") == 150
    now[0] += 12 * 3600 + 60
    assert value(metrics.render().decode(), "crmbridge_dynamics_requests_24h") == 50
    now[0] += 24 * 3600
    assert value(metrics.render().decode(), "crmbridge_dynamics_requests_24h") == 0


def test_a_flow_without_backlog_has_no_backlog_series() -> None:
    metrics = Metrics()
    metrics.observe_status(runner_status())
    assert ("crmbridge_backlog_records", frozenset({("flow", "contacts")})) in samples(metrics.render().decode())
    assert ("crmbridge_backlog_records", frozenset({("flow", "email-events")})) not in samples(
        metrics.render().decode()
    )


def test_a_flow_gone_from_the_status_loses_its_series() -> None:
    metrics = Metrics()
    metrics.observe_status(runner_status())
    fewer = runner_status()
    metrics.observe_status(RunnerStatus(flows=fewer.flows[1:], started_at=fewer.started_at))
    text = metrics.render().decode()
    assert 'flow="contacts"' not in text
    assert value(text, "crmbridge_flow_state", flow="email-events", state="running") == 1


def test_two_metrics_objects_do_not_share_a_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_pass("contacts", {"read": 3}, 1.0)
    assert "crmbridge_records_total{" not in second.render().decode()


@pytest.mark.anyio
async def test_healthz_is_ok_while_no_flow_failed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["flows"] == {"contacts": "idle", "email-events": "running", "optouts": "paused"}


@pytest.mark.anyio
async def test_healthz_is_503_naming_the_failing_flows(client: httpx.AsyncClient, status: FixedStatus) -> None:
    status.update(runner_status(failing=True))
    response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["failing"] == [{"name": "contacts", "error": "Campaign refused the batch: HTTP 500 RST-360011"}]
