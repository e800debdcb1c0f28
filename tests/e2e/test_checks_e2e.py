"""Mailbox checks through the running server: real IMAP clients against our Dovecot, the
event log read by the app's own recorder, rows in the database within seconds."""

from __future__ import annotations

import asyncio
import imaplib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import aioimaplib
import pytest
from sqlalchemy import func, select

from mailsvc.checks.models import ImapSession, MailboxCheck
from mailsvc.checks.records import CheckRecorder, EventLogReader
from mailsvc.config import PasswordSection
from mailsvc.db.models import Mailbox, MessageRecord
from mailsvc.mailboxes.actions import MailboxActions
from mailsvc.passwords import hash_password
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer, client_tls, wait_for
from tests.e2e.test_smtp_core import make_message, send

OFFICIAL = f"annv.stttt@{DOMAIN}"
SENDER = "cv@sender.example.vn"


def _checks(server: RunningServer, mailbox: str | None = None) -> list[MailboxCheck]:
    with server.sessions() as db:
        query = select(MailboxCheck).order_by(MailboxCheck.at)
        if mailbox:
            query = query.where(MailboxCheck.mailbox == mailbox)
        return list(db.scalars(query))


def _count_checks(server: RunningServer) -> int:
    with server.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(MailboxCheck)) or 0)


def _delivered(server: RunningServer, mailbox: str) -> int:
    with server.sessions() as db:
        return int(
            db.scalar(
                select(func.count()).where(
                    MessageRecord.recipient == mailbox, MessageRecord.state == "delivered"
                )
            )
            or 0
        )


async def _deliver(server: RunningServer, mailbox: str, n: int) -> None:
    before = _delivered(server, mailbox)
    for i in range(n):
        msg = make_message(SENDER, mailbox, subject=f"Công văn số {i + 1}")
        assert await asyncio.to_thread(send, server, msg, SENDER, [mailbox]) == {}
    await wait_for(lambda: _delivered(server, mailbox) == before + n)


def _thunderbird_opens_inbox(server: RunningServer) -> None:
    """STARTTLS, ID before login (as Thunderbird does), LOGIN, SELECT INBOX, LOGOUT."""
    host, port = server.addr("imap")
    client = imaplib.IMAP4(host, port, timeout=30)
    client.starttls(ssl_context=client_tls())
    typ, _ = client.xatom("ID", '("name" "Thunderbird" "version" "128.5.0esr")')
    assert typ == "OK"
    client.login(OFFICIAL, PASSWORD)
    assert client.select("INBOX")[0] == "OK"
    client.logout()


async def test_a_user_opening_inbox_is_recorded_within_seconds(server: RunningServer) -> None:
    server.add_mailbox(OFFICIAL)
    await _deliver(server, OFFICIAL, 2)

    started = datetime.now(UTC)
    await asyncio.to_thread(_thunderbird_opens_inbox, server)
    await wait_for(lambda: len(_checks(server, OFFICIAL)) == 1, timeout=5)
    [check] = _checks(server, OFFICIAL)
    assert check.source == "imap"
    assert check.remote_ip == "127.0.0.1"
    assert check.client == "Thunderbird 128.5.0esr"
    assert check.new_messages == 2
    assert started - timedelta(seconds=2) <= check.at <= datetime.now(UTC)

    # One more message, then a client that sends ID after login and only EXAMINEs INBOX.
    await _deliver(server, OFFICIAL, 1)
    host, port = server.addr("imap")
    imap = aioimaplib.IMAP4(host, port, timeout=30)
    await imap.wait_hello_from_server()
    assert (await imap.login(OFFICIAL, PASSWORD)).result == "OK"
    assert (await imap.id(name="Evolution", version="3.50.2")).result == "OK"
    assert (await imap.examine("INBOX")).result == "OK"
    await imap.logout()
    await wait_for(lambda: len(_checks(server, OFFICIAL)) == 2, timeout=5)
    second = _checks(server, OFFICIAL)[1]
    assert (second.client, second.new_messages) == ("Evolution 3.50.2", 1)
    assert second.session != check.session


async def test_service_sessions_are_not_checks(server: RunningServer) -> None:
    server.add_mailbox(OFFICIAL)
    s = server.app.settings
    actions = MailboxActions.for_service(server.app.dovecot, str(s.path(s.tls.cert)))
    async with actions.session(OFFICIAL) as imap:
        assert (await imap.select("INBOX")).result == "OK"
    assert "INBOX" in await actions.list_folders(OFFICIAL)

    def user_session() -> None:
        client = server.imap(OFFICIAL)
        client.select("INBOX")
        client.logout()

    await asyncio.to_thread(user_session)

    def service_logins() -> list[ImapSession]:
        with server.sessions() as db:
            return list(db.scalars(select(ImapSession).where(ImapSession.master_user != "")))

    # The user's check comes after both service sessions in the log: once it is there,
    # the service sessions have been read too.
    await wait_for(lambda: len(_checks(server)) >= 1 and len(service_logins()) == 2, timeout=5)
    [check] = _checks(server)
    assert check.mailbox == OFFICIAL
    assert check.session not in {row.session for row in service_logins()}
    assert {row.master_user for row in service_logins()} == {"mailsvc"}


BURST = 1000
BURST_MAILBOXES = 20
BURST_THREADS = 32


def _open_inbox_plain(host: str, port: int, user: str) -> None:
    # Plain LOGIN: Dovecot treats loopback as secured (no TLS handshake per session).
    client = imaplib.IMAP4(host, port, timeout=120)
    try:
        client.login(user, PASSWORD)
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


@pytest.mark.long(20)
async def test_a_burst_of_1000_logins_loses_none_across_a_reader_restart(
    server: RunningServer,
) -> None:
    cheap = PasswordSection(argon2_memory_kib=8192, argon2_time_cost=1)
    users = [f"burst{i:02d}@{DOMAIN}" for i in range(BURST_MAILBOXES)]
    digest = hash_password(PASSWORD, cheap)  # one hash for all: Argon2 per login stays cheap
    with server.app.sessions.begin() as db:
        db.add_all(
            Mailbox(address=u, role="clerk", password_hash=digest, must_change=False) for u in users
        )
    host, port = server.addr("imap")

    def burst() -> float:
        begin = time.monotonic()
        with ThreadPoolExecutor(max_workers=BURST_THREADS) as pool:
            list(
                pool.map(
                    lambda i: _open_inbox_plain(host, port, users[i % len(users)]),
                    range(BURST),
                )
            )
        return time.monotonic() - begin

    started = time.monotonic()
    running = asyncio.create_task(asyncio.to_thread(burst))
    await wait_for(lambda: _count_checks(server) >= BURST // 4, timeout=180)

    # Restart the recorder mid-burst: a new reader knows only the cursor in the database.
    old = server.app.check_recorder
    await old.stop()
    server.app.check_recorder = CheckRecorder(
        EventLogReader(server.app.sessions, server.app.dovecot.events_path), old.interval
    )
    server.app.check_recorder.start()
    recorded_at_restart = _count_checks(server)

    elapsed = await running
    burst_done = time.monotonic()
    await wait_for(lambda: _count_checks(server) >= BURST, timeout=30)
    lag = time.monotonic() - burst_done
    assert recorded_at_restart < BURST  # the restart happened mid-burst

    checks = _checks(server)
    assert len(checks) == BURST
    assert len({c.session for c in checks}) == BURST
    assert {c.mailbox for c in checks} == set(users)
    assert all(c.remote_ip == "127.0.0.1" for c in checks)
    with server.sessions() as db:
        logins = db.scalar(
            select(func.count()).select_from(ImapSession).where(ImapSession.user.in_(users))
        )
    assert logins == BURST
    print(
        f"\nburst: {BURST} IMAP logins+SELECT in {elapsed:.1f}s "
        f"({BURST / elapsed:.0f}/s, {BURST_THREADS} clients); all recorded {lag:.2f}s after "
        f"the last; {recorded_at_restart} before the reader restart; "
        f"total {time.monotonic() - started:.1f}s"
    )
