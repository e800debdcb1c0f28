"""Files inserted into an RTF document as objects, and its comments.

Word saves an object (Insert > Object > Create from file) in RTF as an OLE 1 object, hex
in an ``{\\*\\objdata}`` group: an OLE Package holding the file, or the compound file of an
Office document or of Acrobat's PDF object. The RTF reader left every destination out: a
TỐI MẬT PDF inserted into an RTF went out unread, as did a comment (``\\annotation``).
Attacked here: lengths that lie, too many or too large objects, linked objects, damage.
"""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE
from tests.documents.cfb import ole_object, ole_package
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file, make_docx, make_pdf, make_rtf, ole1_object
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

PDF = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 133/BC-CAT-PA03")
RTF_TYPE = ("application", "rtf")
COVER = "Kính gửi các đơn vị.\nTài liệu kèm theo."


def package(name: str, data: bytes) -> bytes:
    """An OLE Package's native data as OLE 1 carries it (no size field of its own)."""
    return ole_package(name, data)[4:]


def with_object(hexed: bytes, control: bytes = b"\\objemb") -> bytes:
    """The cover letter with an object group written by hand before the document's end."""
    group = b"{\\object" + control + b"{\\*\\objdata " + hexed + b"}}"
    return make_rtf(COVER)[:-1] + group + b"}"


def found(rtf: bytes, limits: ExtractionLimits | None = None) -> list[tuple[str, str]]:
    return [
        (loc, name)
        for loc, name, text in read_parts(mail_with_file(rtf, "cong-van.rtf", RTF_TYPE), limits)
        if "MẬT" in text
    ]


def failures(rtf: bytes, limits: ExtractionLimits | None = None) -> list[str]:
    raw = mail_with_file(rtf, "cong-van.rtf", RTF_TYPE)
    return [f.kind for f in extract_message_bytes(raw, limits or ExtractionLimits()).failures]


def test_a_packaged_pdf_is_read() -> None:
    rtf = make_rtf(COVER, objects=(("Package", package("bao-cao.pdf", PDF)),))
    assert found(rtf) == [("attachment 1 > embedded 1", "bao-cao.pdf")]


def test_an_office_document_object_is_read_as_its_compound_file() -> None:
    """Word.Document.12: the DOCX inside the object's compound file (its OLE Package)."""
    inner = ole_object("ke-hoach.docx", make_docx("SỞ NỘI VỤ\nMẬT\nSố: 55/SNV"))
    rtf = make_rtf(COVER, objects=(("Word.Document.12", inner),))
    assert found(rtf) == [("attachment 1 > embedded 1 > embedded 1", "ke-hoach.docx")]


def test_a_comment_is_read() -> None:
    assert found(make_rtf(COVER, comment="TỐI MẬT")) == [("attachment 1", "cong-van.rtf")]


def test_a_linked_object_has_nothing_to_read() -> None:
    linked = struct.pack("<II", 0x0501, 1) + b"\x08\x00\x00\x00Package\x00" + b"\0" * 16
    rtf = make_rtf(COVER).replace(
        b"}", b"{\\object\\objlink{\\*\\objdata " + linked.hex().encode() + b"}}}", 1
    )
    assert failures(rtf) == [] and found(rtf) == []


def test_native_data_shorter_than_it_says_is_corrupt() -> None:
    lying = ole1_object("Package", package("a.pdf", PDF))
    lying = lying[:-100]  # the size field still counts the 100 bytes cut
    rtf = make_rtf(COVER).replace(
        b"}", b"{\\object{\\*\\objdata " + lying.hex().encode() + b"}}}", 1
    )
    assert failures(rtf) == [CORRUPT]


def test_too_many_or_too_large_objects_are_too_large() -> None:
    small = ("Package", package("a.txt", b"Kinh gui."))
    assert failures(make_rtf(COVER, objects=(small,) * 51)) == [TOO_LARGE]
    big = ("Package", package("a.bin", bytes(300_000)))
    assert failures(make_rtf(COVER, objects=(big,)), ExtractionLimits(max_file_bytes=100_000)) == [
        TOO_LARGE
    ]


@pytest.mark.parametrize("spacing", [b"\n", b"\r\n", b" ", b"\t"])
def test_the_hex_may_be_broken_anywhere(spacing: bytes) -> None:
    hexed = ole1_object("Package", package("bao-cao.pdf", PDF)).hex().encode()
    broken = spacing.join(hexed[i : i + 64] for i in range(0, len(hexed), 64))
    rtf = with_object(broken)
    assert found(rtf) == [("attachment 1 > embedded 1", "bao-cao.pdf")]


DAMAGEABLE = make_rtf(COVER, objects=(("Package", package("bao-cao.pdf", PDF)),))


@DAMAGE_SETTINGS
@given(edits([b"\\objdata ", b"0", b"ff", b"}", b"{"]))
def test_a_damaged_rtf_gives_text_or_a_failure(changes: list[tuple[float, int, bytes]]) -> None:
    raw = mail_with_file(damaged(DAMAGEABLE, changes), "cong-van.rtf", RTF_TYPE)
    text = extract_message_bytes(raw, ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}


def test_many_objdata_groups_without_their_end_are_read_once() -> None:
    """Each group's hex runs to its "}" or the next \\objdata: 50,000 unclosed groups
    were each read to the end of the document (quadratic)."""
    rtf = make_rtf(COVER)[:-1] + b"{\\object{\\*\\objdata 0100000001000000" * 50_000 + b"}"
    started = time.process_time()
    text = extract_message_bytes(mail_with_file(rtf, "cong-van.rtf", RTF_TYPE), ExtractionLimits())
    assert time.process_time() - started < 5
    assert text.failures == ()  # linked objects (format 1): nothing to read
