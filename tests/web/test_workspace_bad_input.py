"""Malformed input to the workspace answers 400 or 404 with a message, never a 500: ids
and numbers that are not plain ASCII digits or do not fit the database's integers, dates
outside any register's years, and line breaks in single-line fields."""

from __future__ import annotations

import asyncio
import email
from email import policy

from sqlalchemy import update

from mailsvc.db.models import Mailbox
from mailsvc.register.models import DocumentAttachment, RegisterDocument
from tests.e2e.conftest import RunningServer, server, service_home
from tests.e2e.test_smtp_core import fetch_inbox
from tests.web.test_workspace import wait_for_thread
from tests.web.workspace_setup import (
    CLERK,
    OFFICIAL,
    client,
    form_token,
    seed_workspace,
    sign_in,
)

__all__ = ["server", "service_home"]  # fixtures used here

ARABIC_INDIC = "".join(chr(0x0660 + i % 10) for i in range(30))  # ٠١٢٣…, 30 digits


async def test_ids_and_numbers_that_are_not_ascii_digits_or_too_big_answer_400_or_404(
    server: RunningServer,
) -> None:
    """A superscript two passes ``str.isdigit`` but not ``int``; 20 digits overflow
    SQLite's integers, 2**31 PostgreSQL's; 5000 digits pass Python's int digit limit;
    Arabic-Indic digits match a ``\\d`` route; PostgreSQL refuses a NUL in text."""
    seeded = await seed_workspace(server)
    doc = f"/w/incoming/{seeded.document_id}"
    async with client(server) as http:
        await sign_in(http, CLERK)
        for path in (
            "/w/incoming/2147483648",  # over PostgreSQL's integer
            "/w/incoming/999999999999999999",
            "/w/incoming/99999999999999999999",
            "/w/incoming/" + "9" * 5000,
            f"/w/incoming/{ARABIC_INDIC}",
            f"{doc}/preview/{'1' * 5000}.png",
            f"{doc}/files/99999999999999999999",
        ):
            answer = await http.get(path)
            assert answer.status_code == 404, (path[:60], answer.status_code)
            assert "Không tìm thấy" in answer.text, path[:60]
        for path in ("/w/incoming", "/w/mine"):
            for before in ("²", "1²", "2147483648", "9" * 30, "-1"):
                answer = await http.get(path, params={"before": before})
                assert answer.status_code == 400, (path, before, answer.status_code)
                assert "before" in answer.text, (path, before)
            assert (await http.get(path, params={"before": "5"})).status_code == 200
        for year in ("²", "²⁰²⁶", "٢٠٢٦", "9" * 150):
            answer = await http.get("/w/incoming", params={"year": year})
            assert answer.status_code == 200, (year, answer.status_code)
            assert "Năm không hợp lệ: bỏ qua." in answer.text, year
        odd_agency = await http.get("/w/incoming", params={"agency": "000.00\x0031.H56"})
        assert odd_agency.status_code == 200 and "Mã cơ quan không hợp lệ" in odd_agency.text


async def test_dates_outside_the_years_1900_to_2999_are_refused_not_a_crash(
    server: RunningServer,
) -> None:
    """The list drops such a date with a note (as any bad filter), the export and the forms
    refuse it with 400; before, date arithmetic or the SQL binding overflowed (500)."""
    seeded = await seed_workspace(server)
    doc = f"/w/incoming/{seeded.document_id}"
    bad_dates = (
        ("until", "9999-12-31"),
        ("since", "0001-01-01"),
        ("until", "31/12/9999"),
        ("since", "01/01/1899"),
    )
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        for key, value in bad_dates:
            listing = await http.get("/w/incoming", params={key: value})
            assert listing.status_code == 200, (key, value, listing.status_code)
            assert "từ năm 1900 đến năm 2999" in listing.text and "Bỏ qua" in listing.text
            for fmt in ("csv", "html", "pdf"):
                export = await http.get("/w/incoming/export", params={"format": fmt, key: value})
                assert export.status_code == 400, (fmt, key, value, export.status_code)
                assert "từ năm 1900 đến năm 2999" in export.text, (fmt, key, value)
        # A good period still exports; the edges of the range are accepted.
        edges = await http.get(
            "/w/incoming/export",
            params={"format": "csv", "since": "1900-01-01", "until": "31/12/2999"},
        )
        assert edges.status_code == 200
        late = await http.post(
            f"{doc}/assign", data={"csrf": csrf, "assignee": CLERK, "deadline": "9999-12-31"}
        )
        assert late.status_code == 400 and "từ năm 1900 đến năm 2999" in late.text
        paper = await http.post(
            "/w/incoming/new",
            data={
                "csrf": csrf,
                "agency_name": "UBND huyện Đắk Mil",
                "abstract": "V/v báo cáo",
                "issued_date": "0001-01-01",
            },
            files={"file": ("", b"", "text/plain")},
        )
        assert paper.status_code == 400 and "từ năm 1900 đến năm 2999" in paper.text


# What ends a line for someone: CR, LF, VT, FF, FS, GS, RS, NEL, LINE and PARAGRAPH
# SEPARATOR (str.splitlines splits on each).
LINE_BREAKS = (
    "\r",
    "\n",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
)


async def test_line_breaks_in_single_line_fields_are_refused_and_never_break_the_copy(
    server: RunningServer,
) -> None:
    """A paper document whose number and notation held a line break could be recorded but
    never assigned: the assignee's copy put it into the Subject and composing it raised
    (500). Single-line fields now refuse every line break; multi-line ones (abstract,
    instructions, reason) keep them. Rows recorded before (or by other paths) still make
    a copy: the mailer folds what it puts into a header onto one line."""
    seeded = await seed_workspace(server)
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        base = {
            "csrf": csrf,
            "agency_name": "UBND huyện Đắk Mil",
            "number_notation": "12/UBND-VP",
            "signer": "Nguyễn Văn Ký",
            "doc_type": "Công văn",
            "abstract": "V/v báo cáo\nnăm 2026",
        }
        no_file = {"file": ("", b"", "text/plain")}
        for name in ("number_notation", "agency_name", "signer", "doc_type", "note"):
            for brk in LINE_BREAKS:
                value = f"12/UBND{brk}Bcc: x@example.vn"
                answer = await http.post(
                    "/w/incoming/new", data={**base, name: value}, files=no_file
                )
                assert answer.status_code == 400, (name, brk, answer.status_code)
                assert f"«{name}» chỉ được có một dòng" in answer.text, (name, brk)
        doc = f"/w/incoming/{seeded.document_id}"
        page = await http.get(doc)
        for brk in ("\n", "\u2028", "\x85"):
            answer = await http.post(
                f"{doc}/assign",
                data={"csrf": form_token(page.text), "assignee": f"{OFFICIAL}{brk}x"},
            )
            assert answer.status_code == 400 and "chỉ được có một dòng" in answer.text
        # Multi-line fields keep their lines.
        paper = await http.post("/w/incoming/new", data=base, files=no_file)
        assert paper.status_code == 303, paper.text

    # An entry recorded before the check, and a name with a line break from elsewhere.
    with server.app.sessions.begin() as session:
        session.execute(
            update(RegisterDocument)
            .where(RegisterDocument.id == seeded.document_id)
            .values(number_notation="35/2026/QĐ-UBND\nBcc: x@example.vn\u2028")
        )
        session.execute(
            update(DocumentAttachment)
            .where(DocumentAttachment.document_id == seeded.document_id)
            .values(filename="35-QĐ\r\n-UBND.pdf")
        )
        session.execute(
            update(Mailbox).where(Mailbox.address == CLERK).values(full_name="Trần Thị\nVăn Thư")
        )
    async with client(server) as http:
        await sign_in(http, CLERK)
        page = await http.get(doc)
        answer = await http.post(
            f"{doc}/assign", data={"csrf": form_token(page.text), "assignee": OFFICIAL}
        )
        assert answer.status_code == 303, answer.text

    def copy_arrived() -> bool:
        return len(fetch_inbox(server, OFFICIAL)) == 1

    await wait_for_thread(copy_arrived)
    [raw] = await asyncio.to_thread(fetch_inbox, server, OFFICIAL)
    copy = email.message_from_bytes(raw, policy=policy.default)
    assert str(copy["Subject"]).startswith("Chuyển xử lý: 35/2026/QĐ-UBND Bcc: x@example.vn – ")
    assert copy["Bcc"] is None
    assert str(copy["From"]) == f"Trần Thị Văn Thư <{CLERK}>"
    [pdf] = [p for p in copy.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "35-QĐ -UBND.pdf"
