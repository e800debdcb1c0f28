"""LMTP delivery into the real Dovecot: bytes, folders, refusals, pooling, reconnects."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient, LmtpError, folder_address, stuff

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
