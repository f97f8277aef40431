"""Dataverse emulator benchmark: seed N contacts, time the last 5,000-row page of a full read, measure the
full change-tracking read rate and the emulator process's peak RSS.

    .venv/bin/python -m bench.dynamics_emulator --contacts 1000000

The emulator runs as its own process (the CLI), so its RSS is measured alone; the client is plain httpx.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from crmbridge.emulators.dynamics import DEFAULT_CLIENT

RESULTS = Path(__file__).parent / "results" / "dynamics_emulator.json"
SELECT = "$select=fullname,emailaddress1,donotbulkemail,modifiedon"
HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0", "If-None-Match": "null"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_until_up(origin: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{origin}/_emulator/stats", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("emulator did not start")


def read_all(client: httpx.Client, url: str, prefer: str) -> dict[str, Any]:
    rows, pages, last_page_s = 0, 0, 0.0
    started = time.perf_counter()
    while url:
        page_started = time.perf_counter()
        response = client.get(url, headers={"Prefer": prefer})
        response.raise_for_status()
        body = response.json()
        last_page_s = time.perf_counter() - page_started
        rows += len(body["value"])
        pages += 1
        url = body.get("@odata.nextLink", "")
    seconds = time.perf_counter() - started
    return {"rows": rows, "pages": pages, "seconds": round(seconds, 3), "last_page_s": round(last_page_s, 4)}


def run(contacts: int) -> dict[str, Any]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-dynemu-") as folder:
        command = [sys.executable, "-m", "crmbridge", "emulate", "dynamics", "--port", str(port), "--db",
                   str(Path(folder) / "org.db"), "--limits", "enabled=false"]  # fmt: skip
        with subprocess.Popen(command, stdout=subprocess.DEVNULL) as emulator:
            try:
                wait_until_up(origin)
                seeded = httpx.post(f"{origin}/_emulator/seed", json={"contacts": contacts}, timeout=3600).json()
                form = {
                    "grant_type": "client_credentials",
                    "client_id": DEFAULT_CLIENT.client_id,
                    "client_secret": DEFAULT_CLIENT.client_secret,
                    "scope": f"{origin}/.default",
                }
                token = httpx.post(f"{origin}/{DEFAULT_CLIENT.tenant}/oauth2/v2.0/token", data=form).json()
                headers = {**HEADERS, "Authorization": f"Bearer {token['access_token']}"}
                with httpx.Client(headers=headers, timeout=600) as client:
                    full = read_all(client, f"{origin}/api/data/v9.2/contacts?{SELECT}", "odata.maxpagesize=5000")
                    tracking = read_all(
                        client,
                        f"{origin}/api/data/v9.2/contacts?{SELECT}",
                        "odata.track-changes,odata.maxpagesize=5000",
                    )
                rss = peak_rss_mb(emulator.pid)
            finally:
                emulator.terminate()
                emulator.wait(timeout=30)
    return {
        "contacts": contacts,
        "seed": seeded,
        "full_read": full,
        "last_page_seconds": full["last_page_s"],
        "change_tracking_read": tracking,
        "change_tracking_rows_per_second": round(tracking["rows"] / tracking["seconds"]),
        "emulator_peak_rss_mb": round(rss, 1),
        "nproc": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    args = parser.parse_args()
    result = run(args.contacts)
    result["command"] = f".venv/bin/python -m bench.dynamics_emulator --contacts {args.contacts}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(
        f"dynamics_emulator: {args.contacts:,} contacts seeded in {result['seed']['seconds']} s; last 5,000-row page"
        f" {result['last_page_seconds']} s; change-tracking read {result['change_tracking_rows_per_second']:,} rows/s;"
        f" emulator peak RSS {result['emulator_peak_rss_mb']} MB; nproc={result['nproc']}; {result['command']}"
    )


if __name__ == "__main__":
    main()
