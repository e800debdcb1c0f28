"""Files embedded as objects in compound (OLE) files: the OLE Package Word makes of a PDF
inserted into a DOCX (``word/embeddings/oleObject1.bin``), a legacy .doc's ObjectPool, and
the other streams that hold a whole file ("Package": a DOCX inside a .doc; "CONTENTS");
and files that are two types at once.

Before, a compound file was read as UTF-16 runs only: a TỐI MẬT PDF inserted as an object
(shown as an icon, opened by a double click) went out unread. And a PDF header anywhere
in the first 1,024 bytes made any file a PDF: a .doc or a DOCX that begins with a harmless
PDF (Word opens the .doc, a PDF reader the PDF) was read as that PDF only. Attacked
here: lengths that point past the stream, too many or too large objects, damage anywhere
in the file, both polyglots.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, TOO_LARGE, UnreadableDocument, ole_native
from tests.documents.cfb import (
    Storage,
    legacy_doc_with_object,
    ole_object,
    ole_package,
    outlook_msg,
    write_cfb,
)
from tests.documents.reading import read_parts
from tests.documents.samples import (
    add_zip_member,
    embed_in_docx,
    mail_with_file,
    make_docx,
    make_odt,
    make_pdf,
)
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

PDF = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 118/BC-CAT-PA03")
DOCX = make_docx("SỞ TÀI CHÍNH\nMẬT\nSố: 77/STC-NS")
COVER = make_docx("Kính gửi các đơn vị.\nTài liệu kèm theo được nhúng dưới đây.")


mail = mail_with_file
found = read_parts


def test_a_pdf_packaged_in_a_docx_is_read() -> None:
    docx = embed_in_docx(COVER, "oleObject1.bin", ole_object("bao-cao an ninh.pdf", PDF))
    parts = found(mail(docx, "cong-van.docx"))
    inner = [(loc, name, text) for loc, name, text in parts if "TỐI MẬT" in text]
    assert [(loc, name) for loc, name, _ in inner] == [
        ("attachment 1 > embedded 1 > embedded 1", "bao-cao an ninh.pdf")
    ]


@pytest.mark.parametrize("inner", [PDF, DOCX], ids=["pdf", "docx"])
def test_a_file_in_a_legacy_docs_object_pool_is_read(inner: bytes) -> None:
    doc = legacy_doc_with_object("Kính gửi các đơn vị.\r", "phu-luc", inner)
    texts = [text for _, _, text in found(mail(doc, "cong-van.doc"))]
    assert any("Kính gửi các đơn vị" in t for t in texts)  # the .doc's own text, as before
    assert any("MẬT" in t and "Số:" in t for t in texts[1:])


def test_package_and_contents_streams_are_read_as_files() -> None:
    """A DOCX inside a .doc ("Package") and Acrobat's PDF object ("CONTENTS")."""
    doc = write_cfb(
        Storage(
            {
                "WordDocument": "Kính gửi.".encode("utf-16-le"),
                "ObjectPool": Storage(
                    {
                        "_1": Storage({"Package": DOCX}),
                        "_2": Storage({"CONTENTS": PDF}),
                    }
                ),
            }
        )
    )
    parts = found(mail(doc, "x.doc"))
    assert [name for _, name, text in parts if "MẬT" in text] == [
        "ObjectPool/_1/Package",
        "ObjectPool/_2/CONTENTS",
    ]


def test_the_three_layouts_of_an_ole10native_stream() -> None:
    assert ole_native(ole_package("báo cáo.txt", b"TOI MAT")) == ("báo cáo.txt", b"TOI MAT")
    unparsed = struct.pack("<I", 9) + b"\x01\x00rawdata"  # flags other than 2: bytes follow
    assert ole_native(unparsed) == ("", b"\x01\x00rawdata")
    compact = struct.pack("<I", 6) + b"\x02\x00\x01\x02\x03\x04"  # a control byte: no label
    assert ole_native(compact) == ("", b"\x01\x02\x03\x04")


@pytest.mark.parametrize(
    "stream",
    [
        struct.pack("<I", 1000) + b"\x02\x00a\x00",  # longer than its stream
        ole_package("a.txt", b"x" * 100)[:-50],  # the file cut short
        struct.pack("<I", 8) + b"\x02\x00abcdef",  # a name without its end
        b"\x01",
    ],
    ids=["total", "data", "name", "no-size"],
)
def test_a_package_whose_lengths_do_not_add_up_is_corrupt(stream: bytes) -> None:
    with pytest.raises(UnreadableDocument) as err:
        ole_native(stream)
    assert err.value.kind == CORRUPT
    doc = write_cfb(Storage({"ObjectPool": Storage({"_1": Storage({"\x01Ole10Native": stream})})}))
    text = extract_message_bytes(mail(doc, "x.doc"), ExtractionLimits())
    assert [f.kind for f in text.failures] == [CORRUPT]  # not delivered as read


def test_a_lying_length_inside_the_package_is_corrupt() -> None:
    good = ole_package("a.pdf", PDF)
    size_at = len(good) - len(PDF) - 4
    lying = good[:size_at] + struct.pack("<I", len(PDF) + 10_000) + PDF
    with pytest.raises(UnreadableDocument) as err:
        ole_native(lying)
    assert err.value.kind == CORRUPT


def test_too_many_or_too_large_objects_are_too_large() -> None:
    objects = {
        f"_{i}": Storage({"\x01Ole10Native": ole_package(f"{i}.txt", b"x")}) for i in range(51)
    }
    many = write_cfb(Storage(dict(objects)))
    text = extract_message_bytes(mail(many, "many.doc"), ExtractionLimits())
    assert [f.kind for f in text.failures] == [TOO_LARGE]
    big = legacy_doc_with_object("x", "big.bin", b"\0" * 300_000)
    text = extract_message_bytes(mail(big, "big.doc"), ExtractionLimits(max_file_bytes=200_000))
    assert TOO_LARGE in [f.kind for f in text.failures]


def test_a_compound_file_olefile_cannot_read_keeps_its_text() -> None:
    """The compound file's magic and then nonsense: its UTF-16 runs as before, no object."""
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 600 + "Kính gửi".encode("utf-16-le")
    assert any("Kính gửi" in text for _, _, text in found(mail(data, "x.doc")))


DOC = legacy_doc_with_object("Kính gửi.\r", "a.pdf", PDF)


@DAMAGE_SETTINGS
@given(edits([b"\x00", b"\xff" * 4, b"\xfe\xff\xff\xff", b"\x02\x00", b"%PDF-1.7"]))
def test_damaged_compound_files_give_text_or_a_failure(
    changes: list[tuple[float, int, bytes]],
) -> None:
    text = extract_message_bytes(mail(damaged(DOC, changes), "a.doc"), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, TOO_LARGE}


@given(st.binary(max_size=300))
def test_any_ole10native_bytes_give_a_file_or_corrupt(stream: bytes) -> None:
    try:
        name, data = ole_native(stream)
    except UnreadableDocument as err:
        assert err.kind == CORRUPT
    else:
        assert len(data) <= len(stream) and isinstance(name, str)


HARMLESS = make_pdf("UBND HUYỆN\nSố: 220/TB-UBND\nThông báo lịch tiếp công dân.")


def test_a_doc_that_starts_with_a_pdf_is_read_as_both() -> None:
    doc = write_cfb(
        Storage({"Data": HARMLESS, "WordDocument": "BỘ CHỈ HUY\rTỐI MẬT\r".encode("utf-16-le")}),
        first="Data",
    )
    assert b"%PDF-" in doc[:1024] and doc.startswith(b"\xd0\xcf\x11\xe0")
    parts = found(mail(doc, "ke-hoach.doc"))
    assert [loc for loc, _, text in parts if "TỐI MẬT" in text] == [
        "attachment 1 > read as application/msword"
    ]
    assert any("Thông báo lịch tiếp công dân" in text for _, _, text in parts)  # the PDF


def test_a_docx_that_starts_with_a_pdf_is_read_as_both() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr(zipfile.ZipInfo("a.pdf"), HARMLESS)  # stored: its bytes at offset 35
        with zipfile.ZipFile(io.BytesIO(DOCX)) as source:
            for item in source.infolist():
                target.writestr(item, source.read(item))
    docx = out.getvalue()
    assert b"%PDF-" in docx[:1024]
    parts = found(mail(docx, "bao-cao.docx"))
    assert [loc for loc, _, text in parts if "MẬT" in text] == [
        "attachment 1 > read as application/vnd.openxmlformats-officedocument"
        ".wordprocessingml.document"
    ]


def test_a_pdf_is_read_once() -> None:
    parts = found(mail(PDF, "bao-cao.pdf"))
    assert [loc for loc, _, text in parts if "TỐI MẬT" in text] == ["attachment 1"]


def test_a_zip_appended_to_a_pdf_is_read_as_both() -> None:
    """Named .zip, 7-Zip and WinRAR open it as the archive (the end record at the end, as
    in a self-extracting archive); a PDF reader shows the harmless PDF."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ho-so/ke-hoach.docx", DOCX)
    both = HARMLESS + out.getvalue()
    parts = found(mail(both, "ho-so.zip"))
    assert [loc for loc, _, text in parts if "MẬT" in text] == [
        "attachment 1 > read as application/zip > member 1"
    ]
    assert any("Thông báo lịch tiếp công dân" in text for _, _, text in parts)


def test_the_attachments_of_an_outlook_msg_file_are_read() -> None:
    """A message saved from Outlook (.msg) and attached: Outlook opens it with its own
    attachments, each in a storage of the compound file."""
    msg_file = outlook_msg(
        "Kế hoạch", "Kính gửi các đơn vị.", [("Kế hoạch công tác.docx", DOCX), ("b.pdf", PDF)]
    )
    found_parts = found(mail(msg_file, "ke-hoach.msg"))
    assert [(loc, name) for loc, name, text in found_parts if "MẬT" in text] == [
        ("attachment 1 > embedded 1", "Kế hoạch công tác.docx"),
        ("attachment 1 > embedded 2", "b.pdf"),
    ]
    assert any("Kính gửi các đơn vị" in text for _, _, text in found_parts)  # the body


def test_an_ole_object_in_an_odt_is_read() -> None:
    """LibreOffice keeps an OLE object as a compound file in a member "Object N" beside
    the ODF objects' folders ("Object 1/content.xml"), which were the only ones read."""
    odt = add_zip_member(make_odt("Kính gửi.", embedded="Phụ lục"), "Object 2",
                         ole_object("bao-cao.pdf", PDF))  # fmt: skip
    parts = found(mail(odt, "cong-van.odt"))
    assert [(loc, name) for loc, name, text in parts if "TỐI MẬT" in text] == [
        ("attachment 1 > embedded 1 > embedded 1", "bao-cao.pdf")
    ]
    assert any("Phụ lục" in text for _, _, text in parts)  # the ODF object, as before
