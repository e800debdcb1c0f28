"""Files attached to a PDF page as annotations (ISO 32000 §12.5.6.15).

Acrobat's "Attach File" comment puts a paperclip on the page; a double click opens the
file. Such a file is not in the document's EmbeddedFiles list, the only one PDFium's
attachment count reads: a TỐI MẬT report attached that way went out unread. Attacked
here: two writers (fpdf2 and PDFium itself), the file after 200 other annotations, a
file attachment naming a file outside the PDF, bounds, the page text kept.
"""

from __future__ import annotations

from pathlib import Path

import pypdfium2
import pytest

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import TOO_LARGE
from tests.documents.reading import read_parts
from tests.documents.samples import attach_to_page, mail_with_file, make_docx, make_pdf

SECRET = make_docx("BỘ CHỈ HUY QUÂN SỰ TỈNH\nTỐI MẬT\nSố: 82/KH-BCH")
CARRIER = "UBND HUYỆN\nSố: 221/TB-UBND\nThông báo lịch tiếp công dân."


def secret_places(pdf: bytes) -> list[tuple[str, str]]:
    raw = mail_with_file(pdf, "thong-bao.pdf")
    return [(loc, name) for loc, name, text in read_parts(raw) if "TỐI MẬT" in text]


def test_a_file_attached_by_acrobats_comment_tool_is_read() -> None:
    pdf = make_pdf(CARRIER, annotation_file=("phu-luc.docx", SECRET))
    assert pypdfium2.PdfDocument(pdf).count_attachments() == 0  # not in EmbeddedFiles
    assert secret_places(pdf) == [("attachment 1 > embedded 1", "phu-luc.docx")]


def test_a_file_in_both_lists_is_read_once(tmp_path: Path) -> None:
    """fpdf2 lists an annotation's file in EmbeddedFiles too: one file, read once."""
    from fpdf import FPDF

    (tmp_path / "phu-luc.docx").write_bytes(SECRET)
    writer = FPDF()
    writer.add_page()
    writer.file_attachment_annotation(tmp_path / "phu-luc.docx", x=150, y=20, w=8, h=8)
    pdf = bytes(writer.output())
    assert pypdfium2.PdfDocument(pdf).count_attachments() == 1
    embedded = [place for place in secret_places(pdf) if "embedded" in place[0]]
    assert embedded == [("attachment 1 > embedded 1", "phu-luc.docx")]


def test_a_file_attached_after_200_notes_is_read() -> None:
    """The page's comments are read from the first 200 annotations; a file is looked for
    in every one."""
    pdf = attach_to_page(make_pdf(CARRIER), [("phu-luc.docx", SECRET)], notes_before=250)
    assert secret_places(pdf) == [("attachment 1 > embedded 1", "phu-luc.docx")]


def test_the_page_is_still_read_and_an_empty_reference_is_skipped() -> None:
    """An annotation that names a file outside the PDF (no bytes inside) hides nothing."""
    pdf = attach_to_page(make_pdf(CARRIER), [("\\\\server\\share\\x.docx", b"")])
    text = extract_message_bytes(mail_with_file(pdf, "thong-bao.pdf"), ExtractionLimits())
    assert text.failures == ()
    assert any("lịch tiếp công dân" in p.text for p in text.parts)


@pytest.mark.parametrize(
    ("files", "limits"),
    [
        ([(f"{i}.txt", b"x") for i in range(51)], ExtractionLimits()),
        ([("lon.bin", bytes(200_000))], ExtractionLimits(max_file_bytes=100_000)),
    ],
    ids=["51-files", "too-big"],
)
def test_past_the_bounds_is_too_large(
    files: list[tuple[str, bytes]], limits: ExtractionLimits
) -> None:
    pdf = attach_to_page(make_pdf(CARRIER), files)
    text = extract_message_bytes(mail_with_file(pdf, "thong-bao.pdf"), limits)
    assert [f.kind for f in text.failures] == [TOO_LARGE]
