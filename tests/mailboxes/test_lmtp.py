"""LMTP delivery into the real Dovecot: bytes, folders, refusals, pooling, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import text

from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient, LmtpError, crlf, folder_address, stuff

from .conftest import DOMAIN, PASSWORD, Accounts, Imap, async_wait_until, message


def fetch_all(svc: DovecotService, user: str, folder: str = "INBOX") -> list[bytes]:
    imap = Imap(*svc.imap_address)
    imap.login(user, PASSWORD)
    typ, data = imap.select(folder, readonly=True)
    assert typ == "OK", data
    out: list[bytes] = []
    if data != [b"0"]:
        typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
        out = [part[1] for part in data if isinstance(part, tuple)]
    imap.logout()
    return out


def test_stuffing_rules() -> None:
    assert stuff(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert stuff(b".\r\n") == b"..\r\n.\r\n"
    assert stuff(b"no newline at end") == b"no newline at end\r\n.\r\n"
    assert stuff(b"bare\nlf\n.x") == b"bare\r\nlf\r\n..x\r\n.\r\n"
    assert stuff(b"") == b".\r\n"
    assert crlf(b"bare\nlf\n.x") == b"bare\r\nlf\r\n.x\r\n"  # what BDAT sends: no stuffing
    assert crlf(b"") == b""
    # one bare LF among many CRLFs is found and mended; CRs alone are left as they are
    many = b"line\r\n" * 5000
    assert crlf(many + b"bare\n" + many) == many + b"bare\r\n" + many
    assert crlf(b"a\r\r\nb\n\rc\r\n") == b"a\r\r\nb\r\n\rc\r\n"
    assert crlf(b"\n") == b"\r\n"
    assert crlf(many) is many  # already CRLF: the same bytes, not copied
    assert folder_address("a.b@x.vn", "Junk") == "a.b+Junk@x.vn"
    assert folder_address("a.b@x.vn", "INBOX") == "a.b@x.vn"
    for bad in ("../x", "a b", "x@y", "", "a+b"):
        with pytest.raises(ValueError):
            folder_address("a@x.vn", bad)
    with pytest.raises(ValueError):
        folder_address("a+tag@x.vn", "Junk")


async def test_bytes_round_trip_exactly(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient
) -> None:
    user = accounts.add("bytes")
    body = (
        ".\r\n"  # a line that is only a dot
        "..two dots\r\n"
        ". dot space\r\n"
        "trailing spaces   \r\n"
        "tab\there\r\n"
        "Tiếng Việt có dấu: Đơn vị, ngày 21 tháng 11\r\n"
        "\r\n\r\n"
        "last line without dot\r\n"
    )
    raw = message(body=body)
    binary = message(body="line with a bare CR\r inside\r\n")
    await lmtp.deliver(user, raw)
    await lmtp.deliver(user, binary, sender="")
    got = fetch_all(dovecot, user)
    assert got[0] == b"Return-Path: <>\r\n" + raw
    assert got[1] == b"Return-Path: <>\r\n" + binary


async def test_junk_and_other_folders(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient
) -> None:
    user = accounts.add("junk")
    spam = message(subject="Khuyến mãi")
    await lmtp.deliver(user, spam, folder="Junk")
    await lmtp.deliver(user, message(), folder="Archive/2026")
    assert fetch_all(dovecot, user, "Junk") == [b"Return-Path: <>\r\n" + spam]
    assert fetch_all(dovecot, user, "INBOX") == []
    assert len(fetch_all(dovecot, user, "Archive/2026")) == 1


async def test_refusals_are_permanent_and_name_the_reply(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient
) -> None:
    with pytest.raises(LmtpError) as err:
        await lmtp.deliver(f"nobody@{DOMAIN}", message())
    assert err.value.permanent and err.value.code == 550 and err.value.stage == "RCPT"
    assert err.value.reply.enhanced == "5.1.1"
    removed = accounts.add("removed")
    accounts.set(removed, removed=True)
    with pytest.raises(LmtpError) as err:
        await lmtp.deliver(removed, message())
    assert err.value.permanent
    # a disabled mailbox still receives (disabling stops logins, not documents)
    disabled = accounts.add("disabled", enabled=False)
    await lmtp.deliver(disabled, message())
    # mixed transaction: one recipient refused, the other delivered
    ok = accounts.add("ok")
    results = await lmtp.deliver_many([ok, f"ghost@{DOMAIN}"], message())
    assert results[ok] is None
    ghost = results[f"ghost@{DOMAIN}"]
    assert ghost is not None and ghost.code == 550
    assert len(fetch_all(dovecot, ok)) == 1


async def test_temporary_failures(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, db_url: str
) -> None:
    user = accounts.add("temp")
    # Dovecot cannot read our database: 4xx, try again later
    with accounts.engine.begin() as conn:
        conn.execute(
            text("ALTER VIEW dovecot_passdb RENAME TO dovecot_passdb_moved")
            if db_url.startswith("postgresql")
            else text("DROP VIEW dovecot_passdb")
        )
    with pytest.raises(LmtpError) as err:
        await lmtp.deliver(user, message())
    assert err.value.temporary and 400 <= err.value.code < 500
    # nothing listening: 4xx as well
    gone = LmtpClient(dovecot.dir / "no-such-socket", timeout=2)
    with pytest.raises(LmtpError) as err:
        await gone.deliver(user, message())
    assert err.value.temporary and err.value.code == 421 and err.value.recipient == user


async def test_concurrent_deliveries_reuse_a_small_pool(
    dovecot: DovecotService, accounts: Accounts
) -> None:
    users = [accounts.add(f"u{i}") for i in range(3)]
    client = LmtpClient(dovecot.lmtp_path, pool_size=3)
    try:
        msgs = [message(subject=f"số {i}") for i in range(60)]
        await asyncio.gather(*(client.deliver(users[i % 3], m) for i, m in enumerate(msgs)))
        assert len(client._idle) <= 3  # connections were kept and reused, never more than 3
    finally:
        await client.close()
    counts = [len(fetch_all(dovecot, u)) for u in users]
    assert counts == [20, 20, 20]


async def test_reconnects_after_dovecot_restart(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient
) -> None:
    user = accounts.add("again")
    await lmtp.deliver(user, message())
    assert dovecot.supervisor is not None
    dovecot.supervisor.kill_for_test()

    async def back() -> bool:
        return dovecot.supervisor is not None and dovecot.supervisor.restarts >= 1

    await async_wait_until(back, timeout=20)
    await lmtp.deliver(user, message())
    assert len(fetch_all(dovecot, user)) == 2


@contextlib.asynccontextmanager
async def recording_proxy(target: Path, path: Path) -> AsyncIterator[bytearray]:
    """A unix socket at ``path`` passing every byte to ``target`` and back; yields what
    the client sent."""
    sent = bytearray()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bool) -> None:
        while chunk := await reader.read(65536):
            if log:
                sent.extend(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(str(target))
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    server = await asyncio.start_unix_server(serve, str(path))
    try:
        yield sent
    finally:
        server.close()


async def test_dovecot_gets_one_bdat_chunk_and_no_dot_stuffing(
    dovecot: DovecotService, accounts: Accounts, tmp_path: Path
) -> None:
    """Dovecot offers CHUNKING: the message goes as one BDAT LAST chunk, byte for byte,
    with no line scanned for a dot; a refused recipient and a transaction with no
    recipient left leave the connection usable."""
    user = accounts.add("chunks")
    body = ".\r\n..two dots\r\nend of data? no:\r\n.\r\nafter\r\n" + ("x" * 70 + "\r\n") * 3000
    raw = message(body=body)
    async with recording_proxy(dovecot.lmtp_path, tmp_path / "proxy") as sent:
        client = LmtpClient(tmp_path / "proxy", pool_size=1, timeout=10)
        try:
            await client.deliver(user, raw)
            refused = await client.deliver_many([f"ghost@{DOMAIN}"], message())
            mixed = await client.deliver_many([f"ghost@{DOMAIN}", user], raw)
            await client.deliver(user, b"Subject: bare LF\nNo final newline")
        finally:
            await client.close()
    assert refused[f"ghost@{DOMAIN}"] is not None and refused[f"ghost@{DOMAIN}"].code == 550
    assert mixed[user] is None and mixed[f"ghost@{DOMAIN}"] is not None
    assert bytes(sent).count(f"BDAT {len(raw)} LAST\r\n".encode() + raw) == 2
    assert b"DATA\r\n" not in sent and b"\r\n...two dots" not in sent
    got = fetch_all(dovecot, user)
    assert got[:2] == [b"Return-Path: <>\r\n" + raw] * 2
    assert got[2] == b"Return-Path: <>\r\nSubject: bare LF\r\nNo final newline\r\n"


class _Keep:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope.original_content or b"")
        return "250 2.0.0 delivered"


async def test_a_server_without_chunking_gets_dot_stuffed_data(tmp_path: Path) -> None:
    """aiosmtpd's LMTP server offers no CHUNKING: DATA, dot-stuffed, ends at the dot.
    (It answers DATA once, not once per recipient: one recipient per transaction.)"""
    keep = _Keep()
    path = tmp_path / "lmtp"
    server = await asyncio.get_running_loop().create_unix_server(lambda: LMTP(keep), str(path))
    raw = message(body=".\r\n..two dots\r\nlast\r\n")
    client = LmtpClient(path, pool_size=1, timeout=10)
    try:
        await client.deliver("a@x.vn", raw)
        await client.deliver("a@x.vn", b"Subject: bare LF\nNo final newline")
    finally:
        await client.close()
        server.close()
    assert keep.received == [raw, b"Subject: bare LF\r\nNo final newline\r\n"]
