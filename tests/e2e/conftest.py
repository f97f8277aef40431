"""Fixtures of the end-to-end tests: both emulators once per session, a clean org per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import DEFAULT_OPTOUTS, Emulators, ForkedCli, OptOutsSection, Org, clean_org

# Contacts seeded per test; the 5,000 contacts / 2,000 vehicles run under `pytest -m slow`.
E2E_CONTACTS = int(os.environ.get("CRMBRIDGE_E2E_CONTACTS", "300"))


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    running = Emulators.start(tmp_path_factory.mktemp("emulators"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def forked_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkedCli]:
    """The real CLI in forked processes, for tests that run it many times (see ``ForkedCli``)."""
    cli = ForkedCli(tmp_path_factory.mktemp("cli"))
    try:
        yield cli
    finally:
        cli.close()


@pytest.fixture
def make_org(emulators: Emulators, tmp_path: Path) -> Iterator[Callable[..., Org]]:
    """``make_org(contacts=..., vehicles_share=..., seed=..., optouts=...)``: reset both sides, seed, fresh state
    and config."""
    made: list[Org] = []

    def make(
        *,
        contacts: int = E2E_CONTACTS,
        vehicles_share: float = 0.4,
        seed: int = 11,
        optouts: OptOutsSection = DEFAULT_OPTOUTS,
    ) -> Org:
        directory = tmp_path / f"org{len(made)}"
        org = clean_org(
            emulators, directory, contacts=contacts, vehicles_share=vehicles_share, seed=seed, optouts=optouts
        )
        made.append(org)
        return org

    yield make
    for org in made:
        org.close()
