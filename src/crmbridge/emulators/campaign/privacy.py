"""``privacy/privacyTool`` requests and their status life cycle (campaign-standard-api.md §7.1).

A request moves ``new`` -> ``processing`` -> ``complete`` (or ``errorDataNotFound`` when nothing matched), one
step per ``privacy_step_s`` of emulator time (the real pace is undocumented: inferred). A completed ``delete``
removes the matching profiles; the default namespace reconciles on email (inferred).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crmbridge.emulators.campaign import errors
from crmbridge.emulators.campaign.keys import PKeyCodec
from crmbridge.emulators.campaign.settings import Clock, format_datetime
from crmbridge.emulators.campaign.storage import Storage

__all__ = ["PrivacyRequests"]

REGULATIONS = ("gdpr", "ccpa", "pdpa", "lgpd")
TYPES = ("access", "delete")
RESOURCE = "privacyRequest"


class PrivacyRequests:
    """Owns the privacy request table; statuses advance lazily whenever requests are read."""

    def __init__(self, storage: Storage, pkeys: PKeyCodec, clock: Clock, step_s: float) -> None:
        self.storage, self.pkeys, self.clock, self.step_s = storage, pkeys, clock, step_s
        self.create_table()

    def create_table(self) -> None:
        self.storage.db.execute(
            """CREATE TABLE IF NOT EXISTS privacy_request (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, namespaceName TEXT NOT NULL,
                reconciliationValue TEXT NOT NULL, regulation TEXT NOT NULL, label TEXT NOT NULL, type TEXT NOT NULL,
                status TEXT NOT NULL, created TEXT NOT NULL, lastModified TEXT NOT NULL, submitted REAL NOT NULL,
                data TEXT NOT NULL DEFAULT '')"""
        )

    def reset(self) -> None:
        self.storage.db.execute("DROP TABLE IF EXISTS privacy_request")
        self.create_table()

    # --- life cycle ------------------------------------------------------------------------------------------

    def settle(self) -> None:
        """Advance every unfinished request to the status its age calls for."""
        now = self.clock.now()
        rows = self.storage.db.execute(
            "SELECT * FROM privacy_request WHERE status IN ('new', 'processing') ORDER BY id"
        ).fetchall()
        for row in rows:
            age = now.timestamp() - float(row["submitted"])
            if age >= 2 * self.step_s:
                self._finish(dict(row), now)
            elif age >= self.step_s and row["status"] == "new":
                self._set(int(row["id"]), "processing", now)

    def _set(self, row_id: int, status: str, now: datetime, data: str | None = None) -> None:
        self.storage.db.execute(
            "UPDATE privacy_request SET status = ?, lastModified = ?, data = COALESCE(?, data) WHERE id = ?",
            (status, format_datetime(now), data, row_id),
        )

    def _finish(self, row: dict[str, Any], now: datetime) -> None:
        matches = self.storage.db.execute(
            "SELECT * FROM r_profile WHERE email = ? ORDER BY id", (row["reconciliationValue"],)
        ).fetchall()
        if not matches:
            self._set(int(row["id"]), "errorDataNotFound", now)
            return
        data = _access_document([dict(m) for m in matches])
        if row["type"] == "delete":
            spec = self.storage.schema.resources["profile"]
            for match in matches:
                self.storage.delete(spec, int(match["id"]))
        self._set(int(row["id"]), "complete", now, data)

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _json(self, row: sqlite3.Row, base: str) -> dict[str, Any]:
        pkey = self.pkeys.encode(RESOURCE, int(row["id"]))
        href = f"{base}/privacy/privacyTool/{pkey}"
        return {
            "PKey": pkey,
            "audit": "",
            "created": row["created"],
            "desc": "",
            "gdprRequestData": {"href": f"{href}/gdprRequestData/"},
            "href": href,
            "label": row["label"],
            "lastModified": row["lastModified"],
            "name": row["name"],
            "namespace": {"PKey": self.pkeys.encode("namespace", 1), "title": row["namespaceName"]},
            "namespaceName": row["namespaceName"],
            "privacyRequestData": {"href": f"{href}/privacyRequestData/"},
            "reconciliationValue": row["reconciliationValue"],
            "regulation": row["regulation"],
            "retryCount": 0,
            "status": row["status"],
            "title": f"{row['label']} ({row['name']})",
            "type": row["type"],
        }

    async def handle(self, request: Request, base: str, rest: list[str]) -> Response:
        self.settle()
        if not rest:
            if request.method == "POST":
                return await self._create(request, base)
            rows = self.storage.db.execute("SELECT * FROM privacy_request ORDER BY id").fetchall()
            return JSONResponse({"content": [self._json(r, base) for r in rows], "serverSidePagination": True})
        row_id = self.pkeys.decode(RESOURCE, rest[0])
        row = (
            self.storage.db.execute("SELECT * FROM privacy_request WHERE id = ?", (row_id,)).fetchone()
            if row_id is not None
            else None
        )
        if row is None:
            raise errors.not_found("Privacy request", rest[0])
        if len(rest) == 1 and request.method == "GET":
            return JSONResponse(self._json(row, base))
        if rest[1:] in (["privacyRequestData"], ["gdprRequestData"]) and request.method == "POST":
            if row["status"] != "complete" or row["type"] != "access":
                raise errors.CampaignError(500, f"{errors.RST_PREFIX} No data file for this request")  # (inferred)
            return JSONResponse(row["data"])  # a JSON string holding an XML document (§7.1)
        raise errors.unknown_resource()

    async def _create(self, request: Request, base: str) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise errors.CampaignError(500, f"{errors.RST_PREFIX} Unable to parse the JSON body") from None
        if not isinstance(body, dict):
            raise errors.CampaignError(500, f"{errors.RST_PREFIX} The JSON body must be an object")
        namespace = body.get("namespaceName") or body.get("namespace") or "defaultNamespace1"  # both spellings
        for required in ("name", "reconciliationValue", "regulation", "type"):
            if not isinstance(body.get(required), str) or not body[required]:
                raise errors.CampaignError(500, f"{errors.RST_PREFIX} The '{required}' property is mandatory")
        if body["regulation"] not in REGULATIONS:
            raise errors.invalid_enum(body["regulation"], "nms:gdprRequest", "regulation")
        if body["type"] not in TYPES:
            raise errors.invalid_enum(body["type"], "nms:gdprRequest", "type")
        now = self.clock.now()
        stamp = format_datetime(now)
        try:
            cursor = self.storage.db.execute(
                "INSERT INTO privacy_request (name, namespaceName, reconciliationValue, regulation, label, type, "
                "status, created, lastModified, submitted) VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?, ?)",
                (body["name"], namespace, body["reconciliationValue"], body["regulation"], str(body.get("label", "")),
                 body["type"], stamp, stamp, now.timestamp()),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise errors.duplicate_key("Privacy request", body["name"], "nmsgdprrequest_name") from None
        row = self.storage.db.execute("SELECT * FROM privacy_request WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return JSONResponse(self._json(row, base), status_code=201)


def _access_document(rows: list[dict[str, Any]]) -> str:
    """The access file: an XML document of the matching recipients (layout after §7.1, simplified)."""
    lines = ["<gdprRequestData>", '<table name="nms:recipient">']
    for row in rows:
        attributes = " ".join(
            f"{name}={quoteattr(str(row.get(name, '')))}" for name in ("email", "firstName", "lastName", "externalId")
        )
        lines.append(f"<row {attributes}/>")
    lines += ["</table>", "</gdprRequestData>"]
    return "".join(lines)
