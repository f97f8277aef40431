"""What the runner and the CLI may import from crmbridge.web is pinned: a change to it is deliberate."""

from __future__ import annotations

import crmbridge.web


def test_web_package_exports_exactly_the_curated_names() -> None:
    assert sorted(crmbridge.web.__all__) == [
        "DEFAULT_DYNAMICS_DAILY_ENTITLEMENT",
        "FixedStatus",
        "FlowKind",
        "FlowState",
        "FlowStatus",
        "Metrics",
        "RunnerStatus",
        "StatusSource",
        "WebServer",
        "campaign_engine_calls",
        "create_web_app",
        "serve_web",
    ]
    for name in crmbridge.web.__all__:
        assert getattr(crmbridge.web, name) is not None
