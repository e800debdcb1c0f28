"""Pictures and files written into an HTML body as data: URIs (RFC 2397).

A mail program shows ``<img src="data:image/png;base64,...">`` in the message (a scan of a
page pasted into the body) and opens ``<a href="data:application/pdf;base64,...">``; the
HTML was read as text only: a TỐI MẬT scan or PDF written into the body went out unread.
Attacked here: each place a data: URI can sit, percent-encoding, a payload that does not
decode, bounds, damage; a logo in a signature stays a logo.
"""

from __future__ import annotations

import base64
import io

import pytest
from hypothesis import given
from PIL import Image

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE
from tests.documents import generator
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file, make_pdf, message
from tests.documents.test_ocr import stamp_doc
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

PDF = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 138/BC-CAT-PA03")
PDF_URI = "data:application/pdf;base64," + base64.b64encode(PDF).decode()


def mail(html: str) -> bytes:
    return message("Gửi tài liệu", "Xem bản HTML.\n", html=html).as_bytes()


def marked(raw: bytes, word: str = "TỐI MẬT") -> list[tuple[str, str]]:
    return [(loc, name) for loc, name, text in read_parts(raw) if word in text]


@pytest.mark.parametrize(
    "html",
    [
        f'<p>Kính gửi.</p><a href="{PDF_URI}">bao-cao.pdf</a>',
        f"<object data='{PDF_URI}' type='application/pdf'></object>",
        f"<embed src={PDF_URI} type=application/pdf>",
        f"<div style=\"background: url('{PDF_URI}')\">x</div>",
    ],
    ids=["link", "object", "embed-unquoted", "css-url"],
)
def test_a_pdf_written_into_the_body_is_read(html: str) -> None:
    assert marked(mail(html)) == [("body 2 > data URI 1", "data-uri-1.pdf")]


def test_a_pdf_written_into_an_html_attachment_is_read() -> None:
    html = f'<html><body><embed src="{PDF_URI}"></body></html>'.encode()
    raw = mail_with_file(html, "bao-cao.html", ("text", "html"))
    assert marked(raw) == [("attachment 1 > data URI 1", "data-uri-1.pdf")]


def test_a_scan_pasted_into_the_body_is_read_by_ocr() -> None:
    doc = stamp_doc()
    scan = base64.b64encode(generator.render_image(doc, "PNG")).decode()
    raw = mail(f'<p>Kính gửi.</p><img src="data:image/png;base64,{scan}">')
    text = extract_message_bytes(raw, ExtractionLimits(timeout_s=60))
    [part] = [p for p in text.attachments(top_level=False) if p.location.endswith("URI 1")]
    assert part.text_source == "OCR" and "MẬT" in part.text


def test_a_percent_encoded_text_is_read() -> None:
    text = "S%E1%BB%9F%20N%E1%BB%99i%20v%E1%BB%A5%0AM%E1%BA%ACT"  # "Sở Nội vụ\nMẬT"
    raw = mail(f'<a href="data:text/plain;charset=utf-8,{text}">x</a>')
    assert marked(raw, "MẬT") == [("body 2 > data URI 1", "data-uri-1.txt")]


def test_a_logo_in_the_signature_is_not_a_document() -> None:
    out = io.BytesIO()
    Image.new("RGB", (120, 40), "navy").save(out, "PNG")
    logo = base64.b64encode(out.getvalue()).decode()
    text = extract_message_bytes(
        mail(f'<p>Trân trọng.</p><img src="data:image/png;base64,{logo}">'), ExtractionLimits()
    )
    assert text.failures == ()
    assert [s.kind for s in text.skipped] == ["unsupported"]


def test_a_payload_that_does_not_decode_is_corrupt() -> None:
    text = extract_message_bytes(
        mail('<img src="data:image/png;base64,iVBORw0KGgo*!*not base64">'), ExtractionLimits()
    )
    assert [(f.kind, f.location) for f in text.failures] == [(CORRUPT, "body 2")]


def test_too_many_or_too_large_are_too_large() -> None:
    many = "".join(f'<a href="data:text/plain,{i}">{i}</a>' for i in range(51))
    assert [f.kind for f in extract_message_bytes(mail(many), ExtractionLimits()).failures] == [
        TOO_LARGE
    ]
    big = extract_message_bytes(
        mail(f'<a href="{PDF_URI}">x</a>'), ExtractionLimits(max_file_bytes=1000)
    )
    assert [f.kind for f in big.failures] == [TOO_LARGE]


DAMAGEABLE = mail(f'<p>Kính gửi.</p><a href="{PDF_URI}">bao-cao.pdf</a>')


@DAMAGE_SETTINGS
@given(edits([b"data:", b";base64,", b'"', b"=", b"%"]))
def test_a_damaged_body_gives_text_or_a_failure(changes: list[tuple[float, int, bytes]]) -> None:
    text = extract_message_bytes(damaged(DAMAGEABLE, changes), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}
