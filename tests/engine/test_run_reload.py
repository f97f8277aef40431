"""``crmbridge run`` reloads its configuration file while it runs, against both emulators in-process.

A changed mapping's loop is restarted (and the mapping replays, its delta link being bound to its columns) while an
unchanged one keeps its loop; an invalid file is logged and ignored; connection changes are logged as needing a
restart and not applied. Expectations come from the files written here and the state store, not from crmbridge's
mapping code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from crmbridge.config import CrmbridgeConfig, load_config
from crmbridge.engine.reload import ConfigWatch
from crmbridge.engine.runner import Runner
from crmbridge.engine.schedule import Schedule
from crmbridge.engine.table_spec import build_table_spec
from crmbridge.state import Flow
from tests.engine.ops_env import config_text, make_emulators

pytestmark = pytest.mark.anyio

MODEL_FIELD = "      - {dynamics: new_model, campaign: model}\n"


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):  # 30 s at most on a loaded machine; a condition never met fails instead of hanging
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def passes(runner: Runner, key: str) -> Callable[[], bool]:
    return lambda: runner.status[key].last_pass_at is not None


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_run_applies_a_changed_config_file_to_the_changed_flows_only(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(8)
    path = tmp_path / "crmbridge.yaml"
    original = config_text(tmp_path / "state.db", extra="service:\n  interval: PT0.1S\n")
    assert MODEL_FIELD in original
    path.write_text(original)
    config = load_config(path)

    async with emulators.services(config) as services:
        runner = Runner(services)
        schedule = Schedule(runner)
        watch = ConfigWatch(path, poll_seconds=0.02)
        reloaded: list[CrmbridgeConfig] = []
        watch.on_reload = reloaded.append
        with capture_logs() as logs:
            task = asyncio.create_task(schedule.run(watch))
            await until(passes(runner, "tables:vehicles"), "a first pass of both mappings")
            contacts_loop = schedule.loops["tables:contacts"]
            vehicles_task = schedule.loops["tables:vehicles"].task

            # 1. A changed mapping: only its loop restarts, and it replays under its new columns.
            path.write_text(original.replace(MODEL_FIELD, ""))
            await until(lambda: len(reloaded) == 1, "the reload of the changed file")
            assert schedule.loops["tables:contacts"] is contacts_loop and not contacts_loop.task.done()
            assert schedule.loops["tables:vehicles"].task is not vehicles_task and vehicles_task.done()
            new_spec = build_table_spec(reloaded[0], reloaded[0].mapping("vehicles"))
            assert "new_model" not in new_spec.columns

            def replayed() -> bool:
                checkpoint = services.store.checkpoint(Flow.TABLES, "vehicles")
                return checkpoint is not None and checkpoint.is_bound_to(new_spec.fingerprint)

            await until(replayed, "the changed mapping's replay under its new columns")
            [applied] = events(logs, "config.reloaded")
            assert (applied["restarted"], applied["started"], applied["stopped"]) == (["tables:vehicles"], [], [])

            # 2. A file that does not validate: logged with its problem, nothing changes.
            passes_before = contacts_loop.passes
            path.write_text(original.replace("deletes: propagate", "deletes: sometimes", 1))
            await until(lambda: len(events(logs, "config.reload_refused")) == 1, "the refusal of the bad file")
            [refused] = events(logs, "config.reload_refused")
            assert "deletes" in refused["error"] and refused["file"] == str(path)
            assert runner.config is reloaded[0] and len(reloaded) == 1
            await until(lambda: contacts_loop.passes > passes_before, "the old configuration still running")

            # 3. A connection setting: logged as needing a restart, not applied; the mapping edit is applied.
            campaign_secret = "client_id: crmbridge-emulator\n  client_secret: emulator-secret"
            assert campaign_secret in original
            changed = original.replace(
                campaign_secret, "client_id: crmbridge-emulator\n  client_secret: rotated-secret"
            )
            path.write_text(changed.replace("  - name: vehicles", "  - name: vehicles\n    enabled: false"))
            await until(lambda: len(reloaded) == 2, "the reload with a new Campaign secret")
            [restart] = events(logs, "config.restart_required")
            assert restart["settings"] == ["campaign"]
            assert runner.config.campaign.client_secret.get_secret_value() == "emulator-secret"
            assert "tables:vehicles" not in schedule.loops and "tables:vehicles" not in runner.status
            assert schedule.loops["tables:contacts"] is contacts_loop

            # 4. SIGHUP (the watch's wake event) checks the file at once, even unchanged: nothing restarts.
            watch.wake.set()
            await until(lambda: len(reloaded) == 3, "the reload on SIGHUP")
            assert events(logs, "config.reloaded")[-1]["restarted"] == []
            assert schedule.loops["tables:contacts"] is contacts_loop

            runner.stop()
            await task
    assert "rotated-secret" not in str(logs)
