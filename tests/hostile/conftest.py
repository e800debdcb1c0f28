"""One whole mailsvc (SMTP, Dovecot, clamd, a worker process for documents) shared by
the hostile corpus and the fuzz test, running in its own thread and event loop so the
tests can be plain synchronous clients (and Hypothesis can drive them)."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import smtplib
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailsvc.app import App
from mailsvc.db.models import Mailbox
from mailsvc.db.session import migrate
from mailsvc.passwords import hash_password
from tests.conftest import PG_ADMIN_URL
from tests.e2e.conftest import PASSWORD, build_app, client_tls, prepare_home, seed
from tests.hostile.corpus import OFFICIAL, RECIPIENT

SETTINGS = """
[smtp]
max_messages_per_ip_per_minute = 100000
max_connections_per_ip = 100
"""


@dataclass
class Reply:
    code: int
    text: str
    seconds: float  # end of DATA to reply


@dataclass
class CrashWatch(logging.Handler):
    """Counts log records saying a stage crashed, or carrying an exception."""

    crashes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # A stage that crashed, or any exception logged with its traceback: the work
        # after the reply (notices, receipts, alerts, delivery) fails only in the log.
        if "crashed" in message or "unavailable" in message or record.exc_info:
            self.crashes.append(message)

    def __hash__(self) -> int:
        return id(self)


class ThreadedServer:
    """``App`` started in a private event loop on a daemon thread."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: App = build_app(home)
        self.watch = CrashWatch()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.app.start(), self.loop).result(timeout=180)
        logging.getLogger("mailsvc").addHandler(self.watch)

    def stop(self) -> None:
        logging.getLogger("mailsvc").removeHandler(self.watch)
        try:
            asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(timeout=120)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()

    def idle(self, timeout: float = 60.0) -> None:
        """Wait until no message is between end of DATA and its reply, and the work
        after the replies (notices, receipts, delivered marks) is done."""

        async def settled() -> None:
            await self.app.inflight.wait_idle()
            await self.app.acceptance.drain()

        waiting = asyncio.wait_for(settled(), timeout)
        try:
            asyncio.run_coroutine_threadsafe(waiting, self.loop).result(timeout + 5)
        except TimeoutError:
            raise AssertionError("server still busy") from None

    def send(
        self,
        raw: bytes,
        *,
        listener: str = "smtp",
        sender: str = "cv@sender.example.vn",
        recipient: str = RECIPIENT,
        timeout: float = 120.0,
    ) -> Reply:
        host, port = self.app.addresses[listener]
        with smtplib.SMTP(host, port, timeout=timeout) as client:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.ehlo("client.example.vn")
            if listener == "submission":
                client.starttls(context=client_tls())
                client.ehlo("client.example.vn")
                client.login(OFFICIAL, PASSWORD)
            code, answer = client.mail(sender)
            assert code == 250, answer
            code, answer = client.rcpt(recipient)
            assert code == 250, answer
            # smtplib.data() would rewrite line ends; send the bytes as they are.
            code, answer = client.docmd("DATA")
            assert code == 354, answer
            body = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
            body = re.sub(rb"(^|\n)\.", rb"\1..", body)  # dot-stuffing, any line end
            client.send(body)
            started = time.monotonic()
            client.send(b".\r\n")
            code, answer = client.getreply()
            elapsed = time.monotonic() - started
        return Reply(code, answer.decode("utf-8", "replace"), elapsed)


def _database(base: Path) -> tuple[str, str]:
    if not PG_ADMIN_URL:
        url = f"sqlite:///{base / 'mailsvc.sqlite3'}"
        migrate(url)
        return url, ""
    name = f"mailsvc_h_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
    admin.dispose()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    return url, name


def _drop(name: str) -> None:
    if not name:
        return
    admin = create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="package")
def hostile_server() -> Iterator[ThreadedServer]:
    base = Path(tempfile.mkdtemp(prefix="mailsvc-hostile-"))
    base.chmod(0o711)
    home = base / "home"
    url, pg_name = _database(base)
    try:
        prepare_home(home, url, extra=SETTINGS)
        config = home / "mailsvc.toml"
        # One worker process, as in production: a runaway document can be killed.
        config.write_text(config.read_text().replace("workers = 0", "workers = 1"))
        digest = hash_password(PASSWORD, build_app(home).settings.password)
        seed(
            url,
            *(
                Mailbox(address=a, role="clerk", password_hash=digest, must_change=False)
                for a in (RECIPIENT, OFFICIAL)
            ),
        )
        server = ThreadedServer(home)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        _drop(pg_name)
        shutil.rmtree(base, ignore_errors=True)
