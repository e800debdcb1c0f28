"""Files written into a meeting invitation (RFC 5545 §3.8.1.1 inline ``ATTACH``).

An iCalendar object may carry a file as a base64 property value (``ATTACH;ENCODING=BASE64;
VALUE=BINARY;FMTTYPE=application/pdf;X-FILENAME=qd.pdf:JVBERi0...``), folded over lines
of 75 octets; Outlook shows it as an attachment of the meeting. The invitation was read as
text only: a TỐI MẬT document written into it went out unread. Attacked here: the
invitation as a MIME part of its own (``text/calendar``, what clients send) and as an
``.ics`` file, folding with spaces and tabs, names from each parameter or from the type,
URIs, a value that does not decode, bounds, damage.
"""

from __future__ import annotations

import base64
import time
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE, calendar_files
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file, make_pdf, message
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

PDF = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 139/KH-CAT-PV01")


def fold(line: str, continuation: str = " ") -> str:
    """RFC 5545 §3.1: content lines of at most 75 octets, continued after CRLF + space."""
    out, rest = [line[:75]], line[75:]
    while rest:
        out.append(continuation + rest[:74])
        rest = rest[74:]
    return "\r\n".join(out)


def invitation(*attach_lines: str) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        "UID:040000008200E00074C5B7101A82E008",
        "DTSTART:20261210T020000Z",
        "SUMMARY:Họp triển khai kế hoạch",
        *attach_lines,
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def attach(data: bytes = PDF, params: str = ";FMTTYPE=application/pdf;X-FILENAME=ke-hoach.pdf",
           continuation: str = " ") -> str:  # fmt: skip
    value = base64.b64encode(data).decode()
    return fold(f"ATTACH;ENCODING=BASE64;VALUE=BINARY{params}:{value}", continuation)


def meeting_mail(ics: bytes) -> bytes:
    """What Outlook sends: the invitation as a text/calendar part beside the text."""
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["To"], msg["Subject"] = "cv@ubnd.example.vn", "vanthu@example.vn", "Họp"
    msg.set_content("Mời họp.\n")
    msg.add_alternative(ics, maintype="text", subtype="calendar", params={"method": "REQUEST"})
    return msg.as_bytes()


def marked(raw: bytes) -> list[tuple[str, str]]:
    return [(loc, name) for loc, name, text in read_parts(raw) if "TỐI MẬT" in text]


@pytest.mark.parametrize("continuation", [" ", "\t"])
def test_a_pdf_written_into_an_invitation_is_read(continuation: str) -> None:
    raw = meeting_mail(invitation(attach(continuation=continuation)))
    assert marked(raw) == [("attachment 1 > calendar attachment 1", "ke-hoach.pdf")]


def test_a_pdf_written_into_an_ics_file_is_read() -> None:
    raw = mail_with_file(invitation(attach()), "hop.ics", ("text", "calendar"))
    assert marked(raw) == [("attachment 1 > calendar attachment 1", "ke-hoach.pdf")]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (';FILENAME="ke hoach; ban 2.pdf"', "ke hoach; ban 2.pdf"),
        (";X-ORACLE-FILENAME=kh.pdf", "kh.pdf"),
        (";FMTTYPE=application/pdf", "calendar-1.pdf"),
        ("", "calendar-1"),  # read by its content
    ],
)
def test_each_name_a_client_writes(params: str, name: str) -> None:
    (found,) = calendar_files(invitation(attach(params=params)), 10_000_000)
    assert (found.name, found.data) == (name, PDF)
    raw = meeting_mail(invitation(attach(params=params)))
    assert marked(raw) == [("attachment 1 > calendar attachment 1", name)]


def test_an_attachment_by_uri_and_an_ordinary_invitation_are_text() -> None:
    ics = invitation("ATTACH;FMTTYPE=application/pdf:https://ubnd.example.vn/qd.pdf")
    assert calendar_files(ics, 10_000_000) == ()
    text = extract_message_bytes(meeting_mail(ics), ExtractionLimits())
    assert text.failures == ()
    assert any("Họp triển khai" in p.text for p in text.parts)


def test_a_value_that_does_not_decode_is_corrupt() -> None:
    ics = invitation("ATTACH;ENCODING=BASE64;VALUE=BINARY:JVBERi0*!*not base64")
    text = extract_message_bytes(meeting_mail(ics), ExtractionLimits())
    assert [(f.kind, f.location) for f in text.failures] == [(CORRUPT, "attachment 1")]


def test_too_many_or_too_large_are_too_large() -> None:
    many = invitation(*(attach(b"%d" % i, "") for i in range(51)))
    text = extract_message_bytes(meeting_mail(many), ExtractionLimits())
    assert [f.kind for f in text.failures] == [TOO_LARGE]
    big = extract_message_bytes(
        meeting_mail(invitation(attach())), ExtractionLimits(max_file_bytes=1000)
    )
    assert [f.kind for f in big.failures] == [TOO_LARGE]


def test_many_attach_lines_are_read_once_each() -> None:
    """20,000 ATTACH properties with empty values: no file, one pass over the text."""
    ics = invitation(*["ATTACH;ENCODING=BASE64;VALUE=BINARY:"] * 20_000)
    assert calendar_files(ics, 10_000_000) == ()


def test_quoted_parameters_without_a_value_are_read_in_one_pass() -> None:
    """A line of quoted parameters and no colon (each once matched two ways by the first
    pattern: 22 of them took 0.9 s of CPU, each one more doubled it; 26 here)."""
    ics = invitation("ATTACH" + ';X-FILENAME="a"' * 26, attach())
    started = time.process_time()
    (found,) = calendar_files(ics, 10_000_000)
    assert time.process_time() - started < 5
    assert found.name == "ke-hoach.pdf"


DAMAGEABLE = meeting_mail(invitation(attach()))


@DAMAGE_SETTINGS
@given(edits([b"ATTACH", b"ENCODING=BASE64", b";", b":", b"\r\n "]))
def test_a_damaged_invitation_gives_text_or_a_failure(
    changes: list[tuple[float, int, bytes]],
) -> None:
    text = extract_message_bytes(damaged(DAMAGEABLE, changes), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}


def test_the_plain_message_is_untouched() -> None:
    assert marked(message().as_bytes()) == []
