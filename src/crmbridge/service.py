"""Wires the runner to the dashboard, /metrics and /healthz (used by ``crmbridge run`` and ``crmbridge demo``).

The engine does not know the web layer and the web layer does not know the engine: this module, at the top
beside ``cli.py``, turns the runner's flow states into the web's status snapshot and feeds the metrics.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from rich.console import Console

from crmbridge import event_loop
from crmbridge.config import CrmbridgeConfig
from crmbridge.engine.reload import ConfigWatch
from crmbridge.engine.runner import Runner, Services
from crmbridge.exceptions import CrmbridgeError
from crmbridge.logs import configure_logging
from crmbridge.web import FlowStatus, Metrics, RunnerStatus, WebServer, create_web_app, serve_web
from crmbridge.web.status import FlowKind, FlowState

__all__ = ["Dashboard", "RunnerStatusSource", "run_service", "start_dashboard"]

_STATES = {"idle": "idle", "running": "running", "failed": "failed", "stopped": "paused"}


class RunnerStatusSource:
    """The runner's flows as the web layer's snapshot; client HTTP counters go to the metrics on each read."""

    def __init__(self, runner: Runner, services: Services, metrics: Metrics) -> None:
        self.runner = runner
        self.services = services
        self.metrics = metrics
        self.started_at = datetime.now(UTC)

    def status(self) -> RunnerStatus:
        self.metrics.observe_http("dynamics", self.services.dataverse.session.stats)
        self.metrics.observe_http("campaign", self.services.campaign.stats.http)
        flows = [
            FlowStatus(
                name=state.name,
                kind=cast(FlowKind, state.kind),
                state=cast(FlowState, _STATES.get(state.state, "idle")),
                last_pass_at=state.last_pass_at,
                last_counts=dict(state.last_counts),
                last_error=state.last_error,
                lag_seconds=state.lag_seconds,
                next_run_at=state.next_run_at,
            )
            for state in self.runner.status.values()
        ]
        return RunnerStatus(flows, self.started_at)


@dataclass
class Dashboard:
    server: WebServer
    metrics: Metrics
    app: Any  # the Starlette app: its ``state.dashboard`` holds the configuration the page shows

    @property
    def url(self) -> str:
        return self.server.url

    def show_config(self, config: CrmbridgeConfig) -> None:
        """After a reload: the dashboard's "mappings in force" are the new ones."""
        self.app.state.dashboard.config = config

    async def stop(self) -> None:
        await self.server.stop()


async def start_dashboard(runner: Runner, services: Services, *, port: int | None = None) -> Dashboard:
    """Serve the dashboard for this runner on the configured address (``port=0``: any free port)."""
    config = services.config
    metrics = Metrics()

    def on_pass(key: str, counts: dict[str, int], seconds: float, failed: bool) -> None:
        metrics.observe_pass(key, counts, seconds, failed=failed)

    runner.pass_listeners.append(on_pass)
    token = config.service.dashboard_token.get_secret_value() if config.service.dashboard_token else None
    app = create_web_app(services.store, RunnerStatusSource(runner, services, metrics), metrics, config, token=token)
    server = await serve_web(app, config.service.host, config.service.port if port is None else port)
    return Dashboard(server, metrics, app)


def run_service(config: CrmbridgeConfig, console: Console, config_path: Path | None = None) -> int:
    """Every flow on its interval until SIGTERM/SIGINT; the batch in hand commits or is abandoned whole.

    With ``config_path`` the file is watched (and checked at once on SIGHUP): a valid change is applied to the
    flows it concerns while the others keep running.
    """
    configure_logging(config.service.log_format)

    async def work() -> None:
        async with Services.open(config) as services:
            runner = Runner(services)
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()

            def request_stop() -> None:
                grace = runner.config.service.shutdown_grace.total_seconds()  # as reloaded, if it was
                console.print(f"stopping: finishing the batch in hand (at most {grace:.0f} s)")
                runner.stop()
                # After the grace period the pass is cancelled: its batch is abandoned, never half-committed.
                loop.call_later(grace, lambda: task.cancel() if task is not None else None)

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, request_stop)
            dashboard = await start_dashboard(runner, services)
            watch = None
            if config_path is not None:
                watch = ConfigWatch(config_path, on_reload=dashboard.show_config)
                loop.add_signal_handler(signal.SIGHUP, watch.wake.set)
            console.print(f"crmbridge running {len(runner.status)} flows; dashboard {dashboard.url}/ ; Ctrl-C stops")
            try:
                await runner.run_forever(watch)
            finally:
                await dashboard.stop()

    try:
        event_loop.run(work())
    except asyncio.CancelledError:
        return 0
    except CrmbridgeError as error:
        console.print(f"[red]stopped:[/red] {error}")
        return 1
    return 0
