"""Origin authentication and spam scoring through a running mailsvc, with real SMTP clients.

DNS is a real DNS server on loopback (tests/dns_server.py) named in mailsvc.toml's [dns]
section; the sending agency pins its DKIM key in the directory.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsvc.db.models import Agency
from mailsvc.outbound.dkim import DkimSigner
from mailsvc.pipeline.spam import GTUBE
from tests.dns_server import DnsTestServer
from tests.e2e.conftest import DOMAIN, HOSTNAME, RunningServer, prepare_home, running_server, seed

CLERK = f"vanthu@{DOMAIN}"
STP = "stp.example.vn"


@pytest.fixture(scope="module")
def signer() -> DkimSigner:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return DkimSigner(pem, "mail", STP)


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsTestServer]:
    server = DnsTestServer().start()
    yield server
    server.stop()


@pytest.fixture
async def origin_server(
    service_home: Path, db_url: str, signer: DkimSigner, dns: DnsTestServer
) -> AsyncIterator[RunningServer]:
    home = service_home
    prepare_home(home, db_url)
    config = home / "mailsvc.toml"
    text = config.read_text(encoding="utf-8")
    closed = '[dns]\nmode = "off"\n'
    assert closed in text
    config.write_text(
        text.replace(
            closed,
            f'[dns]\nmode = "servers"\nservers = ["127.0.0.1:{dns.port}"]\ntimeout_seconds = 1.0\n',
        ),
        encoding="utf-8",
    )
    seed(
        db_url,
        Agency(
            code="000.00.31.H26",
            name="Sở Tư pháp",
            domains=[STP],
            # Pinned: no DNS needed for its key; its mail server is not 127.0.0.1.
            dkim_keys={f"mail._domainkey.{STP}": signer.txt_value()},
            allowed_senders=["10.20.0.0/16"],
        ),
    )
    async with running_server(home) as server:
        server.add_mailbox(CLERK)
        yield server


def official(sender: str, body: str = "Sở Tư pháp gửi Công văn số 123/STP-VP.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Văn thư <{sender}>"
    msg["To"] = CLERK
    msg["Subject"] = "Công văn số 123/STP-VP v/v kế hoạch năm 2026"
    msg["Date"] = "Sat, 21 Nov 2026 08:00:00 +0700"
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP_POLICY)


def send(server: RunningServer, sender: str, data: bytes) -> dict[str, tuple[int, bytes]]:
    with server.smtp() as client:
        client.ehlo("mail.sender.example")
        return client.sendmail(sender, [CLERK], data)


def folder(server: RunningServer, name: str) -> list[bytes]:
    client = server.imap(CLERK)
    try:
        typ, _ = client.select(name, readonly=True)
        if typ != "OK":
            return []
        _, data = client.uid("SEARCH", "ALL")
        out = []
        for uid in data[0].split():
            _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            out.append(parts[0][1])
        return out
    finally:
        client.logout()


def headers(message: bytes) -> str:
    return message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").replace("\r\n ", " ")


async def test_gtube_is_refused(origin_server: RunningServer) -> None:
    data = official(f"vanthu@{STP}", "Thử nghiệm.\n" + GTUBE.decode() + "\n")
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, origin_server, f"vanthu@{STP}", data)
    assert 500 <= info.value.smtp_code < 600
    assert await asyncio.to_thread(folder, origin_server, "INBOX") == []


async def test_dkim_pass_with_pinned_key_is_delivered(
    origin_server: RunningServer, signer: DkimSigner
) -> None:
    data = signer.sign(official(f"vanthu@{STP}"))
    assert await asyncio.to_thread(send, origin_server, f"vanthu@{STP}", data) == {}
    (delivered,) = await asyncio.to_thread(folder, origin_server, "INBOX")
    text = headers(delivered)
    assert f"Authentication-Results: {HOSTNAME};" in text
    assert f"dkim=pass header.d={STP} header.s=mail" in text
    assert f"dmarc=pass (p=reject) header.from={STP}" in text


async def test_forged_dkim_is_refused(origin_server: RunningServer, signer: DkimSigner) -> None:
    signed = signer.sign(official(f"vanthu@{STP}"))
    forged = signed.replace(b"123/STP-VP.", b"999/STP-VP.")
    assert forged != signed
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, origin_server, f"vanthu@{STP}", forged)
    assert 500 <= info.value.smtp_code < 600
    assert b"5.7.1" in info.value.smtp_error
    assert await asyncio.to_thread(folder, origin_server, "INBOX") == []


async def test_free_mail_sender_goes_to_junk(
    origin_server: RunningServer, dns: DnsTestServer
) -> None:
    data = official("vanthu.stp@gmail.com")
    assert await asyncio.to_thread(send, origin_server, "vanthu.stp@gmail.com", data) == {}
    assert await asyncio.to_thread(folder, origin_server, "INBOX") == []
    (junk,) = await asyncio.to_thread(folder, origin_server, "Junk")
    assert b"vanthu.stp@gmail.com" in junk
    assert "spf=none" in headers(junk)
    # SPF and DMARC asked the (loopback) DNS; nothing pinned for gmail.com
    assert dns.queries[("gmail.com", "TXT")] >= 1
    assert dns.queries[("_dmarc.gmail.com", "TXT")] >= 1


async def test_spf_macros_see_mail_from_in_the_case_it_was_sent(
    origin_server: RunningServer, dns: DnsTestServer
) -> None:
    """%{l} in the domain's exp= text expands to the local part as sent, not lower-cased."""
    dns.add("case.example.net", "TXT", "v=spf1 -all exp=why.case.example.net")
    dns.add("why.case.example.net", "TXT", "%{l} may not send for %{d}")
    sender = "Jack.Sprat@case.example.net"
    data = official(sender)
    assert await asyncio.to_thread(send, origin_server, sender, data) == {}
    (delivered,) = await asyncio.to_thread(folder, origin_server, "INBOX")
    assert "spf=fail" in headers(delivered)
    assert "Jack.Sprat may not send for case.example.net" in headers(delivered)
