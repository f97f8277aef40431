"""State store write throughput: commit N batches of M links (each with its checkpoint) on SQLite and PostgreSQL.

    .venv/bin/python -m bench.state_store [--batches 100] [--links 5000] [--backends sqlite,postgresql]

PostgreSQL is ``CRMBRIDGE_TEST_PG_URL`` or postgresql+psycopg://postgres@127.0.0.1:5432/test, in a throwaway schema.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from crmbridge.state import Batch, Flow, LinkRow, StateStore

RESULTS = Path(__file__).parent / "results" / "state_store.json"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="crmbridge-bench-") as directory:
        yield f"sqlite:///{directory}/state.db"


@contextmanager
def postgresql_url() -> Iterator[str]:
    base = os.environ.get("CRMBRIDGE_TEST_PG_URL", DEFAULT_PG_URL)
    schema = f"crmbridge_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def run(url: str, batches: int, links: int) -> dict[str, float]:
    now = datetime.now(UTC)
    commit_seconds = 0.0
    started = time.perf_counter()
    with StateStore.open(url) as store:
        for number in range(batches):
            batch = Batch(Flow.TABLES, "contacts")
            first = number * links
            batch.upsert_links(
                LinkRow("contacts", f"{n:012}", f"CONTACT-{n}", f"{n:064x}", now) for n in range(first, first + links)
            )
            batch.advance_in_flight(f"https://org.example/api/data/v9.2/contacts?$skiptoken={number}")
            tick = time.perf_counter()
            store.commit(batch)
            commit_seconds += time.perf_counter() - tick
    total = time.perf_counter() - started
    rows = batches * links
    return {
        "rows": rows,
        "commit_seconds": round(commit_seconds, 3),
        "total_seconds": round(total, 3),
        "commit_rows_per_second": round(rows / commit_seconds),
        "end_to_end_rows_per_second": round(rows / total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--links", type=int, default=5000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    urls = {"sqlite": sqlite_url, "postgresql": postgresql_url}
    results: dict[str, object] = {
        "command": " ".join(shlex.quote(part) for part in [sys.executable, "-m", "bench.state_store", *sys.argv[1:]]),
        "nproc": os.cpu_count(),
        "batches": args.batches,
        "links_per_batch": args.links,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    summary = []
    for backend in args.backends.split(","):
        with urls[backend]() as url:
            results[backend] = outcome = run(url, args.batches, args.links)
        summary.append(f"{backend} {outcome['commit_rows_per_second']} rows/s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    line = f"state_store: {args.batches}x{args.links} links, {', '.join(summary)} (nproc {os.cpu_count()})"
    print(f"{line}: {results['command']}")


if __name__ == "__main__":
    main()
