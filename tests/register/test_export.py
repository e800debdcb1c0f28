"""Exports in the official columns: CSV, printable HTML, PDF (several pages)."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, date, datetime
from pathlib import Path

from pypdf import PdfReader

from mailsvc.register.export import (
    HEADINGS,
    RegisterRow,
    RegisterTitle,
    render_html,
    render_pdf,
    to_csv,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TITLE = RegisterTitle.make(
    "Sở Thông tin và Truyền thông",
    "Sổ đăng ký văn bản đến",
    date(2026, 1, 1),
    date(2026, 3, 31),
    now=datetime(2026, 4, 1, 1, 0, tzinfo=UTC),
)


def _row(n: int, abstract: str = "V/v triển khai hệ thống thư điện tử công vụ") -> RegisterRow:
    return RegisterRow(
        incoming_number=str(n),
        received_at="2026-03-02T08:15:00+07:00",
        author="UBND tỉnh Đắk Nông",
        number_notation=f"{n}/UBND-KGVX",
        issued_date="2026-02-27",
        title=f"Công văn - {abstract}",
        recipient="Phòng Bưu chính - Viễn thông",
        signature="",
        note="Khẩn" if n % 5 == 0 else "",
    )


def test_title_period_and_time_in_vietnam() -> None:
    assert TITLE.period == "Từ ngày 01/01/2026 đến ngày 31/03/2026"  # dd/mm/yyyy: people read it
    assert TITLE.printed_at == "08:00 01/04/2026"


def test_csv_has_bom_headings_and_crlf() -> None:
    data = to_csv([_row(1)])
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0].split(",")[0] == "Số đến"
    assert "\r\n" in text and "1/UBND-KGVX" in text


def test_html_escapes_text_and_numbers_pages() -> None:
    html = render_html([_row(1, "<script>alert(1)</script> & Đắk Nông")], TITLE, TEMPLATES)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; Đắk Nông" in html
    assert all(f"<th>{h}</th>" in html for h in HEADINGS)
    assert 'counter(page) "/" counter(pages)' in html
    assert "thead { display: table-header-group; }" in html  # headings repeat on each page
    assert unicodedata.is_normalized("NFC", html)


def test_html_with_no_rows_says_so() -> None:
    assert "Không có văn bản nào." in render_html([], TITLE, TEMPLATES)


def test_pdf_spans_pages_with_numbers_and_repeated_headings() -> None:
    long = "V/v " + "triển khai ứng dụng chữ ký số chuyên dùng Chính phủ " * 3
    data = render_pdf([_row(n, long) for n in range(1, 61)], TITLE)
    reader = PdfReader(io.BytesIO(data))
    pages = len(reader.pages)
    assert pages >= 2
    for index, page in enumerate(reader.pages, start=1):
        assert float(page.mediabox.width) > float(page.mediabox.height)
        text = unicodedata.normalize("NFC", page.extract_text())
        assert f"Trang {index}/{pages}" in text
        assert "Số đến" in text and "Ghi chú" in text
    last = unicodedata.normalize("NFC", reader.pages[-1].extract_text())
    assert "60/UBND-KGVX" in last
    assert reader.metadata is not None and reader.metadata.title == "Sổ đăng ký văn bản đến"


def test_pdf_is_set_in_liberation_serif_with_every_vietnamese_glyph() -> None:
    """The register's PDF uses a Times New Roman metric-compatible serif (Liberation Serif
    2.x, which has the Vietnamese letters), embedded, never DejaVu Sans."""
    row = _row(1, "V/v tổ chức hội nghị tổng kết, ưu tiên hỗ trợ đồng bào vùng sâu, vùng xa")
    reader = PdfReader(io.BytesIO(render_pdf([row], TITLE)))
    fonts = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            fonts.add(str(font["/BaseFont"]))
            (descendant,) = font["/DescendantFonts"]
            assert "/FontFile2" in descendant.get_object()["/FontDescriptor"]  # embedded
    assert fonts and all("LiberationSerif" in name for name in fonts), fonts
    text = unicodedata.normalize("NFC", reader.pages[0].extract_text()).replace("\n", " ")
    assert "ưu tiên hỗ trợ đồng bào vùng sâu" in text
