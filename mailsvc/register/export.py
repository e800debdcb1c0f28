"""Exporting the register in the official columns (domain.md §7): CSV for Excel,
printable HTML (Jinja2, templates/register/register.html.j2) and PDF (fpdf2, landscape
A4 with page numbers, DejaVu Sans for Vietnamese glyphs).

Rows are plain values (:class:`RegisterRow`) made from register entries; templates never
see ORM objects. Text is NFC; times are ISO 8601 in the register's zone (+07:00).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailsvc.errors import MailsvcError
from mailsvc.register.models import RegisterDocument
from mailsvc.register.queries import show_time
from mailsvc.register.registration import VIETNAM
from mailsvc.register.statuses import DocumentStatus
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome

# (field, Vietnamese heading) in the order of the official register.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("incoming_number", "Số đến"),
    ("received_at", "Ngày đến"),
    ("author", "Tác giả"),
    ("number_notation", "Số, ký hiệu"),
    ("issued_date", "Ngày tháng văn bản"),
    ("title", "Tên loại và trích yếu nội dung"),
    ("recipient", "Đơn vị hoặc người nhận"),
    ("signature", "Ký nhận"),
    ("note", "Ghi chú"),
)
HEADINGS = tuple(heading for _, heading in COLUMNS)

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
)
TEMPLATE = "register/register.html.j2"

_OUTCOME_NOTES = {
    DocumentOutcome.REFERENCE_ONLY.value: "Chỉ có giá trị tham khảo",
    DocumentOutcome.INVALID.value: "Chữ ký số không hợp lệ",
}


@dataclass(frozen=True)
class RegisterRow:
    """One printed line of the register (plain strings)."""

    incoming_number: str
    received_at: str
    author: str
    number_notation: str
    issued_date: str
    title: str
    recipient: str
    signature: str
    note: str

    def cells(self) -> list[str]:
        values = asdict(self)
        return [values[name] for name, _ in COLUMNS]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "").strip()


def _vn_date(value: date | None) -> str:
    return value.isoformat() if value else ""


def row_of(document: RegisterDocument, zone: tzinfo = VIETNAM) -> RegisterRow:
    notes: list[str] = []
    urgency = Urgency(document.urgency)
    if urgency.is_urgent:
        notes.append(urgency.label)
    if document.signature_outcome in _OUTCOME_NOTES:
        notes.append(_OUTCOME_NOTES[document.signature_outcome])
    status = DocumentStatus(document.status)
    if status in (DocumentStatus.REFUSED, DocumentStatus.RECALLED, DocumentStatus.DELETED):
        notes.append(status.label)
    if document.deadline:
        notes.append(f"Hạn xử lý: {document.deadline.isoformat()}")
    if document.note:
        notes.append(document.note)
    title = " - ".join(p for p in (_nfc(document.doc_type), _nfc(document.abstract)) if p)
    return RegisterRow(
        incoming_number=str(document.incoming_number) if document.incoming_number else "",
        received_at=show_time(document.received_at, zone) or "",
        author=_nfc(document.agency_name) or _nfc(document.agency_code) or document.sender,
        number_notation=_nfc(document.number_notation),
        issued_date=_vn_date(document.issued_date),
        title=title or _nfc(document.subject),
        recipient=_nfc(document.assigned_to) or document.recipient,
        signature="",
        note="; ".join(_nfc(n) for n in notes),
    )


def rows_of(documents: Sequence[RegisterDocument], zone: tzinfo = VIETNAM) -> list[RegisterRow]:
    return [row_of(d, zone) for d in documents]


# --------------------------------------------------------------------------- CSV


# OWASP "CSV injection": a cell starting with one of these is read by spreadsheets as a
# formula (=HYPERLINK(...), +cmd|..., -2+3, @SUM(...)) or shifts to the next cell.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: formula-like values get a leading apostrophe."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def to_csv(rows: Sequence[RegisterRow]) -> bytes:
    """UTF-8 with a byte order mark (Excel opens it with the right characters), CRLF rows.

    Every cell that a spreadsheet would evaluate (see ``neutralise_cell``) is written as
    text: subjects and abstracts come from senders outside the agency.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADINGS)
    for row in rows:
        writer.writerow([neutralise_cell(str(cell)) for cell in row.cells()])
    return buffer.getvalue().encode("utf-8-sig")


# --------------------------------------------------------------------------- HTML


@dataclass(frozen=True)
class RegisterTitle:
    """What the cover lines say: agency, register name, period, when printed."""

    agency: str
    register_name: str
    period: str
    printed_at: str

    @classmethod
    def make(
        cls,
        agency: str,
        register_name: str,
        since: date | None,
        until: date | None,
        zone: tzinfo = VIETNAM,
        now: datetime | None = None,
    ) -> RegisterTitle:
        if since and until:
            period = f"Từ ngày {since.isoformat()} đến ngày {until.isoformat()}"
        elif since:
            period = f"Từ ngày {since.isoformat()}"
        elif until:
            period = f"Đến ngày {until.isoformat()}"
        else:
            period = ""
        printed = (now or datetime.now(zone)).astimezone(zone).isoformat(timespec="seconds")
        return cls(_nfc(agency), _nfc(register_name), period, printed)


def render_html(rows: Sequence[RegisterRow], title: RegisterTitle, templates: Path) -> str:
    env = Environment(
        loader=FileSystemLoader(str(templates)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template(TEMPLATE)
    return template.render(
        headings=list(HEADINGS),
        rows=[row.cells() for row in rows],
        agency=title.agency,
        register_name=title.register_name,
        period=title.period,
        printed_at=title.printed_at,
    )


# --------------------------------------------------------------------------- PDF

# Column widths in mm on landscape A4 (277 mm between 10 mm margins).
PDF_WIDTHS = (14, 46, 34, 30, 22, 63, 30, 18, 20)


def find_font(name: str, dirs: Sequence[Path] = FONT_DIRS) -> Path:
    for directory in dirs:
        candidate = directory / name
        if candidate.exists():
            return candidate
    raise MailsvcError(
        f"font {name} not found in {', '.join(map(str, dirs))}; install fonts-dejavu-core"
    )


def render_pdf(
    rows: Sequence[RegisterRow], title: RegisterTitle, font_dirs: Sequence[Path] = FONT_DIRS
) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    regular = find_font("DejaVuSans.ttf", font_dirs)
    bold = find_font("DejaVuSans-Bold.ttf", font_dirs)

    class RegisterPdf(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("DejaVu", size=8)
            self.cell(0, 6, f"Trang {self.page_no()}/{{nb}}", align="C")

    pdf = RegisterPdf(orientation="L", unit="mm", format="A4")
    pdf.set_margins(10, 10, 10)
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold))
    pdf.set_title(title.register_name)
    pdf.set_creator("mailsvc")
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 11)
    if title.agency:
        pdf.cell(0, 6, title.agency.upper(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 9, title.register_name.upper(), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    if title.period:
        pdf.cell(0, 5, title.period, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, f"In lúc {title.printed_at}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 8)
    with pdf.table(
        col_widths=PDF_WIDTHS,
        width=sum(PDF_WIDTHS),
        line_height=4,
        text_align="LEFT",
        v_align="TOP",
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230)),
        padding=1,
    ) as table:
        heading = table.row()
        for text in HEADINGS:
            heading.cell(text, align="CENTER")
        for row in rows:
            line = table.row()
            cells = row.cells()
            line.cell(cells[0], align="CENTER")
            for text in cells[1:]:
                line.cell(text)
    return bytes(pdf.output())
