"""The notice's text parts (mailsvc.notify.notices): quoted-printable UTF-8 that reads back
as exactly the rendered text, in lines a mail system carries unchanged."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime
from pathlib import Path

from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.notify.notices import NoticeComposer, StatusNotice
from mailsvc.time import VIETNAM


def _composer(home: Path) -> NoticeComposer:
    return NoticeComposer(
        templates_dir(Settings(home=home)) / "notices",
        hostname="mail.stttt.daknong.gov.vn",
        domain="stttt.daknong.gov.vn",
    )


def test_text_parts_read_back_as_rendered(tmp_path: Path) -> None:
    composer = _composer(tmp_path)
    notice = StatusNotice(
        recipient="vanthu@stc.daknong.gov.vn",
        status_code="05",
        message_id="<35@stc.daknong.gov.vn>",
        subject="V/v gửi Quyết định số 12/2026/QĐ-UBND = dự thảo. " * 3,
        time=datetime(2026, 12, 7, 9, 30, tzinfo=VIETNAM),
        incoming_number="12",
        number_notation="12/2026/QĐ-UBND",
        reason="Văn bản có chữ ký số không hợp lệ.\n.\nTừ chối tiếp nhận.  ",
    )
    raw = composer.status_message(notice)
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends only"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = {p.get_content_subtype(): p for p in msg.walk() if p.get_content_maintype() == "text"}
    for subtype, template in (("plain", "notice.txt.j2"), ("html", "notice.html.j2")):
        part = parts[subtype]
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
        encoded = part.get_payload(decode=False)
        assert max(map(len, encoded.splitlines())) <= 76  # RFC 2045 6.7
        text = part.get_payload(decode=True).decode("utf-8")
        assert "Quyết định số 12/2026/QĐ-UBND = dự thảo." in text
        assert "Từ chối tiếp nhận." in text
        # the line ends are the message's (CRLF); the characters are the rendered text's
        expected = composer.render(template, composer.template_values(notice))
        assert text.replace("\r\n", "\n") == expected


def test_the_notice_reads_back_as_a_mail_reader_sees_it(tmp_path: Path) -> None:
    """The notice's structure is written by mailsvc, not by the email package's generator:
    the email package must read it back as the parts it was made of (header fields
    decoded, multipart/mixed of multipart/alternative text + HTML and status.json)."""
    composer = _composer(tmp_path)
    notice = StatusNotice(
        recipient="vanthu@stc.daknong.gov.vn",
        status_code="01",
        message_id="<36@stc.daknong.gov.vn>",
        subject="Công văn về việc --=_mailsvc_ thử ranh giới\r\n--x--",
        time=datetime(2026, 12, 7, 9, 30, tzinfo=VIETNAM),
        incoming_number="13",
        number_notation="36/STC-VP",
    )
    raw = composer.status_message(notice)
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends only"
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(map(len, body.split(b"\r\n"))) <= 76  # RFC 2045 6.7, 6.8
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert not msg.defects and all(not p.defects for p in msg.walk())
    assert msg["MIME-Version"] == "1.0"
    assert str(msg["From"]) == "Hệ thống thư công vụ <postmaster@stttt.daknong.gov.vn>"
    assert str(msg["Subject"]).startswith("Thông báo văn bản đã đến: Công văn về việc")
    assert msg["In-Reply-To"] == "<36@stc.daknong.gov.vn>"
    shape = [(p.get_content_type(), p.get_filename()) for p in msg.walk()]
    assert shape == [
        ("multipart/mixed", None),
        ("multipart/alternative", None),
        ("text/plain", None),
        ("text/html", None),
        ("application/json", "status.json"),
    ]
    status = json.loads(list(msg.walk())[4].get_content())
    assert status["status_code"] == "01" and status["incoming_number"] == "13"
    assert status["number_notation"] == "36/STC-VP"
    assert status["time"] == "2026-12-07T09:30:00+07:00"
    texts = [p.get_content() for p in msg.walk() if p.get_content_maintype() == "text"]
    values = composer.template_values(notice)
    assert [t.replace("\r\n", "\n") for t in texts] == [
        composer.render("notice.txt.j2", values),
        composer.render("notice.html.j2", values),
    ]
