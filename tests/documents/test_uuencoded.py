"""Files uuencoded into a text body: ``begin 644 bao-cao.pdf`` ... ``end``.

Mail programs sent attachments this way before MIME, and Thunderbird and Outlook still show
such a block as an attachment of the message. The body was read as text only: a TỐI MẬT
PDF uuencoded into a plain-text mail went out unread. Attacked here: a body encoded again
(quoted-printable, base64), a message without MIME, lines padded past their length,
damage, prose that starts like a block, bounds.
"""

from __future__ import annotations

import binascii
import time
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE
from tests.documents.reading import read_parts
from tests.documents.samples import make_pdf, message
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

PDF = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 135/BC-CAT-PA03")


def uuencoded(data: bytes, name: str = "bao-cao.pdf", *, pad: bool = False) -> str:
    """``data`` as ``uuencode`` writes it (45 bytes a line); ``pad``: each line padded
    to full groups of four and a trailing character, as some encoders do."""
    lines = []
    for i in range(0, len(data), 45):
        line = binascii.b2a_uu(data[i : i + 45]).decode().rstrip("\n")
        lines.append(line + ("`" if pad else ""))
    return f"begin 644 {name}\n" + "\n".join(lines) + "\n`\nend\n"


def mail(body: str, cte: str | None = None) -> bytes:
    msg = message("Gửi tài liệu", body)
    if cte is not None:
        msg.set_content(body, cte=cte)
    return msg.as_bytes()


def secret_places(raw: bytes) -> list[tuple[str, str]]:
    return [(loc, name) for loc, name, text in read_parts(raw) if "TỐI MẬT" in text]


@pytest.mark.parametrize("cte", [None, "quoted-printable", "base64"])
def test_a_uuencoded_pdf_in_the_body_is_read(cte: str | None) -> None:
    body = "Kính gửi các đơn vị.\n\n" + uuencoded(PDF) + "\nTrân trọng.\n"
    assert secret_places(mail(body, cte)) == [("body 1 > uuencoded 1", "bao-cao.pdf")]


def test_a_message_without_mime_is_read() -> None:
    """No MIME-Version, no Content-Type: a text/plain body, as in 1990."""
    raw = (
        "From: vanthu@ubnd.example.vn\r\nTo: vanthu@stttt.example.vn\r\n"
        "Subject: bao cao\r\n\r\nKinh gui.\r\n\r\n" + uuencoded(PDF).replace("\n", "\r\n")
    ).encode()
    assert secret_places(raw) == [("body 1 > uuencoded 1", "bao-cao.pdf")]


def test_padded_lines_are_read() -> None:
    body = "Kính gửi.\n" + uuencoded(PDF, pad=True)
    assert secret_places(mail(body)) == [("body 1 > uuencoded 1", "bao-cao.pdf")]


def test_an_x_uuencode_attachment_is_read() -> None:
    """Content-Transfer-Encoding: x-uuencode on an attachment (the email package decodes it)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["To"], msg["Subject"] = "a@ubnd.example.vn", "b@stttt.example.vn", "x"
    msg.set_content("Kính gửi.")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="bao-cao.pdf")
    attachment = msg.get_payload()[1]
    del attachment["Content-Transfer-Encoding"]
    attachment["Content-Transfer-Encoding"] = "x-uuencode"
    attachment.set_payload(uuencoded(PDF))
    assert secret_places(msg.as_bytes()) == [("attachment 1", "bao-cao.pdf")]


def test_prose_that_begins_like_a_block_is_prose() -> None:
    body = "Kế hoạch:\nbegin 2024 kế hoạch năm\nKính gửi các đơn vị.\nend\n"
    text = extract_message_bytes(mail(body), ExtractionLimits())
    assert text.failures == () and len(text.attachments(top_level=False)) == 0


def test_a_line_that_does_not_decode_is_corrupt() -> None:
    block = uuencoded(PDF).split("\n")
    block[5] = "M" + "\u1ec6" * 30  # a letter uuencode never writes
    text = extract_message_bytes(mail("Kính gửi.\n" + "\n".join(block)), ExtractionLimits())
    assert [(f.kind, f.location) for f in text.failures] == [(CORRUPT, "body 1")]


def test_files_past_the_bound_are_too_large() -> None:
    body = "".join(uuencoded(bytes(20_000), f"{i}.bin") for i in range(3))
    text = extract_message_bytes(mail(body), ExtractionLimits(max_file_bytes=50_000))
    assert [f.kind for f in text.failures] == [TOO_LARGE]


DAMAGEABLE = mail("Kính gửi.\n" + uuencoded(PDF))


@DAMAGE_SETTINGS
@given(edits([b"begin 644 x\n", b"end\n", b"M", b"`", b"\xff"]))
def test_a_damaged_block_gives_text_or_a_failure(changes: list[tuple[float, int, bytes]]) -> None:
    text = extract_message_bytes(damaged(DAMAGEABLE, changes), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}


def test_many_begin_lines_without_an_end_are_each_read_once() -> None:
    """A block without ``end`` runs to the next ``begin`` line: 20,000 of them, each
    followed by one line, were each decoded to the end of the text (quadratic)."""
    line = binascii.b2a_uu(b"x" * 45).decode()
    body = "".join(f"begin 644 {i}.bin\n{line}" for i in range(20_000))
    started = time.process_time()
    text = extract_message_bytes(mail(body), ExtractionLimits())
    assert time.process_time() - started < 5
    assert [f.kind for f in text.failures] == [TOO_LARGE]  # more than fifty files


def test_many_begin_lines_followed_by_prose_are_looked_at_once() -> None:
    """Each ``begin`` line's block is searched for its ``end`` up to the next ``begin``
    only: 20,000 of them followed by prose and no ``end`` cost one pass."""
    body = "".join(f"begin 644 {i}.bin\nKính gửi các đơn vị.\n" for i in range(20_000))
    started = time.process_time()
    text = extract_message_bytes(mail(body), ExtractionLimits())
    assert time.process_time() - started < 5
    assert text.failures == () and len(text.attachments(top_level=False)) == 0
