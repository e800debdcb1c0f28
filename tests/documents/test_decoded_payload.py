"""mailsvc.message.decoded_payload: a part's decoded bytes computed once per parse and
shared by the worker's readers (extraction, the register's attachments, spam rules)."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from mailsvc.documents.extract import ExtractionLimits, analyse_message_bytes
from mailsvc.message import decoded_payload
from mailsvc.register.attachments import attachments_in, attachments_task


def message_with(data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "vanthu@sotc.example.vn"
    msg["To"] = "vanthu@stc.example.vn"
    msg["Subject"] = "Công văn"
    msg.set_content("Kính gửi.")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename="cv.pdf")
    return msg.as_bytes()


def test_a_part_is_decoded_once_and_every_reader_gets_the_same_bytes() -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 40
    parsed = email.message_from_bytes(message_with(data), policy=email.policy.default)
    (part,) = parsed.iter_attachments()
    first = decoded_payload(part)
    assert first == data
    assert decoded_payload(part) is first  # the same object: not decoded again
    assert [a.data for a in attachments_in(parsed)] == [data]
    assert attachments_in(parsed)[0].data is first
    assert decoded_payload(parsed) is None  # a multipart has no bytes of its own


def test_the_worker_call_reads_the_attachment_from_its_single_parse() -> None:
    data = b"%PDF-1.4\n" + base64.b64encode(bytes(range(256)) * 10)
    analysis = analyse_message_bytes(
        message_with(data), ExtractionLimits(), [("attachments", attachments_task, None)], "in"
    )
    assert not analysis.failures
    (found,) = analysis.results["attachments"]
    assert found.data == data and found.role == "main" and found.filename == "cv.pdf"


def test_the_subject_is_read_once_and_decoded() -> None:
    """The notice, the register and the metadata stage share InboundMessage.subject."""
    from datetime import UTC, datetime

    from mailsvc.message import InboundMessage

    def inbound(raw: bytes) -> InboundMessage:
        return InboundMessage("q1", "a@b.vn", ("c@d.vn",), raw, datetime(2026, 12, 5, tzinfo=UTC))

    msg = inbound(message_with(b"%PDF-1.7\n"))
    assert msg.subject == "Công văn"
    assert msg.subject is msg.subject  # cached, not parsed per reader
    assert inbound(b"From: a@b.vn\r\n\r\nx\r\n").subject == ""
    folded = b"Subject: =?utf-8?b?UXV54bq/dCDEkeG7i25o?=\r\n =?utf-8?q?_s=E1=BB=91_12?="
    folded += b"\r\n\r\nx\r\n"
    assert inbound(folded).subject == "Quyết định số 12"


def test_the_files_and_their_roles_are_worked_out_once_per_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The metadata stage (the main document) and the register's reading (every file) run
    in the same worker call on the same parse: one walk, one SHA-256 of each file."""
    import hashlib

    import mailsvc.register.attachments as attachments
    from mailsvc.register.attachments import main_attachment

    hashed: list[int] = []

    class Counting:
        @staticmethod
        def sha256(data: bytes) -> Any:
            hashed.append(len(data))
            return hashlib.sha256(data)

    monkeypatch.setattr(attachments, "hashlib", Counting)
    data = b"%PDF-1.7\n" + bytes(range(256)) * 40
    parsed = email.message_from_bytes(message_with(data), policy=email.policy.default)
    main = main_attachment(parsed)
    first = attachments_in(parsed)
    assert main is not None and main.data == data and first == [main]
    first.clear()  # a caller's list is its own
    assert attachments_in(parsed) == [main]
    assert hashed == [len(data)]
    again = email.message_from_bytes(message_with(data), policy=email.policy.default)
    assert attachments_in(again) == [main]  # another parse: worked out for it
    assert hashed == [len(data), len(data)]
