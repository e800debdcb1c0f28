"""RAR and 7z archives in the text extraction (libarchive): their members are read like a
zip's, within the same bounds, and what cannot be read says why.

Before, both were "unsupported" and ignored by the classification: a TỐI MẬT document in a
.rar went out unread. Attacked here: a member whose password flag is set but whose
stored bytes libarchive hands out as they are (ciphertext reads as no marking), a stored
DOCX that made libarchive's zip reader outbid the RAR reader, bombs, truncation and random
damage.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE
from tests.documents.samples import mail_with_file, make_7z, make_docx, make_pdf, make_rar
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

DOCX = make_docx("BỘ CHỈ HUY QUÂN SỰ TỈNH\nTUYỆT MẬT\nSố: 77/BCH-TM")
PDF = make_pdf("SỞ NỘI VỤ\nMẬT\nSố: 48/SNV-TCBC")


mail = mail_with_file


def texts(raw: bytes, limits: ExtractionLimits | None = None) -> list[tuple[str, str]]:
    text = extract_message_bytes(raw, limits or ExtractionLimits())
    return [(p.location, p.text) for p in text.attachments(top_level=False)]


Maker = Callable[[dict[str, bytes]], bytes]


@pytest.mark.parametrize("maker", [make_rar, make_7z], ids=["rar", "7z"])
def test_members_are_read_like_a_zips(maker: Maker) -> None:
    archive = maker({"ho-so/quyet-dinh.docx": DOCX, "ho-so/bao-cao.pdf": PDF})
    found = texts(mail(archive, "ho-so.bin"))  # by content, not by name
    assert [loc for loc, _ in found] == ["attachment 1 > member 1", "attachment 1 > member 2"]
    assert "TUYỆT MẬT" in found[0][1] and "MẬT" in found[1][1]


def test_a_stored_docx_in_a_rar_is_read_as_the_docx() -> None:
    """libarchive's zip reader bid for the archive (the DOCX's end record lies near its
    end) and listed the DOCX's XML parts as members: the reader is the magic's only."""
    text = extract_message_bytes(mail(make_rar({"a.docx": DOCX}), "a.rar"), ExtractionLimits())
    [document] = text.attachments(top_level=False)
    assert document.filename == "a.docx" and "TUYỆT MẬT" in document.text


def test_vietnamese_member_names_are_kept() -> None:
    text = extract_message_bytes(mail(make_7z({"Quyết định.pdf": PDF}), "x.7z"), ExtractionLimits())
    assert [p.filename for p in text.attachments(top_level=False)] == ["Quyết định.pdf"]


def test_an_encrypted_rar_member_is_not_read_as_text() -> None:
    """The password flag is the only sign: libarchive returns a stored member's bytes."""
    raw = mail(make_rar({"a.txt": "TỐI MẬT".encode()}, encrypted=True), "a.rar")
    text = extract_message_bytes(raw, ExtractionLimits())
    assert text.attachments(top_level=False) == ()
    assert [(f.kind, f.location) for f in text.failures] == [(ENCRYPTED, "attachment 1 > member 1")]


def test_a_7z_bomb_stops_at_the_member_limit() -> None:
    bomb = make_7z({"zeros.txt": bytes(64 << 20)})
    assert len(bomb) < 64 << 10
    limits = ExtractionLimits(max_file_bytes=1 << 20)
    started = time.process_time()
    text = extract_message_bytes(mail(bomb, "bomb.7z"), limits)
    assert time.process_time() - started < 5
    assert [(f.kind, f.detail) for f in text.failures] == [(TOO_LARGE, "member too big")]


def test_all_members_together_stop_at_the_expanded_limit() -> None:
    members = {f"{i}.txt": b"x" * 400_000 for i in range(5)}
    limits = ExtractionLimits(max_expanded_bytes=1_000_000)
    text = extract_message_bytes(mail(make_rar(members), "a.rar"), limits)
    assert len(text.attachments(top_level=False)) == 2
    assert {f.kind for f in text.failures} == {TOO_LARGE}


@pytest.mark.parametrize("maker", [make_rar, make_7z], ids=["rar", "7z"])
def test_a_truncated_archive_is_corrupt(maker: Maker) -> None:
    archive = maker({"a.pdf": PDF})
    text = extract_message_bytes(mail(archive[: len(archive) // 2], "a.bin"), ExtractionLimits())
    # the RAR stores the PDF's first bytes within its own first 1,024, so a PDF reader
    # would take it for a PDF too: each reading fails
    assert {f.kind for f in text.failures} == {CORRUPT}


ARCHIVES = {"rar": make_rar({"a.pdf": PDF, "b.docx": DOCX}), "7z": make_7z({"a.pdf": PDF})}


@DAMAGE_SETTINGS
@given(
    st.sampled_from(sorted(ARCHIVES)),
    edits([b"\x00", b"\xff" * 4, b"Rar!\x1a\x07\x00", b"7z\xbc\xaf\x27\x1c", b"PK\x05\x06"]),
)
def test_damaged_archives_give_text_or_a_failure(
    which: str, changes: list[tuple[float, int, bytes]]
) -> None:
    data = damaged(ARCHIVES[which], changes)
    text = extract_message_bytes(mail(data, f"a.{which}"), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}


def test_a_rar_that_starts_with_a_stored_pdf_is_read_to_its_last_member() -> None:
    """RAR stores a PDF (already compressed) as it is: its header lies within the archive's
    first 1,024 bytes, which made the whole archive a PDF and its other members unread."""
    harmless = make_pdf("UBND HUYỆN\nSố: 220/TB-UBND\nThông báo lịch tiếp công dân.")
    archive = make_rar({"thong-bao.pdf": harmless, "ke-hoach.docx": DOCX})
    assert b"%PDF-" in archive[:1024]
    found = texts(mail(archive, "ho-so.rar"))
    assert [loc for loc, text in found if "TUYỆT MẬT" in text] == [
        "attachment 1 > read as application/vnd.rar > member 2"
    ]
