"""Fixtures of the Campaign client tests: an emulator (core + events) and a client wired to it in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from acs_env import Emulator, client_for, make_emulator

from crmbridge.campaign.client import CampaignClient


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    env = make_emulator()
    yield env
    env.hub.close()


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[CampaignClient]:
    async with client_for(emulator) as campaign:
        yield campaign
