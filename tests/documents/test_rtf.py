"""RTF documents in the text extraction (striprtf): what Word prints is read, Vietnamese
included, wherever it stands; hostile RTF gives text or a precise error.

Before, ``application/rtf`` was an unsupported file (ignored by the classification) and
``text/rtf`` was read as its source code, where TỐI MẬT is ``T\\u7888?I M\\u7853?T``.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, UnreadableDocument, rtf_text, sniff
from tests.documents.samples import attach, make_rtf, message
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

STAMPED = make_rtf("UBND TỈNH\nSố: 33/BC-UBND", header="MẬT", textbox="TỐI MẬT")


def test_body_header_and_text_box_are_read() -> None:
    lines = [line.strip() for line in rtf_text(STAMPED, 10_000).text.split("\n")]
    assert lines[:4] == ["MẬT", "TỐI MẬT", "UBND TỈNH", "Số: 33/BC-UBND"]


def test_code_page_bytes_are_decoded_and_composed() -> None:
    """Windows-1258 writes "ậ" as "â" and a combining dot below (0xE2 0xF2)."""
    data = b"{\\rtf1\\ansi\\ansicpg1258 M\\'e2\\'f2t\\par}"
    assert rtf_text(data, 100).text.strip() == "Mật"


def test_an_unknown_code_page_falls_back_to_windows_1252() -> None:
    assert rtf_text(b"{\\rtf1\\ansi\\ansicpg99999 caf\\'e9\\par}", 100).text.strip() == "café"


@pytest.mark.parametrize(
    ("declared", "name"),
    [("application/rtf", "vb.rtf"), ("text/rtf", "vb.rtf"), ("application/octet-stream", "vb")],
)
def test_rtf_is_known_by_its_first_bytes(declared: str, name: str) -> None:
    assert sniff(STAMPED, name, declared) == "application/rtf"
    msg = message()
    attach(msg, STAMPED, name, tuple(declared.split("/")))  # type: ignore[arg-type]
    text = extract_message_bytes(msg.as_bytes(), ExtractionLimits())
    [document] = text.attachments()
    assert "TỐI MẬT" in document.text and "\\u" not in document.text


def test_a_huge_code_point_is_a_precise_error() -> None:
    with pytest.raises(UnreadableDocument) as info:
        rtf_text(b"{\\rtf1 \\u9999999999?}", 100)
    assert info.value.kind == CORRUPT


def test_five_megabytes_of_picture_are_skipped_quickly() -> None:
    data = b"{\\rtf1{\\pict\\pngblip " + b"ab12" * 1_250_000 + b"}{\\pard M\\u7852?T\\par}}"
    started = time.process_time()
    assert rtf_text(data, 100).text.strip() == "MẬT"
    assert time.process_time() - started < 5


@DAMAGE_SETTINGS
@given(edits([b"{", b"}", b"\\", b"\\u", b"\\'", b"\\*", b"\\bin99999", b"\\pict", b"\\uc9"]))
def test_damaged_rtf_gives_text_or_a_precise_error(changes: list[tuple[float, int, bytes]]) -> None:
    try:
        rtf_text(damaged(STAMPED, changes), 10_000)
    except UnreadableDocument as exc:
        assert exc.kind == CORRUPT
