"""Journal positions grow for ever, even after a purge of the whole journal (adobe-io-events-and-exports.md §A.7).

Regression: SQLite reused the rowids a full purge freed, so events published afterwards sat at or below the purge
mark, where no reader ever saw them (the fault matrix lost a whole delivery this way).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Sandbox


@pytest.mark.anyio
async def test_events_published_after_a_full_purge_get_positions_past_the_purge_mark(tmp_path: Path) -> None:
    sandbox = Sandbox.create(tmp_path / "state.db")
    await sandbox.seed(6)
    async with sandbox.runner() as runner:
        await runner.tables_pass()  # the delivery targets synced profiles
    await sandbox.deliver(count=6, seed=1, delivery_id="DM1")
    expired = await sandbox.expire_journal()
    await sandbox.deliver(count=6, seed=2, delivery_id="DM2")
    async with sandbox.acs() as http:
        stats = (await http.get("/_emulator/journal")).json()
    assert expired > 0
    assert stats["events"] > 0
    assert stats["expiredThroughSeq"] == expired
    assert stats["headSeq"] == expired + stats["events"]
