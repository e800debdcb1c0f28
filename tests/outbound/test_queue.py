"""The durable outbound queue against a real SMTP relay (aiosmtpd on loopback): relay
down → queued; relay back → delivered once, across a restart; 4xx retried, 5xx failed at
once with an alert; give-up after the configured time; queued rows from another process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SmtpProtocol
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.base import utcnow
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.outbound.mailer import FailedMessage, Mailer, SmtpRelay
from mailsvc.outbound.models import FAILED, QUEUED, SENT, OutboundMessage
from mailsvc.outbound.queue import RetryPolicy, enqueue
from tests.e2e.conftest import wait_for
from tests.ports import unused_port
from tests.transactions import count_transactions

FAST = RetryPolicy(
    waits=(timedelta(milliseconds=50), timedelta(milliseconds=100)),
    give_up=timedelta(hours=1),
    poll_seconds=0.05,
)


@dataclass
class Sink:
    """What the relay received; per-recipient answers (a list is used up in order)."""

    received: list[tuple[str, str, bytes]] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)

    async def handle_RCPT(
        self,
        server: SmtpProtocol,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        queued = self.answers.get(address)
        if queued:
            answer = queued.pop(0) if len(queued) > 1 else queued[0]
            if not answer.startswith("250"):
                return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SmtpProtocol, session: SmtpSession, envelope: Envelope
    ) -> str:
        for rcpt in envelope.rcpt_tos:
            content = envelope.content
            assert isinstance(content, bytes)
            self.received.append((str(envelope.mail_from), rcpt, content))
        return "250 2.0.0 queued"


def free_port() -> int:
    return unused_port()  # not an ephemeral port: see tests/ports.py


@contextlib.asynccontextmanager
async def relay(sink: Sink) -> AsyncIterator[int]:
    """A relay (aiosmtpd answering as ``sink`` says) on a free port, closed at the end."""
    port = free_port()
    server = await start_sink(port, sink)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def start_sink(port: int, sink: Sink) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SmtpProtocol(sink, hostname="relay.test"), "127.0.0.1", port
    )


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def make_mailer(
    sessions: sessionmaker[Session],
    port: int,
    tmp_path: Path,
    retry: RetryPolicy = FAST,
    pace: float = 0.0,
) -> Mailer:
    return Mailer(
        LmtpClient(tmp_path / "no-lmtp.sock"),
        is_local_domain=lambda domain: domain == "sotttt.example.vn",
        relay=SmtpRelay(
            "127.0.0.1", port, helo="mail.sotttt.example.vn", timeout=5, starttls=False
        ),
        sessions=sessions,
        retry=retry,
        pace=pace,
    )


@pytest.fixture
async def running() -> AsyncIterator[list[Mailer]]:
    """Mailers started by a test, stopped at its end."""
    started: list[Mailer] = []
    yield started
    for mailer in started:
        await mailer.stop()


def notice(recipient: str, subject: str = "Thông báo đã tiếp nhận văn bản") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Hệ thống thư công vụ <postmaster@sotttt.example.vn>"
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Đã tiếp nhận.\n")
    return msg


def rows(sessions: sessionmaker[Session]) -> list[OutboundMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


async def test_relay_down_then_back_delivers_once_across_a_restart(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    running: list[Mailer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mailsvc.outbound.mailer")
    port = free_port()  # nothing listens there yet: the relay is down
    first = make_mailer(sessions, port, tmp_path)
    first.start()
    running.append(first)
    await first.send(notice("vanthu@stc.example.vn"), "vanthu@stc.example.vn", kind="notice-03")
    # Committed before send returned; the attempts fail and it stays queued.
    [row] = rows(sessions)
    assert row.kind == "notice-03" and row.recipient == "vanthu@stc.example.vn"
    await wait_for(lambda: rows(sessions)[0].attempts >= 2)
    [row] = rows(sessions)
    assert row.state == QUEUED and "relay 127.0.0.1" in row.last_error
    assert first.sent == []
    # The log says when it is tried again in Vietnam's time, as everything else does.
    [retry, *_] = [r.getMessage() for r in caplog.records if "retry at" in r.getMessage()]
    assert re.search(r"retry at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00: ", retry), retry

    await first.stop()  # the process stops with the notice still queued
    running.remove(first)
    sink = Sink()
    server = await start_sink(port, sink)  # the relay is back
    try:
        second = make_mailer(sessions, port, tmp_path)
        second.start()
        running.append(second)
        await wait_for(lambda: second.sent == [("notice-03", "vanthu@stc.example.vn")])
        assert rows(sessions)[0].state == SENT
        await second.deliver_due()  # another pass sends nothing more
        assert len(sink.received) == 1
        sender, rcpt, data = sink.received[0]
        assert sender == "<>" and rcpt == "vanthu@stc.example.vn"
        assert b"Auto-Submitted: auto-replied" in data
        [row] = rows(sessions)
        assert row.attempts >= 3 and row.finished_at is not None and row.last_error == ""
    finally:
        server.close()
        await server.wait_closed()


async def test_4xx_is_retried_and_5xx_fails_at_once_with_an_alert(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    port = free_port()
    sink = Sink(
        answers={
            "later@stc.example.vn": ["451 4.3.0 Try again later", "250 OK"],
            "nobody@stc.example.vn": ["550 5.1.1 No such user"],
        }
    )
    server = await start_sink(port, sink)
    failures: list[FailedMessage] = []

    async def alert(failed: FailedMessage) -> None:
        failures.append(failed)

    try:
        mailer = make_mailer(sessions, port, tmp_path)
        mailer.on_failure = alert
        mailer.start()
        running.append(mailer)
        await mailer.send(notice("later@stc.example.vn"), "later@stc.example.vn", kind="notice-03")
        await mailer.send(
            notice("nobody@stc.example.vn"), "nobody@stc.example.vn", kind="notice-02"
        )
        await wait_for(lambda: len(failures) == 1 and len(mailer.sent) == 1)
        later, nobody = rows(sessions)
        assert (later.state, later.attempts) == (SENT, 2)
        assert (nobody.state, nobody.attempts) == (FAILED, 1)
        assert "550" in nobody.last_error
        assert [(f.kind, f.recipient, f.attempts) for f in failures] == [
            ("notice-02", "nobody@stc.example.vn", 1)
        ]
        assert [rcpt for _, rcpt, _ in sink.received] == ["later@stc.example.vn"]
    finally:
        server.close()
        await server.wait_closed()


async def test_gives_up_after_the_configured_time_and_never_alerts_about_alerts(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    port = free_port()
    sink = Sink(answers={"busy@stc.example.vn": ["421 4.7.0 Busy"]})
    server = await start_sink(port, sink)
    failures: list[FailedMessage] = []

    async def alert(failed: FailedMessage) -> None:
        failures.append(failed)

    # give up after 2 s: time for several attempts even when a loaded machine stalls the
    # first one (with 400 ms, a clean-clone CI run saw the first attempt end past it)
    retry = RetryPolicy(
        waits=(timedelta(milliseconds=50),), give_up=timedelta(seconds=2), poll_seconds=0.05
    )
    try:
        mailer = make_mailer(sessions, port, tmp_path, retry)
        mailer.on_failure = alert
        mailer.start()
        running.append(mailer)
        await mailer.send(notice("busy@stc.example.vn"), "busy@stc.example.vn", kind="notice-03")
        await mailer.send(notice("busy@stc.example.vn"), "busy@stc.example.vn", kind="alert-virus")
        await wait_for(lambda: bool(failures) and all(r.state == FAILED for r in rows(sessions)))
        first, second = rows(sessions)
        assert first.attempts >= 2 and "421" in first.last_error
        assert second.kind == "alert-virus" and "421" in second.last_error
        # One alert, for the notice; a failed alert is logged, never alerted about (no loop).
        assert [f.kind for f in failures] == ["notice-03"]
        assert sink.received == []
    finally:
        server.close()
        await server.wait_closed()


async def test_rows_queued_by_another_process_are_sent_without_a_wake_up(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    sink = Sink()
    async with relay(sink) as port:
        mailer = make_mailer(sessions, port, tmp_path)
        mailer.start()
        running.append(mailer)
        await mailer.deliver_due()
        # What `mailsvc register set-status` does: a row in its own transaction.
        with sessions.begin() as session:
            enqueue(session, notice("vanthu@stc.example.vn"), "vanthu@stc.example.vn", kind="n")
        await wait_for(lambda: mailer.sent == [("n", "vanthu@stc.example.vn")])
        assert len(sink.received) == 1


async def test_without_a_relay_remote_mail_fails_at_once_without_alert(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    mailer = Mailer(
        LmtpClient(tmp_path / "no-lmtp.sock"),
        is_local_domain=lambda domain: False,
        sessions=sessions,
        retry=FAST,
    )
    failures: list[Any] = []

    async def alert(failed: FailedMessage) -> None:
        failures.append(failed)

    mailer.on_failure = alert
    await mailer.send(notice("vanthu@stc.example.vn"), "vanthu@stc.example.vn", kind="notice-03")
    await mailer.deliver_due()
    [row] = rows(sessions)
    assert row.state == FAILED and "no outbound relay" in row.last_error
    assert failures == [] and mailer.sent == []


async def test_a_sent_notice_goes_at_once_not_at_the_next_poll(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    sink = Sink()
    seen = count_transactions(sessions.kw["bind"])
    async with relay(sink) as port:
        # An hour between polls: only the wake-up of ``send`` can get it out in time.
        mailer = make_mailer(sessions, port, tmp_path, RetryPolicy(poll_seconds=3600))
        mailer.start()
        running.append(mailer)
        await wait_for(lambda: seen.reads >= 1)  # the first pass found nothing
        await mailer.send(notice("vanthu@stc.example.vn"), "vanthu@stc.example.vn", kind="n")
        await wait_for(lambda: mailer.sent == [("n", "vanthu@stc.example.vn")], timeout=5)
        assert [rcpt for _, rcpt, _ in sink.received] == ["vanthu@stc.example.vn"]


ENQUEUE_ELSEWHERE = """
import sys
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.outbound.queue import enqueue
engine = make_engine(sys.argv[1])
with make_sessionmaker(engine).begin() as session:
    enqueue(session, b"Subject: n\\r\\n\\r\\nx\\r\\n", "vanthu@stc.example.vn", kind="cli")
engine.dispose()
"""


async def test_a_row_queued_by_another_process_is_sent(
    sessions: sessionmaker[Session], db_url: str, tmp_path: Path, running: list[Mailer]
) -> None:
    sink = Sink()
    async with relay(sink) as port:
        mailer = make_mailer(sessions, port, tmp_path)
        mailer.start()
        running.append(mailer)
        # The CLI's way: its own process and transaction, and no wake-up call to us.
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", ENQUEUE_ELSEWHERE, db_url], check=True
        )
        await wait_for(lambda: mailer.sent == [("cli", "vanthu@stc.example.vn")])
        assert rows(sessions)[0].state == SENT


async def test_an_idle_mailer_only_reads(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    """Nothing due (an empty queue, then a row due in an hour): each polling pass is one
    look-up; no write transaction competes with message acceptance for SQLite's lock.
    (``wake`` says rows due now were added: that pass claims at once.)"""
    seen = count_transactions(sessions.kw["bind"])
    mailer = make_mailer(sessions, free_port(), tmp_path)  # polls every 50 ms
    mailer.start()
    running.append(mailer)
    await wait_for(lambda: seen.reads >= 5)
    assert seen.writes == 0
    with sessions.begin() as session:
        row = enqueue(session, notice("later@stc.example.vn"), "later@stc.example.vn", kind="n")
        row.next_attempt_at = utcnow() + timedelta(hours=1)
    seen.writes = 0
    reads = seen.reads
    await wait_for(lambda: seen.reads >= reads + 5)
    assert seen.writes == 0
    assert rows(sessions)[0].attempts == 0


@dataclass
class HeldSink(Sink):
    """A relay that holds each DATA until released; records the read transactions seen
    when each message's DATA arrived."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_data: asyncio.Event = field(default_factory=asyncio.Event)
    reads_at_data: list[int] = field(default_factory=list)
    seen: Any = None

    async def handle_DATA(
        self, server: SmtpProtocol, session: SmtpSession, envelope: Envelope
    ) -> str:
        self.reads_at_data.append(self.seen.reads)
        self.in_data.set()
        await self.release.wait()
        return await super().handle_DATA(server, session, envelope)


async def test_rows_added_while_one_is_sent_are_claimed_and_sent_at_once(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    """Under load a receipt is queued while the previous one is being sent: the next pass
    claims it at once and sends it while the first still waits for the relay's answer."""
    port = free_port()
    sink = HeldSink()
    sink.seen = count_transactions(sessions.kw["bind"])
    server = await start_sink(port, sink)
    try:
        mailer = make_mailer(sessions, port, tmp_path, RetryPolicy(poll_seconds=3600))
        mailer.start()
        running.append(mailer)
        await mailer.send(notice("a@stc.example.vn"), "a@stc.example.vn", kind="n")
        await asyncio.wait_for(sink.in_data.wait(), 5)  # the relay holds a@'s DATA
        await mailer.send(notice("b@stc.example.vn"), "b@stc.example.vn", kind="n")
        await wait_for(lambda: len(sink.reads_at_data) == 2, timeout=5)  # b@'s DATA too
        assert sink.received == []  # a@ still waits for its answer
        sink.release.set()
        await wait_for(lambda: len(mailer.sent) == 2, timeout=5)
        assert sorted(rcpt for _, rcpt, _ in sink.received) == [
            "a@stc.example.vn",
            "b@stc.example.vn",
        ]
    finally:
        sink.release.set()
        server.close()
        await server.wait_closed()


async def test_failed_attempts_cost_the_worker_no_look_up_of_their_own(
    sessions: sessionmaker[Session], db_url: str, tmp_path: Path, running: list[Mailer]
) -> None:
    """Under load every receipt to an agency without a route fails once: its claim and its
    retry time are two write transactions, and each also reads when the next row is due,
    so the passes that follow need no read transaction of their own."""
    seen = count_transactions(sessions.kw["bind"])
    mailer = make_mailer(sessions, free_port(), tmp_path, RetryPolicy(poll_seconds=3600))
    mailer.start()  # nothing listens on the relay's port: every attempt is refused
    running.append(mailer)
    await wait_for(lambda: seen.reads >= 1)  # the first pass looks at the queue
    seen.reads = seen.writes = 0
    engine = make_engine(db_url)  # the test's own look-ups, not counted
    watch = make_sessionmaker(engine)
    try:
        for n, rcpt in enumerate(["a@stc.example.vn", "b@stc.example.vn"], start=1):
            await mailer.send(notice(rcpt), rcpt, kind="notice-03")
            # the retry time written (the error with it) once attempted and refused
            await wait_for(lambda n=n: sum(1 for r in rows(watch) if r.last_error) == n)  # type: ignore[misc]
        # a@'s pass, its retry, the look that retry triggered, then b@'s pass and retry
        assert seen.reads == 0
        assert seen.writes == 6  # each: the send's insert, the claim, the retry time
        assert all(r.state == QUEUED and r.attempts == 1 for r in rows(watch))
    finally:
        engine.dispose()


async def test_a_pass_writes_its_failed_attempts_in_one_transaction(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A receiving server down fails every row of a pass alike: the pass claims them in
    one write transaction and records their next attempts in one more, not one each."""
    mailer = make_mailer(sessions, free_port(), tmp_path)  # nothing listens: refused
    recipients = [f"vanthu@so{n}.example.vn" for n in range(4)]  # four domains
    with sessions.begin() as session:
        for rcpt in recipients:
            enqueue(session, notice(rcpt), rcpt, kind="notice-03")
    seen = count_transactions(sessions.kw["bind"])
    await mailer.deliver_due(woken=True)
    assert seen.writes == 2  # the claim, then the four retries
    after = rows(sessions)
    assert [r.recipient for r in after] == recipients
    assert all(r.state == QUEUED and r.attempts == 1 for r in after)
    assert all("relay 127.0.0.1" in r.last_error for r in after)
    first = after[0].next_attempt_at
    assert first is not None and first > utcnow() - timedelta(seconds=1)


async def test_rows_queued_in_a_burst_are_claimed_and_settled_together(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    """Under load (a receipt queued per accepted document) the passes are paced: the rows
    queued while one pass runs, or within the pace of its start, wait for the next pass
    and go in it together: a few write transactions for the burst, not two per row."""
    sink = Sink()
    async with relay(sink) as port:
        mailer = make_mailer(sessions, port, tmp_path, RetryPolicy(poll_seconds=3600), pace=1.0)
        mailer.start()
        running.append(mailer)
        recipients = [f"vanthu{n}@stc.example.vn" for n in range(12)]
        seen = count_transactions(sessions.kw["bind"])
        for rcpt in recipients:  # each committed and woken as the acceptance does
            await mailer.send(notice(rcpt), rcpt, kind="notice-03")
        await wait_for(lambda: len(mailer.sent) == len(recipients), timeout=10)
        assert sorted(r for _, r, _ in sink.received) == sorted(recipients)
        assert all(r.state == SENT for r in rows(sessions))
        # The first row at once, the eleven queued after it within the pace together: two
        # passes (three if the burst outlasted the pace). Written: each row queued and
        # settled (sent) on its own, a claim for each pass.
        assert mailer.claims <= 3, mailer.claims
        assert seen.writes <= 2 * len(recipients) + 2 * mailer.claims, seen.writes


async def test_a_row_queued_when_idle_goes_at_once_and_stop_ends_a_paced_wait(
    sessions: sessionmaker[Session], tmp_path: Path, running: list[Mailer]
) -> None:
    sink = Sink()
    async with relay(sink) as port:
        # An hour's pace: a first row waiting for it would never be sent within the test.
        mailer = make_mailer(sessions, port, tmp_path, RetryPolicy(poll_seconds=3600), pace=3600)
        mailer.start()
        running.append(mailer)
        await mailer.send(notice("a@stc.example.vn"), "a@stc.example.vn", kind="n")
        await wait_for(lambda: mailer.sent == [("n", "a@stc.example.vn")], timeout=5)
        # The next row waits for the pace; stopping does not wait for it.
        await mailer.send(notice("b@stc.example.vn"), "b@stc.example.vn", kind="n")
        await wait_for(lambda: mailer.claims == 2)  # woken, waiting for its pace
        await asyncio.wait_for(mailer.stop(), 2)
        running.remove(mailer)
        second = rows(sessions)[1]
        assert (second.recipient, second.state, second.attempts) == ("b@stc.example.vn", QUEUED, 0)


def test_a_row_is_claimed_once_by_two_workers(sessions: sessionmaker[Session]) -> None:
    """Two workers (another node's, or the CLI's) see the same due row: the first claim
    takes it, the second is refused, whether made on the session or on its connection
    (the worker's pass)."""
    from mailsvc.outbound.queue import claim, due_rows

    with sessions.begin() as session:
        enqueue(session, notice("vanthu@stc.example.vn"), "vanthu@stc.example.vn", kind="notice-03")
    now = utcnow()
    with sessions() as session:
        [seen_by_first] = due_rows(session.connection(), now)
    with sessions() as session:
        [seen_by_second] = due_rows(session, now)
    assert seen_by_first == seen_by_second
    with sessions.begin() as session:
        assert claim(session.connection(), seen_by_first, now)
    with sessions.begin() as session:
        assert not claim(session, seen_by_second, now)
        assert not claim(session.connection(), seen_by_second, now)
    [row] = rows(sessions)
    assert row.attempts == 1 and row.state == QUEUED and row.next_attempt_at > now
