"""crmbridge's web face: the dashboard (flows, dead letters, conflicts, mappings), its JSON API, /metrics, /healthz.

The runner builds a :class:`Metrics`, implements :class:`StatusSource`, then calls
``await serve_web(create_web_app(store, runner, metrics, config, token=None))`` in its own event loop.
"""

from __future__ import annotations

from crmbridge.web.app import create_web_app
from crmbridge.web.metrics import DEFAULT_DYNAMICS_DAILY_ENTITLEMENT, Metrics, campaign_engine_calls
from crmbridge.web.serve import WebServer, serve_web
from crmbridge.web.status import FixedStatus, FlowKind, FlowState, FlowStatus, RunnerStatus, StatusSource

__all__ = [
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
