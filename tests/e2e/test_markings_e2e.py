"""Classified markings in the standard place (ô 10a of Decree 30: under the number, or under
the "V/v" abstract of a công văn) are refused by a running server; a document with an
urgency stamp in the same place is delivered. Documents from the generated corpus."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailsvc.db.models import MessageRecord
from mailsvc.register.models import RegisterDocument
from tests.documents import generator
from tests.documents.generator import Doc
from tests.e2e.conftest import DOMAIN, RunningServer
from tests.e2e.test_smtp_core import fetch_inbox, send

CLERK = f"vanthu@{DOMAIN}"
SENDER = "vanthu@ubnd.example.vn"


def pick(fmt: str, form: str, position: str) -> Doc:
    for d in generator.corpus():
        if d.fmt == fmt and d.form == form and d.position == position and d.level:
            return d
    raise LookupError((fmt, form, position))


@pytest.mark.parametrize(
    ("fmt", "form", "position"),
    [
        ("pdf", "boxed", "under-number"),  # a boxed stamp under "Số:" (beside the date)
        ("pdf", "plain", "under-abstract"),  # under the "V/v" abstract
        ("docx", "plain", "under-number"),  # bold paragraph in the header table's left cell
        ("docx", "boxed", "under-number"),
    ],
)
async def test_stamp_under_number_is_refused(
    server: RunningServer, fmt: str, form: str, position: str
) -> None:
    server.add_mailbox(CLERK)
    doc = pick(fmt, form, position)
    msg = generator.mail(doc, sender=SENDER, recipient=CLERK)
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, SENDER, [CLERK])
    assert info.value.smtp_code == 554, info.value
    assert b"5.7.1" in info.value.smtp_error and b"classified" in info.value.smtp_error
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []
    assert await asyncio.to_thread(fetch_inbox, server, CLERK) == []


async def test_urgency_stamp_in_the_same_place_is_delivered(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    doc = next(d for d in generator.corpus() if d.trap == "urgency-stamp" and d.fmt == "pdf")
    msg = generator.mail(doc, sender=SENDER, recipient=CLERK)
    refused = await asyncio.to_thread(send, server, msg, SENDER, [CLERK])
    assert refused == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert f"<{doc.id}@corpus.example.vn>".encode() in delivered
    with server.sessions() as session:
        [entry] = session.scalars(select(RegisterDocument)).all()
        assert entry.number_notation == doc.truth.number
        assert entry.issued_date == doc.truth.issued
        # what the clerk checks: pages, files, the mail's Date (sent) and the language
        assert (entry.page_count, entry.attachment_count, entry.language) == (1, 1, "vi")
        assert entry.mail_date == datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


async def test_scanned_stamp_is_refused(server: RunningServer) -> None:
    """A paper document scanned to a PDF without a text layer: OCR finds the stamp."""
    server.add_mailbox(CLERK)
    doc = replace(pick("pdf", "boxed", "under-number"), scan_dpi=300)
    msg = generator.mail(doc, sender=SENDER, recipient=CLERK)
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, SENDER, [CLERK])
    assert info.value.smtp_code == 554 and b"classified" in info.value.smtp_error
    assert await asyncio.to_thread(fetch_inbox, server, CLERK) == []
