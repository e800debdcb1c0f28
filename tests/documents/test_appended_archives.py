"""An archive after a file's own bytes: ``copy /b anh.jpg + ho-so.rar anh.jpg``.

An image viewer shows the picture; WinRAR and 7-Zip open the same file as the archive (they
look for its signature anywhere, as they do in a self-extracting .exe), and zip readers find
a ZIP's directory from its end record at the end of the file. Before, only a ZIP after a
PDF was read: a TỐI MẬT document in a RAR or 7z after a photo, a PDF or a program, or in a
ZIP after a photo, went out unread. Each such archive is now read one level down
(``read as <type> from byte N``), within the same bounds; one that cannot be read is a
failure like any archive's. Files whose own structure holds other files as they are (an
archive's members, a compound file's objects) are searched only after their own end (a
ZIP package's end record, a compound file's last used sector): WinRAR opens a .doc with a
RAR after it as that RAR; their members are read as members, once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import (
    CORRUPT,
    ENCRYPTED,
    TOO_LARGE,
    appended_archives,
    container_end,
    sniff_all,
)
from tests.documents.cfb import legacy_doc_with_object
from tests.documents.reading import read_parts
from tests.documents.samples import (
    mail_with_file,
    make_7z,
    make_docx,
    make_pdf,
    make_photo,
    make_rar,
    make_zip,
)
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

DATA = Path(__file__).resolve().parent.parent / "data"

SECRET = make_docx("BỘ CHỈ HUY QUÂN SỰ TỈNH\nTUYỆT MẬT\nSố: 80/KH-BCH")
SECRET_TEXT = "TUYỆT MẬT\nSố: 81/BC-BCH".encode()  # stored as it is: no ZIP inside
HARMLESS = make_pdf("UBND HUYỆN\nSố: 220/TB-UBND\nThông báo lịch tiếp công dân.")
PHOTO = make_photo("JPEG")
# a self-extracting archive's stub: a Windows program, then the archive
PROGRAM = b"MZ\x90\x00" + bytes(60) + b"This program cannot be run in DOS mode.\r\n" * 200

Maker = Callable[[dict[str, bytes]], bytes]
ARCHIVES: dict[str, tuple[Maker, str]] = {
    "rar": (make_rar, "application/vnd.rar"),
    "7z": (make_7z, "application/x-7z-compressed"),
}
CARRIERS = {
    "photo": (PHOTO, "anh-hoi-nghi.jpg"),
    "png": (make_photo("PNG"), "so-do.png"),
    "pdf": (HARMLESS, "thong-bao.pdf"),
    "text": ("Danh sách đại biểu dự họp.\r\n".encode() * 40, "danh-sach.txt"),
    "program": (PROGRAM, "ho-so.exe"),
}


def secret_places(raw: bytes) -> list[str]:
    return [loc for loc, _, text in read_parts(raw) if "TUYỆT MẬT" in text]


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
@pytest.mark.parametrize("archive", sorted(ARCHIVES))
def test_a_rar_or_7z_after_a_file_is_read(carrier: str, archive: str) -> None:
    cover, name = CARRIERS[carrier]
    maker, kind = ARCHIVES[archive]
    both = cover + maker({"bao-cao.txt": SECRET_TEXT})
    assert b"%PDF-" not in both[1:1024] or carrier == "pdf"  # not the PDF polyglot case
    assert secret_places(mail_with_file(both, name)) == [
        f"attachment 1 > read as {kind} from byte {len(cover)} > member 1"
    ]


@pytest.mark.parametrize("carrier", ["photo", "png", "text", "program"])
def test_a_zip_after_a_file_is_read(carrier: str) -> None:
    cover, name = CARRIERS[carrier]
    both = cover + make_zip({"ho-so/ke-hoach.docx": SECRET})
    assert secret_places(mail_with_file(both, name)) == [
        "attachment 1 > read as application/zip > member 1"
    ]


def test_the_picture_is_read_as_before() -> None:
    """The carrier keeps its own reading: a PDF's text is still read at its place."""
    both = HARMLESS + make_7z({"a.docx": SECRET})
    parts = read_parts(mail_with_file(both, "thong-bao.pdf"))
    assert [loc for loc, _, text in parts if "lịch tiếp công dân" in text] == ["attachment 1"]


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
def test_a_file_without_an_archive_is_read_once(carrier: str) -> None:
    cover, name = CARRIERS[carrier]
    assert appended_archives(cover) == []
    assert all("read as" not in loc for loc, _, _ in read_parts(mail_with_file(cover, name)))


def test_an_archive_inside_an_archive_is_read_as_its_member_only() -> None:
    """A container's members are walked: a RAR stored in a ZIP is not searched for too."""
    outer = make_zip({"ho-so.rar": make_rar({"bao-cao.txt": SECRET_TEXT})})
    assert secret_places(mail_with_file(outer, "ho-so.zip")) == [
        "attachment 1 > member 1 > member 1"
    ]


@pytest.mark.parametrize("archive", sorted(ARCHIVES))
def test_an_appended_archive_cut_short_is_corrupt(archive: str) -> None:
    """An archive no reader can open hides nothing, but one ours cannot read and WinRAR
    can repair would: unreadable is a failure, as for an attached archive."""
    maker, kind = ARCHIVES[archive]
    whole = maker({"bao-cao.txt": SECRET_TEXT * 50})
    raw = mail_with_file(PHOTO + whole[: len(whole) // 2], "anh.jpg")
    text = extract_message_bytes(raw, ExtractionLimits())
    assert [(f.kind, f.location) for f in text.failures] == [
        (CORRUPT, f"attachment 1 > read as {kind} from byte {len(PHOTO)}")
    ]


def test_an_appended_archive_keeps_the_bounds() -> None:
    bomb = make_7z({"zeros.txt": bytes(32 << 20)})
    text = extract_message_bytes(
        mail_with_file(PHOTO + bomb, "anh.jpg"), ExtractionLimits(max_file_bytes=1 << 20)
    )
    assert [(f.kind, f.detail) for f in text.failures] == [(TOO_LARGE, "member too big")]


DAMAGEABLE = PHOTO + make_rar({"a.txt": SECRET_TEXT}) + make_7z({"b.txt": SECRET_TEXT})


@DAMAGE_SETTINGS
@given(edits([b"\x00", b"\xff" * 4, b"Rar!\x1a\x07\x00", b"7z\xbc\xaf\x27\x1c", b"PK\x05\x06"]))
def test_damaged_appended_archives_give_text_or_a_failure(
    changes: list[tuple[float, int, bytes]],
) -> None:
    data = damaged(DAMAGEABLE, changes)
    text = extract_message_bytes(mail_with_file(data, "anh.jpg"), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}


@given(st.binary(min_size=0, max_size=4096))
def test_any_bytes_give_a_list_of_readings(data: bytes) -> None:
    for kind, start in appended_archives(data):
        assert 0 <= start < len(data) and kind


LEGACY_DOC = (DATA / "classification/legacy/quy-che-ky-so.doc").read_bytes()
CONTAINERS = {
    "doc": (LEGACY_DOC, "quy-che.doc"),  # made by LibreOffice
    "doc-written": (legacy_doc_with_object("Kính gửi.", "a.txt", b"x"), "to-trinh.doc"),
    "docx": (make_docx("Kính gửi các đơn vị."), "cong-van.docx"),
    "zip": (make_zip({"a.txt": b"Danh sach"}), "ho-so.zip"),
}


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("archive", sorted(ARCHIVES))
def test_an_archive_after_a_container_is_read(container: str, archive: str) -> None:
    """WinRAR does not read compound files: it opens a .doc with a RAR after it as that
    RAR, as it opens a photo with one. After a ZIP package, 7-Zip finds the archive too."""
    cover, name = CONTAINERS[container]
    end = container_end(cover, sniff_all(cover, name, "application/octet-stream")[0][0])
    assert end == len(cover)  # the container's own bytes, to the last one
    maker, kind = ARCHIVES[archive]
    both = cover + maker({"bao-cao.txt": SECRET_TEXT})
    assert secret_places(mail_with_file(both, name)) == [
        f"attachment 1 > read as {kind} from byte {len(cover)} > member 1"
    ]


def test_an_archive_stored_in_a_container_is_read_once() -> None:
    """A RAR inserted into a .doc as an object, or stored in a ZIP: read as the member it
    is, not once more as bytes after the container."""
    rar = make_rar({"bao-cao.txt": SECRET_TEXT})
    doc = legacy_doc_with_object("Kính gửi.", "ho-so.rar", rar)
    assert [r for r in sniff_all(doc, "to-trinh.doc", "application/msword")][1:] == []
    assert len(secret_places(mail_with_file(doc, "to-trinh.doc"))) == 1
    stored = make_zip({"ho-so.rar": rar})
    assert len(secret_places(mail_with_file(stored, "ho-so.zip"))) == 1


@given(st.binary(min_size=0, max_size=4096))
def test_any_container_tail_is_an_offset_or_nothing(tail: bytes) -> None:
    for cover, name in CONTAINERS.values():
        kind = sniff_all(cover, name, "application/octet-stream")[0][0]
        end = container_end(cover + tail, kind)
        assert end is None or 0 < end <= len(cover) + len(tail)
