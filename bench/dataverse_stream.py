"""Benchmark: memory stays flat while the Dataverse client streams 1,000,000 rows page by page.

A child process serves, over HTTPS, the Dataverse emulator (Entra token endpoint, discovery, WhoAmI) with one
route replaced: ``GET contacts`` answers generated pages of documented shape (``@odata.nextLink`` with a
``$skiptoken`` paging cookie, FormattedValue annotations), so a million rows need no million-row seed (seeding
the emulator's SQLite takes minutes on a shared 2-core machine) and the server's memory stays out of the
measurement. The parent authenticates with MSAL, iterates the pages, checks every row arrives once and in order,
and samples its own resident memory as it goes. Run:
``.venv/bin/python -m bench.dataverse_stream [--rows N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from starlette.routing import BaseRoute, Match, NoMatchFound

from bench.served_emulator import served_emulator
from crmbridge.config import DynamicsSettings
from crmbridge.dynamics.client import DataverseClient
from crmbridge.emulators.dynamics import DEFAULT_CLIENT

RESULT = Path(__file__).parent / "results" / "dataverse_stream.json"
NAMESPACE = uuid.UUID("0b5c1f9e-7a1d-4c55-8f0e-5d8f3a9c2b71")
_PAGE = re.compile(r'pagenumber="(\d+)"')
_MAXPAGESIZE = re.compile(r"odata\.maxpagesize=(\d+)")


def _row(index: int) -> dict[str, Any]:
    state = index % 7 == 0
    return {
        "@odata.etag": f'W/"{100000 + index}"',
        "contactid": str(uuid.uuid5(NAMESPACE, str(index))),
        "fullname": f"Zoë O'Neil {index}",
        "emailaddress1": f"zoe.oneil+{index}@example.com",
        "telephone1": f"+1 555 {index % 10000:04d}",
        "jobtitle": "Head of Marketing",
        "donotbulkemail": index % 5 == 0,
        "donotbulkemail@OData.Community.Display.V1.FormattedValue": "Do Not Allow" if index % 5 == 0 else "Allow",
        "statecode": int(state),
        "statecode@OData.Community.Display.V1.FormattedValue": "Inactive" if state else "Active",
        "modifiedon": "2026-11-25T10:00:00Z",
    }


class GeneratedContacts(BaseRoute):
    """A route ahead of the emulator's own: ``GET /api/data/v9.2/contacts`` answers generated pages."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        wanted = scope.get("method") == "GET" and scope.get("path") == "/api/data/v9.2/contacts"
        return (Match.FULL if wanted else Match.NONE), {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not headers.get("authorization", "").startswith("Bearer "):
            await _respond(send, 401, {"error": {"code": "0x80072560", "message": "Bearer token is required."}})
            return
        size_match = _MAXPAGESIZE.search(headers.get("prefer", ""))
        size = min(5000, int(size_match.group(1))) if size_match else 5000
        query = scope["query_string"].decode("latin-1")
        page_match = _PAGE.search(unquote(query))
        page = int(page_match.group(1)) if page_match else 1
        start = (page - 1) * size
        origin = f"https://{headers['host']}/api/data/v9.2/"
        body: dict[str, Any] = {
            "@odata.context": f"{origin}$metadata#contacts(fullname,emailaddress1)",
            "value": [_row(i) for i in range(start, min(start + size, self.rows))],
        }
        if start + size < self.rows:
            cookie = f'<cookie pagenumber="{page + 1}" pagingcookie="" istracking="False" />'
            select = query.split("&$skiptoken=")[0]
            body["@odata.nextLink"] = f"{origin}contacts?{select}&$skiptoken={quote(cookie, safe='')}"
        await _respond(send, 200, body)


async def _respond(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json; odata.metadata=minimal"), (b"odata-version", b"4.0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def serve(rows: int) -> None:
    """Child process: print where to connect, then serve until the parent closes our stdin."""
    with served_emulator() as served:
        served.app.router.routes.insert(0, GeneratedContacts(rows))
        print(json.dumps({"origin": served.origin, "ca": str(served.ca_path)}), flush=True)
        sys.stdin.read()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def stream(settings: DynamicsSettings, rows: int) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    every = max(1, rows // 10)
    received = 0
    async with DataverseClient.from_settings(settings) as client:
        started = time.perf_counter()
        async for page in client.iter_pages("contacts", select=["fullname", "emailaddress1"], formatted_values=True):
            for row in page.rows:
                if row["contactid"] != str(uuid.uuid5(NAMESPACE, str(received))):
                    raise AssertionError(f"row {received} missing, repeated or out of order")
                received += 1
                if received % every == 0:
                    samples.append({"rows": received, "rss_mb": round(_rss_mb(), 1)})
        seconds = time.perf_counter() - started
    if received != rows:
        raise AssertionError(f"received {received} rows, expected {rows}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": received,
        "seconds": round(seconds, 1),
        "rows_per_s": round(received / seconds),
        "peak_rss_mb": round(peak_mb, 1),
        "rss_at_10pct_mb": samples[0]["rss_mb"],
        "rss_at_100pct_mb": samples[-1]["rss_mb"],
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.rows)
        return
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.dataverse_stream", "--serve", "--rows", str(args.rows)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        where = json.loads(child.stdout.readline())
        settings = DynamicsSettings(
            org_url=where["origin"],
            authority_host=where["origin"],
            tenant_id=DEFAULT_CLIENT.tenant,
            client_id=DEFAULT_CLIENT.client_id,
            client_secret=DEFAULT_CLIENT.client_secret,
            ca_bundle=where["ca"],
        )
        result = asyncio.run(stream(settings, args.rows))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    command = " ".join([".venv/bin/python -m bench.dataverse_stream", *sys.argv[1:]])
    report = {"benchmark": "dataverse_stream", "nproc": os.cpu_count(), "command": command, **result}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"dataverse_stream: {result['rows']} rows in {result['seconds']} s ({result['rows_per_s']} rows/s), "
        f"RSS {result['rss_at_10pct_mb']} MB at 10% -> {result['rss_at_100pct_mb']} MB at 100%, "
        f"peak {result['peak_rss_mb']} MB (nproc={os.cpu_count()}, {command})"
    )


if __name__ == "__main__":
    main()
