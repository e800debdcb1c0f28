"""A PDF whose text is drawn as outlines.

Printing with "text as curves", or a design program's "create outlines", makes a PDF in
which every word is a filled path: a reader sees the page, the page has no text layer.
Pages were read by OCR only when they held an image: a TỐI MẬT plan drawn as outlines
read as an empty page and went out unread. A page with few letters and many path
segments (a letter's outline has ten to forty) is now read by OCR too; table rules and a
header's underline (a few segments each) are not outlines, and a drawing OCR finds no
words in is no illegible scan.
"""

from __future__ import annotations

import pytest

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from tests.documents.samples import mail_with_file, outlined_pdf

PLAN = "CÔNG AN TỈNH\nTỐI MẬT\nSố: 903/KH-CAT-PV01\nKế hoạch bảo vệ mục tiêu trọng điểm"


def read(pdf: bytes) -> tuple[str, str, tuple[str, ...]]:
    text = extract_message_bytes(mail_with_file(pdf, "ke-hoach.pdf"), ExtractionLimits())
    [part] = [p for p in text.parts if p.location == "attachment 1" and p.source == "attachment"]
    return part.text_source, part.text, tuple(f.kind for f in text.failures)


@pytest.mark.parametrize("size", [11.0, 13.0, 16.0])
def test_text_drawn_as_outlines_is_read_by_ocr(size: float) -> None:
    source, text, failures = read(outlined_pdf(PLAN, size=size))
    assert "OCR" in source and "TỐI MẬT" in text and failures == ()


def test_one_short_line_of_outlines_is_read() -> None:
    """A little ink on a white page is not a blank page's specks when it is drawing."""
    source, text, _ = read(outlined_pdf("TỐI MẬT"))
    assert "OCR" in source and "TỐI MẬT" in text


def test_table_rules_are_not_outlines() -> None:
    """A page of rules and a few letters costs no OCR."""
    source, _, failures = read(outlined_pdf("", rules=60))
    assert "OCR" not in source and failures == ()


def test_a_drawing_without_words_is_no_illegible_scan() -> None:
    """Outlines OCR reads no word in (an emblem, a chart's curves) are a drawing."""
    source, _, failures = read(outlined_pdf("~~~~ ~~~~ ~~~~\n" * 12, size=30))
    assert "OCR" in source and failures == ()
