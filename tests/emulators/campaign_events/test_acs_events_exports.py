"""Export files of delivery and tracking logs (§C.4–C.6 proposed layouts) and their SFTP access on 127.0.0.1."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from acs_events_app import simulate

from crmbridge.emulators.campaign.events import ExportSftpServer, ManualClock, SftpAccount

pytestmark = pytest.mark.anyio

# §C.6, "File 1: delivery logs" and "File 2: tracking logs", in the documented column order
DELIVERY_COLUMNS = [
    "broadlog_id", "event_date", "last_modified", "status", "failure_type", "failure_reason", "address",
    "profile_external_id", "profile_email", "profile_key", "delivery_id", "delivery_label", "delivery_date",
    "channel", "campaign_id", "campaign_label",
]  # fmt: skip
TRACKING_COLUMNS = [
    "tracking_log_id", "event_date", "url_type", "url_label", "url_source", "broadlog_id", "profile_external_id",
    "profile_email", "delivery_id", "delivery_label", "campaign_id",
]  # fmt: skip
XML_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")  # §C.5 XML date format with milliseconds
NAME = re.compile(r"(delivery|tracking)_logs_\d{8}_\d{6}(_\d+)?\.txt(\.gz)?")
RATES = {"bounce_rate": 0.1, "open_rate": 0.3, "click_rate": 0.3, "async_bounce_share": 0.5}


def parse(data: bytes, separator: str = "\t", compressed: bool = True) -> list[dict[str, str]]:
    text = (gzip.decompress(data) if compressed else data).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=separator)
    return list(reader)


def read_file(name: str) -> bytes:
    return Path(name).read_bytes()


def header(data: bytes, compressed: bool = True) -> list[str]:
    text = (gzip.decompress(data) if compressed else data).decode("utf-8")
    return text.split("\n", 1)[0].split("\t")


async def configure(http: httpx.AsyncClient, **settings: Any) -> dict[str, Any]:
    response = await http.put("/_emulator/exports", json=settings)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_export_files_parse_with_the_documented_layout(
    http: httpx.AsyncClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    await configure(http, folder=str(folder))
    report = await simulate(http, target={"count": 120}, rates=RATES)
    clock.advance(timedelta(days=6))
    await http.post("/_emulator/exports/run")
    files = sorted(folder.iterdir())
    assert files
    assert all(NAME.fullmatch(path.name) for path in files)
    delivery_rows, tracking_rows = [], []
    for path in files:
        data = path.read_bytes()
        if path.name.startswith("delivery"):
            assert header(data) == DELIVERY_COLUMNS
            delivery_rows += parse(data)
        else:
            assert header(data) == TRACKING_COLUMNS
            tracking_rows += parse(data)
    statuses = Counter(row["status"] for row in delivery_rows)
    assert statuses == {"Sent": report["counts"]["send"], "Failed": report["counts"]["bounce"]}  # type: ignore[index]
    assert Counter(row["failure_type"] for row in delivery_rows if row["status"] == "Failed") == report["bouncesByType"]
    opens_and_clicks = report["counts"]["open"] + report["counts"]["click"]  # type: ignore[index]
    assert len(tracking_rows) == opens_and_clicks
    assert {row["url_type"] for row in tracking_rows} <= {"Open", "Email click", "Mirror page", "Opt-out"}
    for row in delivery_rows + tracking_rows:
        assert XML_DATE.fullmatch(row["event_date"])
        assert (row["delivery_id"], row["campaign_id"]) == ("DM190", "2019LoyaltyCamp")
    assert all(row["url_source"].startswith("https://") for row in tracking_rows if row["url_type"] != "Open")
    assert {row["address"] for row in delivery_rows} >= {"o'brien.0+news@exämple.com"}


async def test_a_late_bounce_shows_sent_in_one_file_and_failed_in_a_later_one(
    http: httpx.AsyncClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    await configure(http, folder=str(folder), interval_s=600)
    await simulate(http, target={"count": 100}, rates=RATES)
    clock.advance(timedelta(minutes=20))
    await http.post("/_emulator/exports/run")
    clock.advance(timedelta(days=6))
    await http.post("/_emulator/exports/run")
    status_files: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(folder.glob("delivery_logs_*")):
        for row in parse(path.read_bytes()):
            status_files.setdefault(row["broadlog_id"], []).append((row["status"], path.name))
    late = [seen for seen in status_files.values() if [status for status, _ in seen] == ["Sent", "Failed"]]
    assert late
    assert all(sent_file <= failed_file for (_, sent_file), (_, failed_file) in late)
    assert any(sent_file < failed_file for (_, sent_file), (_, failed_file) in late)


async def test_a_partial_upload_under_a_temporary_name_is_recognisable_and_completes(
    http: httpx.AsyncClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    await configure(http, folder=str(folder), partial="temp_name")
    await simulate(http, target={"count": 50}, rates=RATES)
    clock.advance(timedelta(days=6))
    written = (await http.post("/_emulator/exports/run")).json()["written"]
    assert written
    assert all(name.endswith(".txt.gz.part") for name in written)
    assert not list(folder.glob("*.gz"))
    with pytest.raises((EOFError, gzip.BadGzipFile, zlib.error)):
        gzip.decompress(read_file(written[0]))
    settings = (await http.get("/_emulator/exports")).json()
    assert {name.removesuffix(".part") for name in written} <= set(settings["partialUploads"])
    completed = (await http.post("/_emulator/exports/complete")).json()["completed"]
    assert sorted(completed) == sorted(settings["partialUploads"])
    assert not list(folder.glob("*.part"))
    assert all(parse(read_file(name)) for name in completed)


async def test_a_growing_file_has_its_final_name_but_an_incomplete_last_line(
    http: httpx.AsyncClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    await configure(http, folder=str(folder), partial="growing", compress=False, separator=";")
    await simulate(http, target={"count": 40}, rates=RATES)
    clock.advance(timedelta(days=6))
    written = [Path(name) for name in (await http.post("/_emulator/exports/run")).json()["written"]]
    assert all(path.name.endswith(".txt") for path in written)
    growing = written[0].read_bytes()
    assert not growing.endswith(b"\n")
    await http.post("/_emulator/exports/complete")
    complete = written[0].read_bytes()
    assert complete.startswith(growing)
    assert complete.endswith(b"\n")
    assert parse(complete, separator=";", compressed=False)


async def test_values_containing_the_separator_are_quoted(
    http: httpx.AsyncClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    await configure(http, folder=str(folder), compress=False, separator=",")
    await simulate(http, target={"count": 5}, delivery={"id": "DM7", "label": 'Spring, "best" offers'})
    clock.advance(timedelta(days=6))
    await http.post("/_emulator/exports/run")
    rows = [row for path in folder.glob("delivery_*") for row in parse(path.read_bytes(), ",", compressed=False)]
    assert rows
    assert {row["delivery_label"] for row in rows} == {'Spring, "best" offers'}


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"separator": "|"}, "separator"), ({"partial": "sometimes"}, "partial"), ({"colour": "red"}, "colour")],
)
async def test_bad_export_settings_get_400(http: httpx.AsyncClient, settings: dict[str, str], message: str) -> None:
    response = await http.put("/_emulator/exports", json=settings)
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_sftp_lists_and_downloads_export_files_over_loopback(
    http: httpx.AsyncClient, clock: ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    await configure(http, folder=str(folder))
    await simulate(http, target={"count": 30}, rates=RATES)
    clock.advance(timedelta(days=6))
    await http.post("/_emulator/exports/run")
    async with ExportSftpServer(folder, SftpAccount("acs-export", password="s3cret pass")) as server:
        known_hosts = asyncssh.import_known_hosts(f"[127.0.0.1]:{server.port} {server.host_public_key}")
        async with (
            asyncssh.connect(
                "127.0.0.1",
                server.port,
                username="acs-export",
                password="s3cret pass",
                known_hosts=known_hosts,
                client_keys=None,
                agent_path=None,
            ) as connection,
            connection.start_sftp_client() as sftp,
        ):
            names = sorted(name for name in await sftp.listdir(".") if name not in (".", ".."))
            assert names == sorted(path.name for path in folder.iterdir())
            async with sftp.open(names[0], "rb") as remote:
                downloaded = await remote.read()
    assert downloaded == (folder / names[0]).read_bytes()
    assert parse(downloaded)


async def test_sftp_refuses_a_wrong_password_and_accepts_an_authorised_key(tmp_path: Path) -> None:
    (tmp_path / "delivery_logs_20260302_090000.txt").write_text("broadlog_id\n1\n")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    public_line = client_key.export_public_key().decode()
    account = SftpAccount("acs-export", password="right", authorized_keys=(public_line,))
    async with ExportSftpServer(tmp_path, account) as server:
        common: dict[str, Any] = {"username": "acs-export", "known_hosts": None, "agent_path": None}
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect("127.0.0.1", server.port, password="wrong", client_keys=None, **common)
        async with (
            asyncssh.connect("127.0.0.1", server.port, client_keys=[client_key], **common) as connection,
            connection.start_sftp_client() as sftp,
        ):
            assert "delivery_logs_20260302_090000.txt" in await sftp.listdir(".")
