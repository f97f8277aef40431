"""Every state test runs on SQLite and on PostgreSQL; each PostgreSQL test gets its own schema, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crmbridge.state import StateStore

CI_PG_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def _reachable(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def _find_pg_url() -> tuple[str | None, str]:
    """The server to test against, or None with the reason to skip."""
    if explicit := os.environ.get("CRMBRIDGE_TEST_PG_URL"):
        return explicit, ""
    if not os.environ.get("CI"):
        return None, "PostgreSQL state tests run when CI or CRMBRIDGE_TEST_PG_URL is set"
    for url in CI_PG_URLS:
        if _reachable(url):
            return url, ""
    return None, "CI is set but no PostgreSQL answers at 127.0.0.1:5432 as postgres or root"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url, reason = _find_pg_url()
    if url is None:
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_schema_url(pg_base_url: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, uniquely named schema (search_path), dropped after the test."""
    schema = f"crmbridge_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(pg_base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    with StateStore.open(state_url) as opened:
        yield opened
