"""Shared fixtures: async tests run on asyncio through anyio's pytest plugin (no extra dependency)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crmbridge import redaction


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _secrets_registered_by_a_test_stay_in_that_test() -> Iterator[None]:
    """The redaction registry is process-wide: a config fuzz example that registers "contact" as a secret would
    otherwise redact "contacts" in a later test's log output. Restored after each test (test isolation only)."""
    with redaction._lock:
        saved = (set(redaction._secrets), redaction._secrets_pattern)
    yield
    with redaction._lock:
        redaction._secrets.clear()
        redaction._secrets.update(saved[0])
        redaction._secrets_pattern = saved[1]
