"""Child process for the kill test: opens the store, starts a big batch commit and blocks just before COMMIT.

It prints ``inside-transaction`` once every row of the batch is written but not committed, then sleeps until the
parent test SIGKILLs it. Run as ``python killed_writer.py STATE_URL ROWS``.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crmbridge.state import Batch, Flow, LinkRow, StateStore

armed = threading.Event()


def hold_before_commit(_connection: Connection) -> None:
    # SQLAlchemy fires "commit" after the statements ran and before the driver's COMMIT.
    if armed.is_set():
        print("inside-transaction", flush=True)
        time.sleep(300)


def main(url: str, rows: int) -> None:
    now = datetime.now(UTC)
    store = StateStore.open(url)
    sa.event.listen(Engine, "commit", hold_before_commit)
    batch = Batch(Flow.TABLES, "contacts")
    batch.upsert_links(LinkRow("contacts", f"id-{n:06}", f"key-{n}", "hash-from-killed-run", now) for n in range(rows))
    batch.mark_deleted("contacts", [f"id-{n:06}" for n in range(10)], now)
    batch.advance_to("delta-from-killed-run", config_fingerprint="select-v2")
    armed.set()
    store.commit(batch)
    print("committed", flush=True)  # never reached: the parent kills this process first


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
