"""Mail from officials through the queue to other servers, at the Mailer level: routes
(directory pin > MX through our resolver > smarthost) against real SMTP servers and a
real DNS server on loopback; back-off; the delay warning; expiry and bounces; never a
bounce about a bounce; a crashed worker's claimed row is delivered once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP as SmtpProtocol
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.adapters.dns import DnsResolver
from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.directory import DbDirectory
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.outbound.dsn import DsnComposer
from mailsvc.outbound.mailer import IN_FLIGHT, Mailer, SubmissionPolicy
from mailsvc.outbound.models import SUBMISSION, OutboundMessage
from mailsvc.outbound.queue import RetryPolicy, enqueue
from mailsvc.outbound.routing import Route, RouteFinder, SmtpTransport, TlsMode
from tests.dns_server import DnsTestServer
from tests.e2e.conftest import wait_for
from tests.remote_sink import RemoteSink, port_of, sink_tls, start_remote_sink

LOCAL = "sotttt.example.vn"
DIRECTORY_DOMAIN = "stc.thunghiem.gov.vn"
PUBLIC_DOMAIN = "congty.example.com"
OFFICIAL = f"annv@{LOCAL}"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "outbound"
FAST = RetryPolicy(waits=(timedelta(milliseconds=50),), poll_seconds=0.05)
QUICK = SubmissionPolicy(
    first_wait=timedelta(milliseconds=40),
    max_wait=timedelta(milliseconds=160),
    lifetime=timedelta(hours=1),
    warn_after=timedelta(hours=1),
)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    maker = make_sessionmaker(engine)
    with maker.begin() as session:
        session.add(Agency(code="L", name="Sở TT&TT", domains=[LOCAL], local=True))
        session.add(Agency(code="000.00.02.H99", name="Sở Tài chính", domains=[DIRECTORY_DOMAIN]))
    yield maker
    engine.dispose()


@pytest.fixture
def dns() -> Iterator[DnsTestServer]:
    server = DnsTestServer().start()
    yield server
    server.stop()


@pytest.fixture
async def mailers() -> AsyncIterator[list[Mailer]]:
    started: list[Mailer] = []
    yield started
    for mailer in started:
        await mailer.stop()


def make(
    sessions: sessionmaker[Session],
    *,
    resolver: DnsResolver | None,
    ca: Path | None,
    mx_port: int = 25,
    smarthost: Route | None = None,
    policy: SubmissionPolicy = QUICK,
) -> Mailer:
    directory = DbDirectory(sessions, local_domains=(LOCAL,))
    return Mailer(
        LmtpClient(Path("/nonexistent/lmtp")),
        is_local_domain=directory.is_local_domain,
        sessions=sessions,
        retry=FAST,
        router=RouteFinder(directory, resolver, mx_port=mx_port, smarthost=smarthost),
        transport=SmtpTransport(helo=f"mail.{LOCAL}", timeout=5, ca_file=str(ca) if ca else None),
        submission=policy,
        dsn=DsnComposer(TEMPLATES, hostname=f"mail.{LOCAL}", domain=LOCAL),
    )


def message(rcpt: str, subject: str = "Giấy mời họp") -> bytes:
    return (
        f"From: {OFFICIAL}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Message-ID: <m1@{LOCAL}>\r\n\r\nKính gửi.\r\n"
    ).encode()


def submit(
    sessions: sessionmaker[Session], rcpts: list[str], *, sender: str = OFFICIAL, key: str = "k1"
) -> None:
    with sessions.begin() as session:
        for rcpt in rcpts:
            enqueue(
                session,
                message(rcpt),
                rcpt,
                kind=SUBMISSION,
                about=f"<m1@{LOCAL}>",
                sender=sender,
                message_key=key,
            )


def rows(sessions: sessionmaker[Session]) -> list[OutboundMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


async def test_mx_through_our_resolver_opportunistic_tls_and_one_transaction(
    sessions: sessionmaker[Session], dns: DnsTestServer, tmp_path: Path, mailers: list[Mailer]
) -> None:
    sink = RemoteSink()
    tls, _ = sink_tls(tmp_path, "mx1.congty.example.com")
    server = await start_remote_sink(sink, tls)
    dns.add(PUBLIC_DOMAIN, "MX", "10 mx1.congty.example.com.")
    dns.add("mx1.congty.example.com", "A", "127.0.0.1")
    resolver = DnsResolver(["127.0.0.1"], dns.port, timeout=1)
    try:
        mailer = make(sessions, resolver=resolver, ca=None, mx_port=port_of(server))
        submit(sessions, [f"a@{PUBLIC_DOMAIN}", f"b@{PUBLIC_DOMAIN}"])
        mailer.start()
        mailers.append(mailer)
        await wait_for(lambda: len(sink.transactions) == 1)
        await wait_for(lambda: {r.state for r in rows(sessions)} == {"sent"})
    finally:
        server.close()
        await server.wait_closed()
    [tx] = sink.transactions
    assert sorted(tx.rcpt_tos) == [f"a@{PUBLIC_DOMAIN}", f"b@{PUBLIC_DOMAIN}"]
    # Not in the directory: encrypted although the certificate is not trusted.
    assert tx.tls
    assert dns.queries[(PUBLIC_DOMAIN, "MX")] >= 1


async def test_directory_route_wins_over_mx_and_requires_a_verified_certificate(
    sessions: sessionmaker[Session], dns: DnsTestServer, tmp_path: Path, mailers: list[Mailer]
) -> None:
    sink = RemoteSink()
    server, cert = await directory_server(sessions, tmp_path, sink)
    # MX says somewhere else entirely (a closed port): the pinned route wins.
    dns.add(DIRECTORY_DOMAIN, "MX", "10 mx.nowhere.test.")
    dns.add("mx.nowhere.test", "A", "127.0.0.2")
    resolver = DnsResolver(["127.0.0.1"], dns.port, timeout=1)
    try:
        untrusting = make(sessions, resolver=resolver, ca=None)
        submit(sessions, [f"vanthu@{DIRECTORY_DOMAIN}"])
        untrusting.start()
        await wait_for(lambda: rows(sessions)[0].attempts >= 2)
        await untrusting.stop()
        assert sink.transactions == []
        assert "CERTIFICATE_VERIFY_FAILED" in rows(sessions)[0].last_error
        trusting = make(sessions, resolver=resolver, ca=cert)
        trusting.start()
        mailers.append(trusting)
        await wait_for(lambda: rows(sessions)[0].state == "sent")
    finally:
        server.close()
        await server.wait_closed()
    assert [t.tls for t in sink.transactions] == [True]
    assert dns.queries[(DIRECTORY_DOMAIN, "MX")] == 0


async def test_smarthost_is_the_last_resort_and_needs_starttls(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer]
) -> None:
    sink = RemoteSink()
    plain = await start_remote_sink(sink, None)
    try:
        smarthost = Route("127.0.0.1", port_of(plain), TlsMode.VERIFY, "smarthost")
        mailer = make(sessions, resolver=None, ca=None, smarthost=smarthost)
        submit(sessions, [f"x@{PUBLIC_DOMAIN}"])
        mailer.start()
        mailers.append(mailer)
        await wait_for(lambda: rows(sessions)[0].attempts >= 2)
        assert "does not offer STARTTLS" in rows(sessions)[0].last_error
        assert sink.transactions == []
        # Explicitly disabled (relay_starttls = false): plain text is allowed.
        assert mailer.router is not None
        mailer.router.smarthost = Route("127.0.0.1", port_of(plain), TlsMode.NONE, "smarthost")
        await wait_for(lambda: rows(sessions)[0].state == "sent")
    finally:
        plain.close()
        await plain.wait_closed()
    assert [t.tls for t in sink.transactions] == [False]


async def test_back_off_doubles_up_to_the_maximum() -> None:
    policy = SubmissionPolicy()
    assert [policy.wait_after(n) for n in range(1, 7)] == [
        timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)
    ]


async def test_null_mx_bounces_at_once_in_vietnamese(
    sessions: sessionmaker[Session], dns: DnsTestServer, mailers: list[Mailer]
) -> None:
    dns.add(PUBLIC_DOMAIN, "MX", "0 .")
    mailer = make(sessions, resolver=DnsResolver(["127.0.0.1"], dns.port, timeout=1), ca=None)
    submit(sessions, [f"a@{PUBLIC_DOMAIN}"])
    mailer.start()
    mailers.append(mailer)
    await wait_for(lambda: any(r.kind == "dsn-failure" for r in rows(sessions)))
    first, dsn = rows(sessions)[:2]
    assert first.state == "failed" and first.attempts == 1 and "null MX" in first.last_error
    assert dsn.recipient == OFFICIAL and dsn.sender == ""


async def test_delay_warning_once_then_expiry_bounce_and_never_a_bounce_to_a_bounce(
    sessions: sessionmaker[Session], mailers: list[Mailer]
) -> None:
    down = Route("127.0.0.1", 9, TlsMode.NONE, "smarthost")  # nothing listens on port 9
    # Attempts every 30-60 ms; the warning is due at the first one past 100 ms. The
    # lifetime leaves seconds between the two: with 600 ms, a loaded CI machine once
    # stalled the queue from before the warning was due to past the expiry, and the
    # message expired unwarned.
    policy = SubmissionPolicy(
        first_wait=timedelta(milliseconds=30),
        max_wait=timedelta(milliseconds=60),
        lifetime=timedelta(seconds=3),
        warn_after=timedelta(milliseconds=100),
    )
    mailer = make(sessions, resolver=None, ca=None, smarthost=down, policy=policy)
    submit(sessions, [f"a@{PUBLIC_DOMAIN}"])
    submit(sessions, [f"b@{PUBLIC_DOMAIN}"], sender="", key="k2")  # a bounce of someone's
    mailer.start()
    mailers.append(mailer)
    await wait_for(lambda: sum(r.state == "failed" for r in rows(sessions)) >= 2, timeout=15)
    await wait_for(lambda: any(r.kind == "dsn-failure" for r in rows(sessions)))
    kinds = [(r.kind, r.recipient) for r in rows(sessions)]
    # One delay warning and one bounce, both to the official; nothing for the null sender.
    assert kinds.count(("dsn-delay", OFFICIAL)) == 1
    assert kinds.count(("dsn-failure", OFFICIAL)) == 1
    assert [k for k, _ in kinds if k.startswith("dsn")] == ["dsn-delay", "dsn-failure"]
    with sessions() as session:
        dsn = session.scalars(
            select(OutboundMessage).where(OutboundMessage.kind == "dsn-failure")
        ).one()
        delay = session.scalars(
            select(OutboundMessage).where(OutboundMessage.kind == "dsn-delay")
        ).one()
    bounce = message_from_bytes(dsn.data, policy=default_policy)
    text = next(iter(bounce.iter_parts())).get_content()
    assert "đã dừng gửi" in text and "Không kết nối được" in text
    warning = message_from_bytes(delay.data, policy=default_policy)
    status = list(warning.iter_parts())[1].as_string()
    assert "Action: delayed" in status and "Will-Retry-Until:" in status


async def test_a_row_claimed_by_a_crashed_worker_is_delivered_once(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer]
) -> None:
    sink = RemoteSink()
    plain = await start_remote_sink(sink, None)
    smarthost = Route("127.0.0.1", port_of(plain), TlsMode.NONE, "smarthost")
    submit(sessions, [f"a@{PUBLIC_DOMAIN}"])
    # A worker claimed the row (attempt counted, lease taken) and died before answering.
    with sessions.begin() as session:
        session.execute(
            update(OutboundMessage).values(
                attempts=1, next_attempt_at=utcnow() + timedelta(milliseconds=300)
            )
        )
    try:
        mailer = make(sessions, resolver=None, ca=None, smarthost=smarthost)
        mailer.start()
        mailers.append(mailer)
        await wait_for(lambda: rows(sessions)[0].state == "sent")
        await asyncio.sleep(0)  # let the worker finish its pass
    finally:
        plain.close()
        await plain.wait_closed()
    assert len(sink.transactions) == 1 and rows(sessions)[0].attempts == 2


async def test_connections_are_reused_and_a_closed_one_is_replaced(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer]
) -> None:
    sink = RemoteSink()
    tls, cert = sink_tls(tmp_path)
    server = await start_remote_sink(sink, tls)
    smarthost = Route("127.0.0.1", port_of(server), TlsMode.VERIFY, "smarthost")
    mailer = make(sessions, resolver=None, ca=cert, smarthost=smarthost)
    assert mailer.transport is not None
    mailer.start()
    mailers.append(mailer)
    try:
        for n in range(3):
            submit(sessions, [f"n{n}@{PUBLIC_DOMAIN}"], key=f"k{n}")
            mailer.wake()
            await wait_for(lambda n=n: len(sink.transactions) == n + 1)  # type: ignore[misc]
        # Three messages, one after the other: one connection, one TLS handshake.
        assert len({t.peer for t in sink.transactions}) == 1
        assert mailer.transport.opened == 1
        # The other side drops the connection: the next message gets a new one.
        sink.drop_connections()
        submit(sessions, [f"n3@{PUBLIC_DOMAIN}"], key="k3")
        mailer.wake()
        await wait_for(lambda: len(sink.transactions) == 4)
        assert mailer.transport.opened == 2
        # The sink has the message before our side reads its 250 and commits 'sent'.
        await wait_for(lambda: {r.state for r in rows(sessions)} == {"sent"})
    finally:
        server.close()
        await server.wait_closed()
    assert {r.state for r in rows(sessions)} == {"sent"}


@dataclass
class HeldSink(RemoteSink):
    """A receiving server that answers DATA only when the test lets it (a slow or
    tarpitting server: each of its answers may take up to the relay timeout)."""

    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # messages whose DATA waits for the release

    async def handle_DATA(
        self, server: SmtpProtocol, session: SmtpSession, envelope: Envelope
    ) -> str:
        self.holding.set()
        self.waiting += 1
        await self.release.wait()
        return await super().handle_DATA(server, session, envelope)


async def directory_server(
    sessions: sessionmaker[Session], tmp_path: Path, sink: RemoteSink
) -> tuple[asyncio.Server, Path]:
    """``sink`` served with STARTTLS and pinned as the directory agency's route; returns
    its server and the certificate the mailer must trust."""
    tls, cert = sink_tls(tmp_path)
    server = await start_remote_sink(sink, tls)
    with sessions.begin() as session:
        session.execute(
            update(Agency)
            .where(Agency.code == "000.00.02.H99")
            .values(route=f"127.0.0.1:{port_of(server)}")
        )
    return server, cert


@contextlib.asynccontextmanager
async def held_directory(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer], count: int
) -> AsyncIterator[HeldSink]:
    """``count`` messages for the directory agency, whose server (a HeldSink) answers
    none until released, and a worker started on them; at the end the server answers
    and is closed."""
    held = HeldSink()
    server, cert = await directory_server(sessions, tmp_path, held)
    for n in range(count):
        submit(sessions, [f"vanthu@{DIRECTORY_DOMAIN}"], key=f"k{n}")
    try:
        mailer = make(sessions, resolver=None, ca=cert)
        mailer.start()
        mailers.append(mailer)
        yield held
    finally:
        held.release.set()
        server.close()
        await server.wait_closed()


async def test_a_slow_server_holds_up_its_own_mail_only(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer]
) -> None:
    """An agency's server that takes its time over one message does not hold up the mail
    queued after it for other servers (receipts, officials' letters): the worker's next
    pass starts while that attempt is still waiting."""
    held = HeldSink()
    slow, cert = await directory_server(sessions, tmp_path, held)
    quick = RemoteSink()
    plain = await start_remote_sink(quick, None)
    smarthost = Route("127.0.0.1", port_of(plain), TlsMode.NONE, "smarthost")
    try:
        mailer = make(sessions, resolver=None, ca=cert, smarthost=smarthost)
        submit(sessions, [f"vanthu@{DIRECTORY_DOMAIN}"], key="k1")
        mailer.start()
        mailers.append(mailer)
        await wait_for(held.holding.is_set)  # the slow server has the first message's DATA
        submit(sessions, [f"a@{PUBLIC_DOMAIN}"], key="k2")
        mailer.wake()
        await wait_for(lambda: len(quick.transactions) == 1)
        # recorded as sent once the other server's 250 is in (the first still waits)
        await wait_for(
            lambda: (
                [(r.recipient, r.state) for r in rows(sessions)]
                == [(f"vanthu@{DIRECTORY_DOMAIN}", "queued"), (f"a@{PUBLIC_DOMAIN}", "sent")]
            )
        )
        assert held.transactions == []
        held.release.set()
        await wait_for(lambda: {r.state for r in rows(sessions)} == {"sent"})
    finally:
        held.release.set()
        for server in (slow, plain):
            server.close()
            await server.wait_closed()
    assert len(held.transactions) == 1 and held.transactions[0].tls
    assert [r.attempts for r in rows(sessions)] == [1, 1]


async def test_claims_stop_at_the_in_flight_bound_while_a_server_holds_them(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer]
) -> None:
    """40 messages for a server that answers none of them yet: the worker claims
    IN_FLIGHT (each holds its message in memory), no more, and once the server answers,
    every message is delivered once."""

    def claimed() -> int:
        return sum(1 for r in rows(sessions) if r.attempts == 1)

    async with held_directory(sessions, tmp_path, mailers, 40) as held:
        await wait_for(held.holding.is_set)  # the first messages' DATA waits at the server
        await wait_for(lambda: claimed() == IN_FLIGHT)
        assert held.transactions == []
        held.release.set()
        await wait_for(lambda: {r.state for r in rows(sessions)} == {"sent"})
    assert len(held.transactions) == 40
    assert [r.attempts for r in rows(sessions)] == [1] * 40


async def test_messages_sent_together_are_recorded_in_one_transaction(
    sessions: sessionmaker[Session], tmp_path: Path, mailers: list[Mailer]
) -> None:
    """Eight messages whose server answers them all at once: their sent marks are written
    together (group commit), a couple of write transactions, not eight."""
    from tests.transactions import count_transactions

    async with held_directory(sessions, tmp_path, mailers, 8) as held:
        await wait_for(lambda: held.waiting == 8)  # all eight wait for their answer
        seen = count_transactions(sessions.kw["bind"])
        held.release.set()
        await wait_for(lambda: {r.state for r in rows(sessions)} == {"sent"})
    assert len(held.transactions) == 8
    assert seen.writes < 8, seen.writes
