"""Real clients against our Dovecot: aioimaplib (IDLE) and mbsync from Debian's isync."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aioimaplib

from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient

from .conftest import PASSWORD, Accounts, Imap, Tls, client_context, message


def without_tuid(raw: bytes) -> bytes:
    return b"".join(
        line for line in raw.splitlines(keepends=True) if not line.startswith(b"X-TUID: ")
    )


async def test_aioimaplib_idle_sees_mail_delivered_over_lmtp(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, tls: Tls
) -> None:
    user = accounts.add("idle")
    imap = aioimaplib.IMAP4_SSL(
        "localhost", dovecot.imaps_address[1], ssl_context=client_context(tls), timeout=10
    )
    await imap.wait_hello_from_server()
    assert (await imap.login(user, PASSWORD)).result == "OK"
    assert (await imap.select("INBOX")).result == "OK"
    idle = await imap.idle_start(timeout=10)
    raw = message(subject="Khẩn")
    await lmtp.deliver(user, raw)
    pushed: list[bytes] = []
    async with asyncio.timeout(10):
        while not any(b"EXISTS" in line for line in pushed):
            pushed += [bytes(x) for x in await imap.wait_server_push()]
    imap.idle_done()
    await asyncio.wait_for(idle, 10)
    assert any(line.strip() == b"1 EXISTS" for line in pushed)
    reply = await imap.uid("fetch", "1:*", "(BODY.PEEK[])")
    assert reply.result == "OK"
    assert any(isinstance(x, bytearray) and bytes(x).endswith(raw) for x in reply.lines)
    await imap.logout()


async def test_mbsync_pulls_and_pushes(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, tls: Tls, tmp_path: Path
) -> None:
    user = accounts.add("mbsync")
    raw = message(subject="Giấy mời họp", body="Kính gửi.\r\n.\r\nTrân trọng.\r\n")
    await lmtp.deliver(user, raw, sender="vanthu@ubnd.gov.vn")
    local = tmp_path / "mail"
    local.mkdir()
    conf = tmp_path / "mbsyncrc"
    conf.write_text(
        f"""IMAPAccount acc
Host localhost
Port {dovecot.imaps_address[1]}
User {user}
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {tls.cert}

IMAPStore remote
Account acc

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )

    async def run() -> str:
        proc = await asyncio.create_subprocess_exec(
            "mbsync",
            "-c",
            str(conf),
            "-a",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, out.decode()
        return out.decode()

    await run()
    for folder in ("Sent", "Drafts", "Junk", "Trash"):
        assert (local / folder / "cur").is_dir()
    files = list((local / "INBOX" / "new").iterdir()) + list((local / "INBOX" / "cur").iterdir())
    assert len(files) == 1
    # mbsync stores Maildir files with LF line ends and may add its X-TUID header
    stored = without_tuid(files[0].read_bytes())
    assert stored == (b"Return-Path: <vanthu@ubnd.gov.vn>\r\n" + raw).replace(b"\r\n", b"\n")

    # push: a message written into the local Sent folder reaches the server
    sent = message(subject="Báo cáo")
    (local / "Sent" / "cur" / "1700000000.1_1.local:2,S").write_bytes(sent.replace(b"\r\n", b"\n"))
    await run()
    imap = Imap(*dovecot.imap_address)
    imap.login(user, PASSWORD)
    assert imap.select("Sent", readonly=True)[1] == [b"1"]
    _typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[])")
    assert without_tuid(data[0][1]) == sent and b"\\Seen" in data[0][0]
    imap.logout()
