"""The daily backup job: archives in ``[backup] directory``, the newest ``keep`` kept,
each one audit-logged; only blobs the snapshot references go in."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailsvc.backup.archive import backup_job, header_queue_id, maildir_time
from mailsvc.config import load_settings
from mailsvc.db.models import AuditEntry, MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.jobs.context import JobContext
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM
from tests.backup.conftest import Archive


async def test_backup_job_keeps_the_newest_archives_and_audits_each(
    tmp_path: Path, db_url: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailsvc.toml").write_text(
        f'[database]\nurl = {json.dumps(db_url)}\n[backup]\ndirectory = "archives"\nkeep = 2\n',
        encoding="utf-8",
    )
    (home / "archives").mkdir()
    (home / "archives" / "notes.txt").write_text("not an archive", encoding="utf-8")
    settings = load_settings(home, environ={})
    blobs = BlobStore(settings.path(settings.paths.blob_root))
    kept = blobs.put(b"Subject: Cong van\r\n\r\nNoi dung\r\n")
    orphan = blobs.put(b"never committed")
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        session.add(
            MessageRecord(
                queue_id="0A1B2C3D4E5F",
                message_key=hashlib.sha256(b"k").hexdigest(),
                sha256=kept,
                size=30,
                recipient="vanthu@stttt.example.vn",
                direction="inbound",
                action="deliver",
                state="delivered",
            )
        )
    try:
        summaries = [
            await backup_job(
                JobContext(
                    settings, sessions, None, datetime(2026, 11, 21, hour, 30, tzinfo=VIETNAM)
                )
            )
            for hour in (1, 2, 3)
        ]
        with sessions() as session:
            entries = list(
                session.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action == "backup.create")
                    .order_by(AuditEntry.id)
                )
            )
    finally:
        engine.dispose()

    names = sorted(p.name for p in (home / "archives").iterdir())
    assert names == [
        "mailsvc-backup-20261121T023000+0700.tar.gz",
        "mailsvc-backup-20261121T033000+0700.tar.gz",
        "notes.txt",
    ]
    assert summaries[2].startswith("mailsvc-backup-20261121T033000+0700.tar.gz: ")
    assert summaries[2].endswith(
        "1 message rows, 0 Maildir messages, 1 blobs; 1 old archive(s) deleted"
    )
    assert [e.actor for e in entries] == ["job:backup"] * 3
    assert entries[2].details["deleted"] == ["mailsvc-backup-20261121T013000+0700.tar.gz"]
    assert (
        entries[2].details["sha256"]
        == hashlib.sha256((home / "archives" / names[1]).read_bytes()).hexdigest()
    )
    archive = Archive.read(home / "archives" / names[1])
    assert archive.blobs() == {kept} and orphan not in archive.blobs()
    assert archive.manifest["created_at"] == "2026-11-21T03:30:00+07:00"
    assert "home/mailsvc.toml" in archive.members
    assert not any(m.startswith("home/archives") for m in archive.members)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1732150800.M123456P42.mail,S=1153,W=1181:2,S", 1732150800.123456),
        ("1732150800.M5P42.mail,S=1153,W=1181", 1732150800.000005),
        ("1732150800.P42Q3M77.mail", 1732150800.000077),
        ("1732150800.mail", 1732150800.0),
        ("msg.1234", None),
    ],
)
def test_maildir_time_from_file_names(name: str, expected: float | None) -> None:
    got = maildir_time(name)
    assert got is None if expected is None else got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            b"Return-Path: <a@b>\nX-Mailsvc-Queue-Id: 0A1B2C3D4E5F\nSubject: x\n\nbody",
            "0A1B2C3D4E5F",
        ),
        (b"x-mailsvc-queue-id:\t0A1B\r\n\r\n", "0A1B"),
        (b"Subject: x\n\nX-Mailsvc-Queue-Id: in the body\n", None),
        (b"Subject: x\n\n", None),
    ],
)
def test_queue_id_is_read_from_the_header_only(head: bytes, expected: str | None) -> None:
    assert header_queue_id(head) == expected
