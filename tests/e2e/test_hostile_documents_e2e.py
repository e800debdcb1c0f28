"""Hostile documents through the running server: what a sender can hide in a file."""

from __future__ import annotations

import asyncio
import io
import smtplib
import zipfile

import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from sqlalchemy import select

from mailsvc.db.models import MessageRecord
from tests.documents.samples import encrypt_odt, make_docx, make_odt
from tests.e2e.conftest import DOMAIN, RunningServer
from tests.e2e.test_smtp_core import make_message, send

CLERK = f"vanthu@{DOMAIN}"
SENDER = "vanthu@stc.example.vn"
DOCX_TYPE = ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document")


def _laughs(levels: int = 6) -> str:
    """A document.xml whose nested entities expand ~700 bytes into 10**levels characters."""
    decls = ['<!ENTITY e0 "aaaaaaaaaa">']
    decls += [f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, levels)]
    return (
        '<?xml version="1.0" encoding="UTF-16"?>'
        f"<!DOCTYPE w:document [{''.join(decls)}]>"
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>&e{levels - 1};</w:t></w:r></w:p></w:body></w:document>"
    )


def _utf16_laughs_docx() -> bytes:
    """A real DOCX whose word/document.xml is the entity bomb, encoded as UTF-16."""
    source = zipfile.ZipFile(io.BytesIO(make_docx("Kính gửi")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = _laughs().encode("utf-16")
            target.writestr(info.filename, data)
    return out.getvalue()


async def test_utf16_entity_expansion_in_docx_is_not_accepted(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    bomb = _utf16_laughs_docx()
    assert len(_laughs().encode("utf-16")) < 2048
    msg = make_message(SENDER, CLERK, subject="Công văn số 12/STC-VP")
    msg.add_attachment(bomb, maintype=DOCX_TYPE[0], subtype=DOCX_TYPE[1], filename="cv-12.docx")
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, SENDER, [CLERK])
    # classification.yaml: unreadable.corrupt decides between 451 and 554; never 250
    assert info.value.smtp_code in (451, 554)
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []


def password_protected(document: bytes) -> bytes:
    """Word's "Encrypt with Password": the DOCX inside an OLE compound file (ECMA-376
    agile encryption), made by msoffcrypto-tool."""
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(document)).encrypt("mat-khau-2026", out)
    return out.getvalue()


@pytest.mark.parametrize("name", ["bao-cao.docx", "bao-cao.doc", "bao-cao"])
async def test_a_password_protected_word_file_cannot_be_read_and_is_refused(
    server: RunningServer, name: str
) -> None:
    """Its text is ciphertext: read as a compound file's UTF-16 runs it showed no marking
    and the classified report inside went out."""
    server.add_mailbox(CLERK)
    locked = password_protected(make_docx("CÔNG AN TỈNH\nTỐI MẬT\nSố: 901/CAT-PV01"))
    msg = make_message(SENDER, CLERK, subject="Gửi báo cáo")
    msg.add_attachment(locked, maintype=DOCX_TYPE[0], subtype=DOCX_TYPE[1], filename=name)
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, SENDER, [CLERK])
    assert info.value.smtp_code == 554
    assert b"cannot be read" in info.value.smtp_error and b"encrypted" in info.value.smtp_error


@pytest.mark.parametrize("whole_package", [False, True], ids=["members", "whole-package"])
async def test_an_odt_saved_with_a_password_cannot_be_read_and_is_refused(
    server: RunningServer, whole_package: bool
) -> None:
    """LibreOffice's "Save with password": each XML member encrypted (read as bad XML:
    refused as damaged, the wrong word), or as ODF 1.4 does it, the whole package in one
    encrypted member (no content.xml: read as a plain zip of unreadable members and
    delivered, the ciphertext unchecked)."""
    server.add_mailbox(CLERK)
    locked = encrypt_odt(make_odt("SỞ NỘI VỤ\nMẬT\nSố: 52/SNV-TCBC"), whole_package=whole_package)
    msg = make_message(SENDER, CLERK, subject="Gửi báo cáo")
    msg.add_attachment(locked, maintype="application", subtype="octet-stream", filename="bc.odt")
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, SENDER, [CLERK])
    assert info.value.smtp_code == 554
    assert b"cannot be read" in info.value.smtp_error and b"encrypted" in info.value.smtp_error
