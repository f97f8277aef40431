"""``campaign.keys_are_identification_keys``: new rows are POSTed without a lookup, and rows already in Campaign
are still found (through the duplicate-key error), against both emulators in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmbridge.config import CrmbridgeConfig, parse_config
from crmbridge.engine.runner import Runner
from tests.engine.ops_env import Emulators, config_text, make_emulators

CLIENT_LINE = "  client_id: crmbridge-emulator\n"  # the campaign section's


def load(state_path: Path, *, create_first: bool) -> CrmbridgeConfig:
    text = config_text(state_path)
    flag = "true" if create_first else "false"
    return parse_config(text.replace(CLIENT_LINE, f"{CLIENT_LINE}  keys_are_identification_keys: {flag}\n", 1))


async def _pass(emulators: Emulators, config: CrmbridgeConfig) -> tuple[int, int, dict[str, int]]:
    """Campaign requests and unchanged upserts of one tables pass, and the rows per resource afterwards."""
    async with emulators.services(config) as services:
        await Runner(services).tables_pass()
        stats = services.campaign.stats
        counts = {
            resource: len([row async for row in services.campaign.iter_records(resource)])
            for resource in ("profile", "cusVehicle")
        }
        return stats.http.requests, stats.unchanged, counts


@pytest.mark.anyio
async def test_create_first_saves_one_lookup_per_created_row(tmp_path: Path) -> None:
    looked_up, created_first = make_emulators(), make_emulators()
    await looked_up.seed(6)
    await created_first.seed(6)
    requests_with_lookup, _, rows = await _pass(looked_up, load(tmp_path / "a.db", create_first=False))
    requests_create_first, _, same_rows = await _pass(created_first, load(tmp_path / "b.db", create_first=True))
    assert same_rows == rows
    assert rows["profile"] == 6 and rows["cusVehicle"] > 0
    written = rows["profile"] + rows["cusVehicle"]
    # Each listing above is one page read after the pass; the pass itself differs by exactly one lookup per row.
    assert requests_with_lookup - requests_create_first == written


@pytest.mark.anyio
async def test_create_first_over_rows_already_in_campaign_finds_them_and_duplicates_nothing(tmp_path: Path) -> None:
    emulators = make_emulators()
    await emulators.seed(6)
    _, _, first = await _pass(emulators, load(tmp_path / "first.db", create_first=True))
    # A new state (lost, or profiles pre-filled by another tool): every row looks new, but Campaign has them all.
    _, unchanged, again = await _pass(emulators, load(tmp_path / "fresh.db", create_first=True))
    assert again == first
    assert unchanged == first["profile"] + first["cusVehicle"]  # found through PGS-220000, nothing rewritten
