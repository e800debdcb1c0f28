"""RAR and 7z attachments through the running server: their documents are read.

A TỐI MẬT decision zipped with WinRAR or 7-Zip went out unread (the classification took
rar/7z for unsupported files and ignored them); a password-protected RAR passed as well.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailsvc.db.models import MessageRecord
from tests.documents.samples import make_7z, make_docx, make_pdf, make_rar
from tests.e2e.conftest import DOMAIN, RunningServer
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send

CLERK = f"vanthu@{DOMAIN}"
SENDER = "vanthu@stc.example.vn"
SECRET = make_docx("BỘ CHỈ HUY QUÂN SỰ TỈNH\nTUYỆT MẬT\nSố: 77/BCH-TM\nBáo cáo tình hình.")


def with_archive(archive: bytes, name: str, subtype: str = "octet-stream") -> EmailMessage:
    msg = make_message(SENDER, CLERK, subject="Gửi hồ sơ")
    msg.add_attachment(archive, maintype="application", subtype=subtype, filename=name)
    return msg


def refused(server: RunningServer, msg: EmailMessage) -> smtplib.SMTPDataError:
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(server, msg, SENDER, [CLERK])
    return info.value


@pytest.mark.parametrize(
    ("name", "archive", "subtype"),
    [
        ("ho-so.rar", make_rar({"ho-so/bao-cao.docx": SECRET}), "vnd.rar"),
        ("ho-so.7z", make_7z({"ho-so/bao-cao.docx": SECRET}), "x-7z-compressed"),
        ("ho-so.dat", make_rar({"bao-cao.docx": SECRET}), "octet-stream"),  # by content
    ],
    ids=["rar", "7z", "rar named .dat"],
)
async def test_a_classified_document_in_an_archive_is_refused(
    server: RunningServer, name: str, archive: bytes, subtype: str
) -> None:
    server.add_mailbox(CLERK)
    error = await asyncio.to_thread(refused, server, with_archive(archive, name, subtype))
    assert error.smtp_code == 554 and b"classified content" in error.smtp_error
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []


async def test_a_password_protected_rar_cannot_be_read_and_is_refused(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    archive = make_rar({"bao-cao.docx": SECRET}, encrypted=True)
    error = await asyncio.to_thread(refused, server, with_archive(archive, "ho-so.rar"))
    assert error.smtp_code == 554
    assert b"cannot be read" in error.smtp_error and b"encrypted" in error.smtp_error


async def test_an_ordinary_archive_is_delivered(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    archive = make_7z({"ke-hoach.pdf": make_pdf("Kế hoạch tổ chức hội nghị trực tuyến")})
    msg = with_archive(archive, "ke-hoach.7z")
    assert await asyncio.to_thread(send, server, msg, SENDER, [CLERK]) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert b"classification=pass" in delivered.split(b"\r\n\r\n", 1)[0]
