"""Reloading ``crmbridge.yaml`` while ``crmbridge run`` runs: watch the file, validate it, swap what changed.

The file is polled (its content, not only its mtime) and checked at once on SIGHUP. A file that does not validate is
logged with its problems and ignored: the configuration in force stays. Connection settings (Dynamics, Campaign,
the state store URL, the dashboard's address, token and log format) belong to connections opened at start: a change
to them is logged as needing a restart and is not applied; everything else is applied by restarting only the loops
whose settings changed (see :mod:`crmbridge.engine.schedule`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.exceptions import ConfigError

if TYPE_CHECKING:
    from crmbridge.engine.schedule import ReloadPlan, Schedule

__all__ = ["ConfigWatch", "effective_config", "reload_from_file", "restart_only_changes", "watch_config"]

log = structlog.get_logger(__name__)

_SERVICE_RESTART_ONLY = ("host", "port", "dashboard_token", "log_format")


@dataclass
class ConfigWatch:
    """Where the configuration file is, how often it is polled, and the event SIGHUP sets to check it at once."""

    path: Path
    poll_seconds: float = 2.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    on_reload: Callable[[CrmbridgeConfig], None] | None = None  # e.g. the dashboard shows the new mappings


def restart_only_changes(old: CrmbridgeConfig, new: CrmbridgeConfig) -> list[str]:
    """The changed settings that only a restart applies (pure); secrets compare by value."""
    changed = [section for section in ("dynamics", "campaign") if getattr(old, section) != getattr(new, section)]
    if old.state.url != new.state.url:
        changed.append("state.url")
    changed += [f"service.{n}" for n in _SERVICE_RESTART_ONLY if getattr(old.service, n) != getattr(new.service, n)]
    return changed


def effective_config(old: CrmbridgeConfig, new: CrmbridgeConfig) -> CrmbridgeConfig:
    """``new`` with the restart-only settings of ``old``: what a running service can apply (pure)."""
    service = new.service.model_copy(update={name: getattr(old.service, name) for name in _SERVICE_RESTART_ONLY})
    return new.model_copy(
        update={
            "dynamics": old.dynamics,
            "campaign": old.campaign,
            "state": new.state.model_copy(update={"url": old.state.url}),
            "service": service,
        }
    )


async def reload_from_file(path: Path, schedule: Schedule) -> ReloadPlan | None:
    """Load, validate and apply ``path``; None (and the old configuration stays) when it does not validate."""
    try:
        new = load_config(path)
    except ConfigError as error:
        log.error("config.reload_refused", file=str(path), error=str(error), detail="the configuration in force stays")
        return None
    old = schedule.runner.config
    restart_only = restart_only_changes(old, new)
    if restart_only:
        log.warning(
            "config.restart_required",
            file=str(path),
            settings=restart_only,
            detail="these settings are kept as they were until crmbridge run is restarted",
        )
    plan = await schedule.reload(effective_config(old, new))
    log.info(
        "config.reloaded",
        file=str(path),
        started=list(plan.start),
        stopped=list(plan.stop),
        restarted=list(plan.restart),
        unchanged=list(plan.keep),
    )
    return plan


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None  # being replaced, or gone: looked at again at the next poll


async def watch_config(watch: ConfigWatch, schedule: Schedule) -> None:
    """Poll ``watch.path`` (and wake on SIGHUP); each new content is loaded and, if valid, applied. Runs until
    cancelled."""
    seen = _digest(watch.path)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.wake.wait(), timeout=watch.poll_seconds)
        forced = watch.wake.is_set()
        watch.wake.clear()
        current = _digest(watch.path)
        if current is None or (current == seen and not forced):
            continue
        seen = current
        plan = await reload_from_file(watch.path, schedule)
        if plan is not None and watch.on_reload is not None:
            watch.on_reload(schedule.runner.config)
