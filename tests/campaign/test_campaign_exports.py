"""The export file reader: files written by the events emulator's workflow, plus hand-made malformed ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from acs_env import make_emulator

from crmbridge.campaign.exports import ExportBatch, ExportCursor, ExportReader, FolderSource, SftpSource
from crmbridge.emulators.campaign.events import DeliverySpec, ExportSettings, ExportSftpServer, SftpAccount
from crmbridge.records import EventType

HEADER = "broadlog_id\tevent_date\tstatus\tfailure_type\tfailure_reason\taddress\tprofile_external_id\tdelivery_id"
# Literal file: line numbers matter (line 1 is the header).
DELIVERY_FILE = "\n".join(
    [
        HEADER,
        "8812345\t2025-03-01T09:15:02.000Z\tSent\t\tNot defined\tann@example.com\tc-1\tDM190",  # 2 ok
        "8812346\tyesterday\tSent\t\t\tbob@example.com\tc-2\tDM190",  # 3 bad date
        "8812347\t2025-03-01T09:15:04.000Z\tSent\tonly six columns\tx\ty",  # 4 wrong column count
        "8812348\t2025/03/01 09:15:05\tFailed\tHard\tUser unknown\tcy@example.com\tc-4\tDM190",  # 5 ok bounce
        "8812349\t2025-03-01T09:15:06.000Z\tQueued\t\t\tdan@example.com\tc-5\tDM190",  # 6 unknown status
        "8812350\t2025-03-01T09:15:07.000Z\tFailed\tIgnored\tDuplicate\teve@example.com\tc-6\tDM190",  # 7 skipped
        "\t2025-03-01T09:15:08.000Z\tSent\t\t\tfay@example.com\tc-7\tDM190",  # 8 no broadlog id
    ]
)


async def read_all(reader: ExportReader, cursor: ExportCursor | None = None) -> list[ExportBatch]:
    return [batch async for batch in reader.batches(cursor)]


@pytest.mark.anyio
async def test_malformed_rows_are_reported_with_file_and_line_and_good_rows_are_read(tmp_path: Path) -> None:
    (tmp_path / "delivery_logs_20250301_091500.txt").write_text(DELIVERY_FILE + "\n", encoding="utf-8")
    batches = await read_all(ExportReader(FolderSource(tmp_path), settle_seconds=0))
    events = [event for batch in batches for event in batch.events]
    malformed = [str(row) for batch in batches for row in batch.malformed]
    assert [(e.event_type, e.broadlog_id, e.source_position) for e in events] == [
        (EventType.SEND, "8812345", "delivery_logs_20250301_091500.txt#L2"),
        (EventType.BOUNCE, "8812348", "delivery_logs_20250301_091500.txt#L5"),
    ]
    assert events[1].bounce_type == "hard"
    assert events[1].bounce_reason == "User unknown"
    assert malformed == [
        "delivery_logs_20250301_091500.txt:3: event_date 'yesterday' is not a date",
        "delivery_logs_20250301_091500.txt:4: 6 columns where the header has 8",
        "delivery_logs_20250301_091500.txt:6: unknown delivery status 'Queued'",
        "delivery_logs_20250301_091500.txt:8: broadlog_id is empty",
    ]
    assert sum(batch.skipped for batch in batches) == 1
    assert batches[-1].cursor.done == {"delivery_logs_20250301_091500.txt"}


@pytest.mark.anyio
async def test_resume_from_file_and_line_and_never_read_a_finished_file_again(tmp_path: Path) -> None:
    (tmp_path / "delivery_logs_20250301_091500.txt").write_text(DELIVERY_FILE + "\n", encoding="utf-8")
    reader = ExportReader(FolderSource(tmp_path), batch_size=2, settle_seconds=0)
    first = await read_all(reader)
    assert first[0].cursor == ExportCursor(frozenset(), "delivery_logs_20250301_091500.txt", 3)
    resumed = await read_all(reader, ExportCursor.from_json(first[0].cursor.to_json()))
    seen_lines = [e.source_position for b in first[:1] + resumed for e in b.events] + [
        f"{m.file}#L{m.line}" for b in first[:1] + resumed for m in b.malformed
    ]
    assert sorted(seen_lines, key=lambda p: int(p.rsplit("L", 1)[1])) == [
        f"delivery_logs_20250301_091500.txt#L{n}" for n in (2, 3, 4, 5, 6, 8)
    ]  # line 7 is the skipped Ignored failure
    final = resumed[-1].cursor
    assert await read_all(reader, final) == []  # done files are not opened again


@pytest.mark.anyio
async def test_files_of_the_emulator_workflow_are_read_including_gzip_and_partial_uploads(tmp_path: Path) -> None:
    env = make_emulator(seed_profiles=40)
    folder = tmp_path / "exports"
    env.hub.configure_exports(ExportSettings(folder=folder, compress=True, partial="growing"))
    spec = DeliverySpec("Camp1", "Campaign 1", "DM1", "Delivery 1", env.settings.clock.now(), seed=3)
    env.hub.simulate_delivery(spec, env.context.storage.delivery_targets(count=30))
    env.settings.clock.advance(4 * 86400)
    env.hub.release_due()  # the export workflow runs as time passes
    written = env.hub.exporter.partial_uploads
    assert written  # still being uploaded: cut short under their final names
    reader = ExportReader(FolderSource(folder), settle_seconds=3600)
    assert await read_all(reader) == []
    assert sorted(reader.still_uploading) == sorted(path.name for path in written)

    env.hub.complete_partial_exports()
    assert await read_all(reader) == []  # just finished: read once its size held still for one pass
    batches = await read_all(reader)
    events = [event for batch in batches for event in batch.events]
    assert not [row for batch in batches for row in batch.malformed]
    released = len(env.hub.store.released_rows("delivery", None, env.settings.clock.now())) + len(
        env.hub.store.released_rows("tracking", None, env.settings.clock.now())
    )
    skipped = sum(batch.skipped for batch in batches)
    assert len(events) + skipped == released
    assert {event.event_type for event in events} >= {EventType.SEND, EventType.OPEN}
    assert all(event.delivery_id == "DM1" for event in events)
    env.hub.close()


@pytest.mark.anyio
async def test_uploads_with_a_temporary_name_or_a_cut_gzip_stream_are_left_for_later(tmp_path: Path) -> None:
    data = gzip.compress((DELIVERY_FILE + "\n").encode())
    (tmp_path / "delivery_logs_20250301_091500.txt.gz.part").write_bytes(data)
    (tmp_path / "delivery_logs_20250301_101500.txt.gz").write_bytes(data[: len(data) // 2])
    reader = ExportReader(FolderSource(tmp_path), settle_seconds=0)  # judged by content only
    assert await read_all(reader) == []
    assert reader.still_uploading == ["delivery_logs_20250301_101500.txt.gz"]
    (tmp_path / "delivery_logs_20250301_101500.txt.gz").write_bytes(data)
    events = [event for batch in await read_all(reader) for event in batch.events]
    assert len(events) == 2


@pytest.mark.anyio
async def test_sftp_source_lists_and_reads_export_files_over_127_0_0_1(tmp_path: Path) -> None:
    folder = tmp_path / "sftp"
    remote = folder / "exports"
    remote.mkdir(parents=True)
    (remote / "delivery_logs_20250301_091500.txt").write_text(DELIVERY_FILE + "\n", encoding="utf-8")
    (remote / "notes.csv").write_text("not an export\n", encoding="utf-8")
    import asyncssh

    async with ExportSftpServer(folder, SftpAccount("acs", password="sftp-secret")) as server:
        known = asyncssh.import_known_hosts(f"[127.0.0.1]:{server.port} {server.host_public_key}\n")
        source = SftpSource(
            "127.0.0.1", port=server.port, username="acs", password="sftp-secret", known_hosts=known,
            remote_dir="/exports",
        )  # fmt: skip
        async with source:
            batches = await read_all(ExportReader(source, settle_seconds=0))
    events = [event for batch in batches for event in batch.events]
    assert [event.broadlog_id for event in events] == ["8812345", "8812348"]
    assert len([row for batch in batches for row in batch.malformed]) == 4


@pytest.mark.anyio
async def test_a_recent_file_is_read_only_after_its_size_held_still_for_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "delivery_logs_20250301_091500.txt"
    lines = (DELIVERY_FILE + "\n").splitlines(keepends=True)
    path.write_text("".join(lines[:3]), encoding="utf-8")  # the upload paused on a line boundary
    reader = ExportReader(FolderSource(tmp_path), settle_seconds=3600)
    assert await read_all(reader) == []
    path.write_text("".join(lines), encoding="utf-8")  # it went on
    assert await read_all(reader) == []
    batches = await read_all(reader)  # unchanged since the previous pass: complete
    assert [event.broadlog_id for batch in batches for event in batch.events] == ["8812345", "8812348"]


@pytest.mark.anyio
async def test_quoted_values_crlf_lines_and_bytes_of_another_encoding(tmp_path: Path) -> None:
    rows = [
        b"tracking_log_id,event_date,url_type,url_label,url_source,profile_email",
        b'1,2025-03-01T09:15:02.000Z,Email click,"Shop, now","https://x.example/?a=1,2",a@example.com',
        b"2,2025-03-01T09:15:03.000Z,Open,,,caf\xe9@example.com",  # Latin-1 byte in a UTF-8 file
        b"3,2025-03-01T09:15:04.000Z,Mirror page,,https://x.example/m,b@example.com",
    ]
    (tmp_path / "tracking_logs_20250301_091500.txt").write_bytes(b"\r\n".join(rows) + b"\r\n")
    [batch] = await read_all(ExportReader(FolderSource(tmp_path), settle_seconds=0))
    [click] = batch.events
    assert (click.url_label, click.url) == ("Shop, now", "https://x.example/?a=1,2")
    assert [str(row) for row in batch.malformed] == ["tracking_logs_20250301_091500.txt:3: not valid utf-8"]
    assert batch.skipped == 1  # the mirror-page click is not synced by default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T09:15:02.000Z", "2025-03-01T09:15:02+00:00"),
        ("2025-03-01T09:15:02.5Z", "2025-03-01T09:15:02.500000+00:00"),
        ("2025/03/01 09:15:05", "2025-03-01T09:15:05+00:00"),
        ("2025-03-01 11:15:05+02:00", "2025-03-01T09:15:05+00:00"),
        ("2025-03-01", "2025-03-01T00:00:00+00:00"),
        ("2025-02-30T00:00:00Z", None),
        ("01/03/2025", None),
    ],
)
def test_export_dates_are_read_in_the_documented_formats(text: str, expected: str | None) -> None:
    from crmbridge.campaign.export_rows import parse_export_datetime

    parsed = parse_export_datetime(text)
    assert (parsed.isoformat() if parsed else None) == expected
