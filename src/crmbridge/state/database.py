"""Connecting to the state database: URL rules, SQLite pragmas, one connection per store, migrations on open.

Calls through :class:`Database` are short and serialised by a lock, so one store can be shared by the tasks of an
asyncio program (or the threads they run sync calls in) without two transactions ever sharing a connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import URL, Connection, Engine, make_url

from crmbridge.exceptions import ConfigError

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "Database", "normalize_url"]

SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "crmbridge_write"
# Serialises migrations between processes opening the same PostgreSQL database at once (any constant works).
_PG_MIGRATION_LOCK_ID = 0x63726D62


def normalize_url(url: str) -> URL:
    """Parse a state URL: SQLite files and PostgreSQL through psycopg 3 are supported."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as error:
        raise ConfigError(f"state URL {url!r} is not a database URL: {error}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise ConfigError(f"state URL driver {driver!r} is not supported; use postgresql+psycopg://")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError(f"state URL driver {driver!r} is not supported; use sqlite:///path/to/state.db")
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("the state store needs a file (sqlite:///path/state.db): an in-memory one forgets")
        return parsed.set(drivername="sqlite+pysqlite")
    raise ConfigError(f"state URL {parsed.render_as_string()!r}: use sqlite:///path or postgresql+psycopg://...")


def _install_sqlite_behaviour(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and skips it for some statements; SQLAlchemy's documented
    # recipe hands BEGIN to us so a batch is exactly one transaction, and writers take the lock up front
    # (BEGIN IMMEDIATE) so they wait on busy_timeout instead of failing on a read-to-write upgrade.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _create_engine(url: URL) -> Engine:
    # One connection per store: calls are short and serialised by Database's lock, so a second one would idle.
    options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0}
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, **options)
        _install_sqlite_behaviour(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **options)


def _alembic_config(connection: Connection) -> Config:
    # No alembic.ini: the migrations ship inside the package, found by module path whatever the cwd.
    config = Config()
    config.set_main_option("script_location", "crmbridge.state:migrations")
    config.attributes["connection"] = connection
    return config


class Database:
    """An engine with one pooled connection, a lock around each use, and read/write transaction scopes."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self._engine = _create_engine(url)
        self._lock = threading.RLock()

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A short read-only transaction (a consistent snapshot on both backends)."""
        with self._lock, self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock, self._engine.connect() as connection:
            connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to call from several processes at once."""
        with self.writing() as connection:
            if self.backend == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK_ID})
            command.upgrade(_alembic_config(connection), "head")

    def revision(self) -> str | None:
        with self.reading() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        with self._lock:
            self._engine.dispose()
