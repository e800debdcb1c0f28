"""Outlook's winmail.dat (TNEF): its attachments and body are read like a zip's members.

Outlook sends a message written in "Rich Text Format" to other servers as a text part and
a ``winmail.dat`` part (``application/ms-tnef``) holding the attachments: Outlook shows
them as the message's own, other clients show a ``winmail.dat`` file. Before, that part
was an unsupported file: a MẬT plan inside it went out unread. Attacked here: bad
signatures, truncation, too many or too large attachments, damage anywhere.
"""

from __future__ import annotations

import struct

from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, TOO_LARGE
from tests.documents.reading import read_parts
from tests.documents.samples import attach, mail_with_file, make_docx, make_pdf, message
from tests.documents.tnef import ATTACH_DATA, ATTACHMENT, MESSAGE, attribute, winmail_dat
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

DOCX = make_docx("BỘ CÔNG AN\nMẬT\nSố: 31/KH-BCA")
PDF = make_pdf("SỞ NỘI VỤ\nTỐI MẬT\nSố: 48/SNV-TCBC")


def mail(data: bytes, name: str = "winmail.dat") -> bytes:
    return mail_with_file(data, name, ("application", "ms-tnef"))


parts = read_parts


def test_attachments_and_body_are_read() -> None:
    tnef = winmail_dat([("báo cáo.docx", DOCX), ("ke-hoach.pdf", PDF)], body="Kinh gui.")
    found = parts(mail(tnef))
    assert [(loc, name) for loc, name, text in found if "MẬT" in text] == [
        ("attachment 1 > member 1", "báo cáo.docx"),
        ("attachment 1 > member 2", "ke-hoach.pdf"),
    ]
    assert ("attachment 1 > body", "", "Kinh gui.") in found


def test_found_by_content_whatever_its_name_and_type() -> None:
    tnef = winmail_dat([("a.docx", DOCX)])
    msg = message()
    attach(msg, tnef, "thu.bin", ("application", "octet-stream"))
    assert any("MẬT" in text for _, _, text in parts(msg.as_bytes()))


def test_a_body_in_utf8_is_read_with_its_marks() -> None:
    tnef = winmail_dat([], body="Kính gửi các đơn vị.\nTỐI MẬT", codepage=65001)
    assert any("TỐI MẬT" in text for _, _, text in parts(mail(tnef)))


def test_a_tnef_that_does_not_parse_is_corrupt() -> None:
    good = winmail_dat([("a.docx", DOCX)])
    cut = good[: len(good) // 2] + b"\x02\xff"  # an attribute cut short, then nonsense
    text = extract_message_bytes(mail(b"\x78\x9f\x3e\x22\x01"), ExtractionLimits())
    assert [(f.location, f.kind) for f in text.failures] == [("attachment 1", CORRUPT)]
    # tnefparse hands out what the cut attribute holds: the DOCX inside is then corrupt
    text = extract_message_bytes(mail(cut), ExtractionLimits())
    assert [(f.location, f.kind) for f in text.failures] == [("attachment 1 > member 1", CORRUPT)]


def test_too_many_or_too_large_attachments_are_too_large() -> None:
    many = winmail_dat([(f"{i}.txt", b"xx") for i in range(600)])
    text = extract_message_bytes(mail(many), ExtractionLimits(max_documents=500))
    assert [f.kind for f in text.failures] == [TOO_LARGE]
    big = winmail_dat([("a.bin", b"\0" * 300_000)])
    text = extract_message_bytes(mail(big), ExtractionLimits(max_file_bytes=200_000))
    assert TOO_LARGE in [f.kind for f in text.failures]


def test_a_length_claimed_past_the_end_is_not_read_beyond_it() -> None:
    """A last attribute claiming 1 GiB with nothing after its header: the attachments
    before it are read, nothing is allocated for the claim."""
    claim = struct.pack("<BHHI", ATTACHMENT, *ATTACH_DATA, 1 << 30)
    lying = winmail_dat([("a.docx", DOCX)]) + claim
    assert any("MẬT" in text for _, _, text in parts(mail(lying)))
    assert attribute(ATTACHMENT, ATTACH_DATA, b"ab").endswith(struct.pack("<H", 0x61 + 0x62))


TNEF = winmail_dat([("a.docx", DOCX)], body="Kinh gui.")


@DAMAGE_SETTINGS
@given(edits([b"\x00", b"\xff" * 4, b"\x02\x0f\x80\x06\x00", b"\x78\x9f\x3e\x22"]))
def test_damaged_tnef_gives_text_or_a_failure(changes: list[tuple[float, int, bytes]]) -> None:
    text = extract_message_bytes(mail(damaged(TNEF, changes)), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, TOO_LARGE}


def test_a_stream_of_tiny_attributes_is_too_large_at_once() -> None:
    """tnefparse copies the rest of the stream for each attribute: 80,000 one-byte
    attributes (960 KB) took it 1.35 s of CPU, 400,000 would take the worker's whole CPU
    budget. More than 5,000 are refused before it reads them."""
    tiny = attribute(MESSAGE, (0x7777, 0x0006), b"x")
    text = extract_message_bytes(mail(winmail_dat([]) + tiny * 80_000), ExtractionLimits())
    assert [f.kind for f in text.failures] == [TOO_LARGE]
    assert read_parts(mail(winmail_dat([("a.docx", DOCX)]) + tiny * 4_000))  # under the cap
