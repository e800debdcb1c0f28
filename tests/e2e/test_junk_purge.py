"""Spam is not kept for ever: the retention job deletes what has been in a Junk folder for
more than retention.junk_days (default 30) with Dovecot's doveadm, and nothing else."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from mailsvc.jobs.context import JobContext
from mailsvc.jobs.maintenance import retention_purge_job
from tests.e2e.conftest import DOMAIN, RunningServer

CLERK = f"vanthu@{DOMAIN}"


def _message(n: int) -> bytes:
    return (
        f"From: a@congty.example.com\r\nTo: {CLERK}\r\nSubject: thu {n}\r\n"
        f"Message-ID: <junk-{n}@congty.example.com>\r\n\r\nNoi dung {n}.\r\n"
    ).encode()


def _count(server: RunningServer, folder: str) -> int:
    client = server.imap(CLERK)
    try:
        typ, data = client.select(folder, readonly=True)
        assert typ == "OK", data
        return int(data[0])
    finally:
        client.logout()


async def test_junk_older_than_junk_days_is_purged_and_inbox_is_kept(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    await server.app.lmtp.deliver(CLERK, _message(1), "Junk")
    await server.app.lmtp.deliver(CLERK, _message(2), "Junk")
    await server.app.lmtp.deliver(CLERK, _message(3), "INBOX")
    settings = server.app.settings
    assert settings.retention.junk_days == 30
    now = datetime.now(UTC)

    def run(at: datetime) -> str:
        ctx = JobContext(settings, server.app.sessions, None, at)
        return asyncio.run(retention_purge_job(ctx))

    early = await asyncio.to_thread(run, now + timedelta(days=29))
    assert "Junk older than 30 days purged in 1 mailboxes" in early
    assert await asyncio.to_thread(_count, server, "Junk") == 2
    late = await asyncio.to_thread(run, now + timedelta(days=31))
    assert "Junk older than 30 days purged in 1 mailboxes" in late
    assert await asyncio.to_thread(_count, server, "Junk") == 0
    assert await asyncio.to_thread(_count, server, "INBOX") == 1
