"""Viruses and hostile content through a running mailsvc (real SMTP client, real clamd)."""

from __future__ import annotations

import asyncio
import smtplib

from sqlalchemy import select

import tests.hostile_mail as hm
from mailsvc.quarantine.models import VirusDetection
from tests.e2e.conftest import DOMAIN, RunningServer, wait_for

CLERK = f"vanthu@{DOMAIN}"
SENDER = "vanthu@partner.example.vn"


def addressed(raw: bytes) -> bytes:
    return raw.replace(hm.RECIPIENT.encode(), CLERK.encode())


def send(server: RunningServer, data: bytes) -> tuple[int, bytes]:
    """The DATA reply (code, text); 250 when accepted."""
    with server.smtp() as client:
        client.ehlo("mail.partner.example.vn")
        try:
            client.sendmail(SENDER, [CLERK], addressed(data))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error
    return 250, b""


def delivered(server: RunningServer) -> int:
    """Messages in the clerk's INBOX and Junk together."""
    client = server.imap(CLERK)
    try:
        total = 0
        for name in ("INBOX", "Junk"):
            typ, data = client.select(name, readonly=True)
            if typ == "OK":
                total += int(data[0])
        return total
    finally:
        client.logout()


async def test_viruses_are_refused_at_data_and_recorded(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    samples = {
        "plain": hm.eicar_plain(),
        "zipped": hm.eicar_zipped(),
        "nested": hm.eicar_nested(),
        "own-signature": hm.marker_virus(),
    }
    for name, raw in samples.items():
        code, text = await asyncio.to_thread(send, server, raw)
        assert code == 554, (name, text)
        assert b"5.7.1" in text and b"virus" in text, (name, text)
    assert await asyncio.to_thread(delivered, server) == 0

    with server.sessions() as session:
        rows = session.scalars(select(VirusDetection).order_by(VirusDetection.id)).all()
    assert len(rows) == len(samples)
    assert all(r.client_ip == "127.0.0.1" and r.mail_from == SENDER for r in rows)
    assert all(r.recipients == [CLERK] and len(r.sha256) == 64 for r in rows)
    assert "Eicar" in rows[0].signature and "Mailsvc.Test.Marker" in rows[3].signature

    # A clean message still goes through.
    assert (await asyncio.to_thread(send, server, hm.clean()))[0] == 250
    assert await asyncio.to_thread(delivered, server) == 1


async def test_hostile_structure_is_refused(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    samples = {
        "42.zip": (hm.with_attachment(hm.zip_bomb(), "42.zip"), b"archives nested"),
        "ratio bomb": (hm.with_attachment(hm.ratio_bomb(), "zeros.zip"), b"zip bomb"),
        "deep nesting": (hm.deep_nesting(50), b"nesting too deep"),
        "many parts": (hm.many_parts(2000), b"too many MIME parts"),
        "huge header": (hm.huge_header(), b"header section too large"),
    }
    for name, (raw, words) in samples.items():
        code, text = await asyncio.to_thread(send, server, raw)
        assert 550 <= code < 560, (name, text)
        assert words in text, (name, text)
    assert await asyncio.to_thread(delivered, server) == 0


async def test_clamd_stopped_then_recovers_without_restarting_mailsvc(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    clamd = server.app.clamd
    assert clamd is not None and clamd.process is not None

    await clamd.stop()
    code, text = await asyncio.to_thread(send, server, hm.clean())
    assert code == 451 and text.startswith(b"4.7.0"), text
    code, text = await asyncio.to_thread(send, server, hm.eicar_plain())
    assert code == 451, text  # unscanned mail is never accepted

    await clamd.start()
    assert (await asyncio.to_thread(send, server, hm.clean()))[0] == 250
    assert (await asyncio.to_thread(send, server, hm.eicar_zipped()))[0] == 554

    # Killed outright: the supervisor restarts clamd; mail flows again.
    process = clamd.process
    assert process is not None
    process.kill_for_test()
    await wait_for(lambda: process.restarts >= 1, timeout=30)
    assert (await asyncio.to_thread(send, server, hm.eicar_nested()))[0] == 554
    assert (await asyncio.to_thread(send, server, hm.clean()))[0] == 250
    assert await asyncio.to_thread(delivered, server) == 2
