"""Objects embedded in a legacy PowerPoint file (.ppt): a file inserted into a slide
(Insert > Object > Create from file) is kept as a compound file in an ExOleObjStg record
of the "PowerPoint Document" stream, zlib-compressed as PowerPoint saves it.

Before, neither the compound file's directory (it is not a stream of its own) nor the
UTF-16 runs (compressed bytes) showed it: a TỐI MẬT PDF on a slide of a .ppt went out
unread; a .pptx's was read. Attacked here: both record forms, bytes that only look like a
record header, an object that inflates past the bound, fifty-one objects, damage.
"""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE, ppt_objects
from tests.documents.cfb import (
    Storage,
    legacy_ppt_with_object,
    ole_object,
    ppt_object_storage,
    ppt_record,
    write_cfb,
)
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file, make_docx, make_pdf
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

PDF = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 120/BC-CAT-PA03")
DOCX = make_docx("SỞ TÀI CHÍNH\nMẬT\nSố: 78/STC-NS")
SLIDE = "Kế hoạch công tác năm 2027\r"
PPT_TYPE = ("application", "vnd.ms-powerpoint")


def ppt(objects: bytes, text: str = SLIDE) -> bytes:
    """A .ppt whose "PowerPoint Document" stream is a slide text record, then ``objects``."""
    slide = ppt_record(0x0FA0, text.encode("utf-16-le"))
    stream = ppt_record(0x03E8, slide, version=0xF) + objects
    return write_cfb(Storage({"Current User": b"\0" * 32, "PowerPoint Document": stream}))


def failures(data: bytes, limits: ExtractionLimits | None = None) -> list[tuple[str, str]]:
    raw = mail_with_file(data, "ke-hoach.ppt", PPT_TYPE)
    text = extract_message_bytes(raw, limits or ExtractionLimits())
    return [(f.kind, f.detail) for f in text.failures]


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
@pytest.mark.parametrize(
    ("inner", "name"), [(PDF, "bao-cao.pdf"), (DOCX, "ke-hoach.docx")], ids=["pdf", "docx"]
)
def test_a_file_on_a_slide_is_read(compressed: bool, inner: bytes, name: str) -> None:
    data = legacy_ppt_with_object(SLIDE, name, inner, compressed=compressed)
    parts = read_parts(mail_with_file(data, "ke-hoach.ppt", PPT_TYPE))
    assert any("Kế hoạch công tác năm 2027" in text for _, _, text in parts[:1])  # as before
    assert [(loc, n) for loc, n, text in parts if "MẬT" in text and "Số:" in text] == [
        ("attachment 1 > embedded 1 > embedded 1", name)
    ]


def test_every_object_is_read() -> None:
    objects = b"".join(
        ppt_object_storage(ole_object(f"{i}.pdf", make_pdf(f"Phụ lục {i}\nMẬT"))) for i in range(3)
    )
    parts = read_parts(mail_with_file(ppt(objects), "ke-hoach.ppt", PPT_TYPE))
    assert sorted(n for _, n, text in parts if "MẬT" in text) == ["0.pdf", "1.pdf", "2.pdf"]


def test_bytes_that_only_look_like_a_record_header_are_not_an_object() -> None:
    """The header's four bytes in slide text or other records: neither a compound file
    nor a zlib stream follows, PowerPoint shows nothing there either."""
    lookalikes = b"\x10\x00\x11\x10" + struct.pack("<I", 64) + b"\x78\x9c" + b"\xff" * 62
    lookalikes += b"\x00\x00\x11\x10" + struct.pack("<I", 16) + b"not a compound f"
    lookalikes += b"\x10\x00\x11\x10\xff\xff"  # cut short at the end of the stream
    assert ppt_objects(lookalikes, 1 << 20) == []
    assert failures(ppt(ppt_record(0x0FBA, lookalikes))) == []


def test_a_stream_of_object_headers_is_too_large_at_once() -> None:
    """Headers whose lengths each reach the end of the stream, with a zlib header after
    the size: each one a look at a few bytes, not a copy of the stream after it."""
    fake = b"\x10\x00\x11\x10" + struct.pack("<I", 0xFFFFFFF0) + b"\0\0\0\0\x78\x9c"
    started = time.process_time()
    assert failures(ppt(ppt_record(0x0FBA, fake * 60_000))) == [
        (TOO_LARGE, "more than 1000 object headers")
    ]
    assert time.process_time() - started < 2
    started = time.process_time()
    assert ppt_objects(fake * 999, 50 << 20) == []
    assert time.process_time() - started < 1


def test_an_object_that_inflates_past_the_bound_is_too_large() -> None:
    """Inflated up to the bound, never whole, whatever size the record declares."""
    big = ole_object("so-lieu.txt", bytes(4 << 20))  # 4 MB of zeros: some 4 KB compressed
    bomb = ppt_record(0x1011, struct.pack("<I", 1000) + zlib.compress(big, 9), instance=1)
    assert len(bomb) < 64 << 10
    started = time.process_time()
    found = failures(ppt(bomb), ExtractionLimits(max_file_bytes=1 << 20))
    assert time.process_time() - started < 5
    assert [kind for kind, _ in found] == [TOO_LARGE]


def test_a_size_that_lies_about_a_large_object_is_too_large() -> None:
    storage = ole_object("a.pdf", PDF)
    lying = ppt_record(
        0x1011, struct.pack("<I", 50 << 20) + zlib.compress(storage), instance=1
    )  # the declared size is what PowerPoint allocates
    assert [kind for kind, _ in failures(ppt(lying), ExtractionLimits(max_file_bytes=1 << 20))] == [
        TOO_LARGE
    ]


def test_fifty_one_objects_are_too_many() -> None:
    one = ppt_object_storage(ole_object("a.txt", b"Kinh gui."))
    assert [kind for kind, _ in failures(ppt(one * 51))] == [TOO_LARGE]


DAMAGEABLE = legacy_ppt_with_object(SLIDE, "bao-cao.pdf", PDF)


@DAMAGE_SETTINGS
@given(edits([b"\x00", b"\xff" * 4, b"\x10\x00\x11\x10", b"\x78\x9c", b"\xd0\xcf\x11\xe0"]))
def test_a_damaged_ppt_gives_text_or_a_failure(changes: list[tuple[float, int, bytes]]) -> None:
    data = damaged(DAMAGEABLE, changes)
    text = extract_message_bytes(mail_with_file(data, "ke-hoach.ppt", PPT_TYPE), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}
