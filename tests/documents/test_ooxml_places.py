"""The places of a DOCX, XLSX or PPTX that Word, Excel and PowerPoint show beside the
body, each read for markings.

Before, a workbook was its cells and a presentation its slides: a MẬT stamp in a sheet's
page header (where Excel users put it: printed on every page), on a slide master (shown
on every slide), in speaker notes, a comment, a text box drawn on a sheet, a SmartArt
graphic, a chart title or the text a formula computes went out unread; so did a DOCX's
comments, SmartArt and charts.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import docx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import sheet_header_text
from tests.documents.ooxml import add_alt_chunk, add_docx_parts, make_pptx, make_xlsx
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file, make_docx, make_rtf

STAMP = "TỐI MẬT"


def docx_with_comment(comment: str) -> bytes:
    document = docx.Document()
    paragraph = document.add_paragraph("Kính gửi các đơn vị.")
    document.add_comment(paragraph.runs, text=comment, author="Văn thư")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


PLACES: dict[str, tuple[Callable[[], bytes], str]] = {
    "xlsx-page-header": (lambda: make_xlsx(["Bảng lương"], header=STAMP), "xlsx"),
    "xlsx-formula-text": (lambda: make_xlsx(["Bảng lương"], formula_text=STAMP), "xlsx"),
    "xlsx-comment": (lambda: make_xlsx(["Bảng lương"], comment=STAMP), "xlsx"),
    "xlsx-text-box": (lambda: make_xlsx(["Bảng lương"], textbox=STAMP), "xlsx"),
    "xlsx-chart-title": (lambda: make_xlsx(["Bảng lương"], chart_title=STAMP), "xlsx"),
    "pptx-slide-master": (lambda: make_pptx(["Kế hoạch"], master=STAMP), "pptx"),
    "pptx-slide-layout": (lambda: make_pptx(["Kế hoạch"], layout=STAMP), "pptx"),
    "pptx-speaker-notes": (lambda: make_pptx(["Kế hoạch"], notes=STAMP), "pptx"),
    "pptx-comment": (lambda: make_pptx(["Kế hoạch"], comment=STAMP), "pptx"),
    "pptx-smartart": (lambda: make_pptx(["Kế hoạch"], smartart=STAMP), "pptx"),
    "pptx-chart-title": (lambda: make_pptx(["Kế hoạch"], chart_title=STAMP), "pptx"),
    "docx-comment": (lambda: docx_with_comment(STAMP), "docx"),
    "docx-smartart": (lambda: add_docx_parts(make_docx("Kính gửi"), smartart=STAMP), "docx"),
    "docx-chart-title": (lambda: add_docx_parts(make_docx("Kính gửi"), chart_title=STAMP), "docx"),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_stamp_in_each_place_is_read(place: str) -> None:
    make, extension = PLACES[place]
    parts = read_parts(mail_with_file(make(), f"tai-lieu.{extension}"))
    assert [loc for loc, _, text in parts if STAMP in text.splitlines()] == ["attachment 1"]


def test_the_body_is_read_first() -> None:
    """The metadata reads a document from its start: the cells and slides come before
    what is beside them."""
    (_, _, text), *_ = read_parts(
        mail_with_file(make_pptx(["Kế hoạch số 12"], notes="Ghi chú"), "k.pptx")
    )
    assert text.index("Kế hoạch số 12") < text.index("Ghi chú")


def test_numbers_in_cells_are_not_read_as_text() -> None:
    """Only a text-typed cell's value is text: a sheet of figures stays its labels."""
    workbook = make_xlsx(["Tổng"], formula_text="")
    parts = read_parts(mail_with_file(workbook, "so-lieu.xlsx"))
    assert "0" not in parts[0][2]  # the shared string's index, a <v> of a plain cell


@pytest.mark.parametrize(
    ("coded", "printed"),
    [
        ('&C&"Times New Roman,Bold"&14MẬT', "MẬT"),
        ("&LUBND TỈNH&CTỐI MẬT&RTrang &P/&N", "UBND TỈNH\nTỐI MẬT\nTrang  / "),
        ("&KFF0000TUYỆT MẬT", "TUYỆT MẬT"),
        ("&K01+000MẬT&UX", "MẬTX"),  # underlined from the X on
        ("Lương && thưởng", "Lương & thưởng"),
        ("&&CMẬT", "&CMẬT"),  # an escaped ampersand, not a section
    ],
)
def test_sheet_header_codes_are_taken_out(coded: str, printed: str) -> None:
    assert sheet_header_text(coded).strip("\n") == printed


@given(st.text(max_size=300))
def test_any_header_gives_text(coded: str) -> None:
    assert isinstance(sheet_header_text(coded), str)


CHUNK_HTML = "<html><body><p>CÔNG AN TỈNH</p><p>TỐI MẬT</p></body></html>"
CHUNK_MHT = (
    'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="b"\r\n\r\n--b\r\n'
    "Content-Type: text/html; charset=utf-8\r\nContent-Location: file:///C:/chunk.htm\r\n\r\n"
    f"{CHUNK_HTML}\r\n--b--\r\n"
)
CHUNKS = {
    "html": ("afchunk.htm", CHUNK_HTML.encode(), "application/xhtml+xml"),
    "mht": ("afchunk.mht", CHUNK_MHT.encode(), "message/rfc822"),
    "rtf": ("afchunk.rtf", make_rtf("CÔNG AN TỈNH\nTỐI MẬT"), "application/rtf"),
    "docx": (
        "chunk.docx",
        make_docx("CÔNG AN TỈNH\nTỐI MẬT"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    ),
}


@pytest.mark.parametrize("chunk", sorted(CHUNKS))
def test_content_a_docx_imports_with_alt_chunk_is_read(chunk: str) -> None:
    """w:altChunk: Word shows another file's content in place, as if typed there."""
    name, data, content_type = CHUNKS[chunk]
    docx = add_alt_chunk(make_docx("Kính gửi các đơn vị."), name, data, content_type)
    text = extract_message_bytes(mail_with_file(docx, "cong-van.docx"), ExtractionLimits())
    assert text.failures == ()
    # an MHT chunk is a MIME message: its page is a body of it ("> message > body 1")
    assert [p.location for p in text.parts if STAMP in p.text.splitlines()] == [
        "attachment 1 > embedded 1" + (" > message > body 1" if chunk == "mht" else "")
    ]
