"""``smtp.reuse_port``: SMTP listeners bound with SO_REUSEPORT share one port, and the
kernel gives connections to each of them (bench/reuseport.py runs a second receiving node
this way); without it the port stays ours alone."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailsvc.config import PACKAGED_POLICIES, load_settings
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.delivery import Acceptance
from mailsvc.lockout import Lockout
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.policy.pipeline import load_pipeline_policy
from mailsvc.smtp.handler import INBOUND, InflightTracker, RateLimiter, SmtpHandler
from mailsvc.smtp.lookups import MailboxLookup
from mailsvc.smtp.server import Sessions, SmtpListener, start_listener
from mailsvc.store.blobs import BlobStore
from tests.tlsutil import write_self_signed


@pytest.fixture
async def handler(db_url: str, tmp_path: Path) -> AsyncIterator[SmtpHandler]:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        yield SmtpHandler(
            INBOUND,
            MailboxLookup(sessions, ("example.vn",), Lockout(5, 60, 3600)),
            PipelineRunner([], load_pipeline_policy(PACKAGED_POLICIES / "pipeline.yaml")),
            Acceptance(
                sessions,
                BlobStore(tmp_path / "blobs"),
                LmtpClient(tmp_path / "lmtp"),
                hostname="mx.example.vn",
            ),
            max_recipients=10,
            rate=RateLimiter(1000, 1000),
            inflight=InflightTracker(),
        )
    finally:
        engine.dispose()


@pytest.fixture
def tls(tmp_path: Path) -> ssl.SSLContext:
    write_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def listen(
    handler: SmtpHandler, tls: ssl.SSLContext, port: int, sessions: Sessions, reuse_port: bool
) -> SmtpListener:
    return await start_listener(
        INBOUND,
        "127.0.0.1",
        port,
        handler,
        lookup=handler.lookup,
        rate=handler.rate,
        tls=tls,
        hostname="mx.example.vn",
        data_size_limit=1_000_000,
        password_page_url="https://mx.example.vn/password",
        allow_plain_auth_on_loopback=False,
        timeout=30,
        sessions=sessions,
        reuse_port=reuse_port,
    )


async def test_listeners_with_reuse_port_share_the_port_and_both_get_connections(
    handler: SmtpHandler, tls: ssl.SSLContext
) -> None:
    first_sessions, second_sessions = Sessions(), Sessions()
    first = await listen(handler, tls, 0, first_sessions, reuse_port=True)
    port = first.address[1]
    second = await listen(handler, tls, port, second_sessions, reuse_port=True)
    writers: list[asyncio.StreamWriter] = []
    try:
        assert second.address == first.address
        # The kernel picks a listener per connection (a hash of the client's port): open
        # connections until each listener has greeted one (64 tries: a miss is ~2^-63).
        for _ in range(64):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
            assert (await reader.readline()).startswith(b"220 mx.example.vn")
            if first_sessions.count and second_sessions.count:
                break
        assert first_sessions.count >= 1 and second_sessions.count >= 1
        assert first_sessions.count + second_sessions.count == len(writers)
    finally:
        for writer in writers:
            writer.close()
        for listener in (first, second):
            listener.server.close()
            await listener.server.wait_closed()


async def test_without_reuse_port_a_second_listener_cannot_take_the_port(
    handler: SmtpHandler, tls: ssl.SSLContext
) -> None:
    first = await listen(handler, tls, 0, Sessions(), reuse_port=False)
    try:
        with pytest.raises(OSError, match="in use"):
            await listen(handler, tls, first.address[1], Sessions(), reuse_port=True)
    finally:
        first.server.close()
        await first.server.wait_closed()


def test_reuse_port_is_off_unless_configured(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={}).smtp.reuse_port is False
    on = load_settings(tmp_path, environ={"MAILSVC_SMTP__REUSE_PORT": "true"})
    assert on.smtp.reuse_port is True
