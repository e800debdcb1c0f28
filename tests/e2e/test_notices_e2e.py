"""Refusals end to end: the SMTP answer, what is kept, who is told (and who is not)."""

from __future__ import annotations

import asyncio
import json
import smtplib
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from mailsvc.db.models import AuditEntry, MessageRecord
from mailsvc.quarantine.models import VirusDetection
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer, client_tls, wait_for
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send

CLERK = f"vanthu@{DOMAIN}"
OFFICIAL = f"annv.stttt@{DOMAIN}"
ADMIN = f"quantri@{DOMAIN}"
EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def inbox_count(server: RunningServer, user: str) -> int:
    return len(fetch_inbox(server, user))


async def test_classified_document_refused_with_notice_alert_and_audit(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    server.add_mailbox(OFFICIAL, role="official")
    server.add_mailbox(ADMIN, role="admin")
    msg = make_message(
        OFFICIAL,
        CLERK,
        subject="Gửi tài liệu hội nghị",
        body="ỦY BAN NHÂN DÂN TỈNH\n\nTỐI MẬT\n\nBáo cáo tình hình an ninh quý IV.\n",
    )
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(
            send, server, msg, OFFICIAL, [CLERK], "submission", (OFFICIAL, PASSWORD)
        )
    assert info.value.smtp_code == 554
    assert b"5.7.1" in info.value.smtp_error and b"classified" in info.value.smtp_error

    await wait_for(lambda: len(server.app.notices.sent) >= 2)
    kinds = dict(server.app.notices.sent)
    assert kinds == {"alert-classified": ADMIN, "notice-02": OFFICIAL}
    # The sender's notice: Vietnamese text, HTML and machine-readable JSON, auto-replied.
    [notice_bytes] = await asyncio.to_thread(fetch_inbox, server, OFFICIAL)
    notice = message_from_bytes(notice_bytes, policy=default_policy)
    assert notice["Auto-Submitted"] == "auto-replied"
    assert notice["In-Reply-To"] == msg["Message-ID"]
    text = notice.get_body(("plain",)).get_content()
    assert "THÔNG BÁO TỪ CHỐI TIẾP NHẬN VĂN BẢN" in text and "độ mật" in text
    [status_part] = [p for p in notice.iter_attachments() if p.get_filename() == "status.json"]
    status = json.loads(status_part.get_content())
    assert status["status_code"] == "02" and status["message_id"] == msg["Message-ID"]
    assert status["time"].endswith("+07:00")
    # Nothing of the content is stored: no message row, no delivery; only an audit entry.
    assert await asyncio.to_thread(inbox_count, server, CLERK) == 0
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "classified-refused")
        ).one()
        assert entry.details["sender"] == OFFICIAL
        assert entry.details["rule"]
        assert "TỐI MẬT" not in json.dumps(entry.details, ensure_ascii=False)


async def test_virus_refused_alerts_admins_and_never_notifies_sender(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    server.add_mailbox(ADMIN, role="admin")
    msg = make_message("cv@sender.example.vn", CLERK, subject="Hóa đơn")
    msg.add_attachment(
        EICAR.encode(), maintype="application", subtype="octet-stream", filename="hoadon.com"
    )
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK])
    assert info.value.smtp_code == 554 and b"virus" in info.value.smtp_error
    await wait_for(lambda: len(server.app.notices.sent) >= 1)
    assert server.app.notices.sent == [("alert-virus", ADMIN)]
    [alert] = await asyncio.to_thread(fetch_inbox, server, ADMIN)
    assert b"Eicar" in alert or b"EICAR" in alert.upper()
    with server.sessions() as session:
        row = session.scalars(select(VirusDetection)).one()
        assert row.mail_from == "cv@sender.example.vn" and row.client_ip == "127.0.0.1"
        assert session.scalars(select(MessageRecord)).all() == []


async def test_repeated_viruses_from_one_address_raise_an_outbreak_alert(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    server.add_mailbox(ADMIN, role="admin")
    for i in range(3):
        msg = make_message("cv@sender.example.vn", CLERK, subject=f"Hóa đơn {i}")
        msg.add_attachment(
            EICAR.encode(),
            maintype="application",
            subtype="octet-stream",
            filename=f"hoadon{i}.com",
        )
        with pytest.raises(smtplib.SMTPDataError):
            await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK])
        await wait_for(lambda n=i: len(server.app.notices.sent) >= n + 1)
    kinds = [kind for kind, _ in server.app.notices.sent]
    assert kinds == ["alert-virus", "alert-virus", "alert-outbreak"]
    alerts = await asyncio.to_thread(fetch_inbox, server, ADMIN)
    assert any("CẢNH BÁO DỊCH".encode() in a or b"=?utf-8?" in a for a in alerts)


async def test_subject_decoding_to_cr_lf_still_gets_its_notice(server: RunningServer) -> None:
    """An encoded Subject that decodes to CR/LF made composing the notice fail silently."""
    server.add_mailbox(CLERK)
    server.add_mailbox(OFFICIAL, role="official")
    raw = (
        f"From: {OFFICIAL}\r\nTo: {CLERK}\r\n"
        "Subject: =?utf-8?q?G=E1=BB=ADi_t=C3=A0i_li=E1=BB=87u=0D=0ABcc:_boss@evil.example?=\r\n"
        "Message-ID: <crlf-subject@sotttt.example.vn>\r\n"
        "Date: Sat, 21 Nov 2026 08:00:00 +0700\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "ỦY BAN NHÂN DÂN TỈNH\r\n\r\nTỐI MẬT\r\n\r\nBáo cáo tình hình an ninh quý IV.\r\n"
    ).encode()

    def submit() -> None:
        with server.smtp("submission") as client:
            client.ehlo("client.example.vn")
            client.starttls(context=client_tls())
            client.ehlo("client.example.vn")
            client.login(OFFICIAL, PASSWORD)
            client.sendmail(OFFICIAL, [CLERK], raw)

    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(submit)
    assert info.value.smtp_code == 554
    await wait_for(lambda: ("notice-02", OFFICIAL) in server.app.notices.sent)
    [notice_bytes] = await asyncio.to_thread(fetch_inbox, server, OFFICIAL)
    notice = message_from_bytes(notice_bytes, policy=default_policy)
    subject = str(notice["Subject"])
    assert "Gửi tài liệu" in subject and "Bcc: boss@evil.example" in subject
    assert "\r" not in subject and "\n" not in subject
    assert notice["Bcc"] is None
