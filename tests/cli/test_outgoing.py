"""`mailsvc outgoing list|show|export` on a register filled through the services: a
document sent three days ago that one recipient answered and one did not; the
unanswered filter, the overdue job's report, the official columns in CSV/HTML/PDF."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import load_settings
from mailsvc.db.base import utcnow
from mailsvc.jobs.context import JobContext
from mailsvc.outgoing.register import (
    REGISTERED,
    OutgoingInput,
    RecipientInput,
    move_line,
    record_document,
    settle_outbound,
)
from mailsvc.register.reminders import overdue_reminders_job
from tests.cli.conftest import DOMAIN, Invoke

ANSWERING = "vanthu@stc.thunghiem.gov.vn"
SILENT = "vanthu@sxd.thunghiem.gov.vn"


def seed(sessions: sessionmaker[Session], *, days_ago: float = 3) -> int:
    when = utcnow() - timedelta(days=days_ago)
    with sessions.begin() as session:
        document = record_document(
            session,
            OutgoingInput(
                sender=f"annv@{DOMAIN}",
                created_at=when,
                message_id=f"<35@{DOMAIN}>",
                message_key="k",
                queue_id="Q1",
                subject="V/v triển khai chuyển đổi số",
                blob_sha256="0" * 64,
                recipients=(RecipientInput(ANSWERING, 1), RecipientInput(SILENT, 2)),
                number_notation="35/STTTT-VP",
                doc_type="Công văn",
                signer="Nguyễn Văn An",
            ),
        )
        settle_outbound(session, [(1, "sent", ""), (2, "sent", "")])
        line = next(d for d in document.deliveries if d.recipient == ANSWERING)
        move_line(session, line, REGISTERED, actor="mail:postmaster@stc.thunghiem.gov.vn")
        line.their_number = "12"
        return document.id


def test_list_show_unanswered_and_export(
    admin_cli: Invoke, db_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    doc_id = seed(db_sessions)
    [view] = json.loads(admin_cli("outgoing", "list", "--json").output)
    assert view["id"] == doc_id and view["number_notation"] == "35/STTTT-VP"
    statuses = {d["recipient"]: (d["status"], d["unanswered"]) for d in view["deliveries"]}
    assert statuses == {ANSWERING: ("registered", False), SILENT: ("sent", True)}
    [late] = json.loads(admin_cli("outgoing", "list", "--unanswered", "--json").output)
    assert late["id"] == doc_id
    table = admin_cli("outgoing", "list").output
    assert "SỐ, KÝ HIỆU" in table and "Đã tiếp nhận" in table and "Đã gửi !" in table

    shown = admin_cli("outgoing", "show", str(doc_id)).output
    assert f"{ANSWERING}: registered (Đã tiếp nhận), their number 12" in shown
    assert f"{SILENT}: sent (Đã gửi) [unanswered]" in shown
    assert "queued -> sent" in shown

    raw = admin_cli("outgoing", "export").stdout_bytes
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:5] == [
        "Số đi", "Ngày gửi", "Số, ký hiệu văn bản", "Ngày tháng văn bản",
        "Tên loại và trích yếu nội dung",
    ]  # fmt: skip
    assert rows[1][2] == "35/STTTT-VP" and rows[1][5] == "Nguyễn Văn An"
    assert "Đã tiếp nhận" in rows[1][7] and "Đã gửi" in rows[1][7]
    for fmt in ("html", "pdf"):
        out = tmp_path / f"so-di.{fmt}"
        admin_cli("outgoing", "export", "--format", fmt, "-o", str(out))
        assert out.stat().st_size > 500
    assert "SỔ VĂN BẢN ĐI" in (tmp_path / "so-di.html").read_text(encoding="utf-8").upper()
    assert (tmp_path / "so-di.pdf").read_bytes().startswith(b"%PDF")


def test_recent_document_is_not_unanswered_and_the_overdue_job_reports_late_ones(
    admin_cli: Invoke, admin_home: Path, db_sessions: sessionmaker[Session]
) -> None:
    seed(db_sessions, days_ago=0.5)
    assert json.loads(admin_cli("outgoing", "list", "--unanswered", "--json").output) == []
    seed(db_sessions, days_ago=3)
    settings = load_settings(admin_home)
    ctx = JobContext(settings=settings, sessions=db_sessions, mailer=None, now=utcnow())
    summary = asyncio.run(overdue_reminders_job(ctx))
    assert summary.endswith("; 1 unanswered outgoing documents not reminded (no mailer)")
