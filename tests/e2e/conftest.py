"""A whole mailsvc (SMTP listeners, Dovecot, clamd, pipeline, HTTP) on loopback ports."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import smtplib
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailsvc.app import App
from mailsvc.config import load_settings
from mailsvc.db.models import Agency, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.passwords import hash_password
from tests.tlsutil import write_self_signed

DOMAIN = "sotttt.example.vn"
HOSTNAME = "mail.sotttt.example.vn"
PASSWORD = "Xuan-Ha-Thu-Dong-2026"

CONFIG = """\
[server]
hostname = "{hostname}"
domain = "{domain}"

[listen]
smtp = "127.0.0.1:0"
submission = "127.0.0.1:0"
submissions = "127.0.0.1:0"
imap = "127.0.0.1:0"
imaps = "127.0.0.1:0"
http = "127.0.0.1:0"
metrics = "127.0.0.1:0"

[database]
url = "{db_url}"

[pipeline]
workers = 0

[dns]
mode = "off"
"""


@dataclass
class RunningServer:
    app: App
    home: Path

    def addr(self, name: str) -> tuple[str, int]:
        if name in ("imap", "imaps"):  # Dovecot may have been restarted on new ports
            return getattr(self.app.dovecot, f"{name}_address")  # type: ignore[no-any-return]
        return self.app.addresses[name]

    def sessions(self) -> Session:
        return self.app.sessions()

    def add_mailbox(
        self,
        address: str,
        *,
        role: str = "clerk",
        password: str = PASSWORD,
        must_change: bool = False,
        enabled: bool = True,
    ) -> None:
        with self.app.sessions.begin() as session:
            session.add(
                Mailbox(
                    address=address,
                    role=role,
                    password_hash=hash_password(password, self.app.settings.password),
                    must_change=must_change,
                    enabled=enabled,
                )
            )

    def smtp(self, listener: str = "smtp") -> smtplib.SMTP:
        host, port = self.addr(listener)
        if listener == "submissions":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=client_tls(), timeout=30)
        else:
            client = smtplib.SMTP(host, port, timeout=30)
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    def imap(self, user: str, password: str = PASSWORD) -> imaplib.IMAP4:
        host, port = self.addr("imap")
        client = imaplib.IMAP4(host, port, timeout=30)
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.starttls(ssl_context=client_tls())
        client.login(user, password)
        return client


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def prepare_home(
    home: Path, db_url: str, *, hostname: str = HOSTNAME, domain: str = DOMAIN, extra: str = ""
) -> None:
    """A home with TLS and a config; ``extra`` is appended TOML (more sections)."""
    home.mkdir(parents=True, exist_ok=True)
    write_self_signed(home / "tls/cert.pem", home / "tls/key.pem", hostname)
    (home / "mailsvc.toml").write_text(
        CONFIG.format(hostname=hostname, domain=domain, db_url=db_url) + extra, encoding="utf-8"
    )


@pytest.fixture
def service_home() -> Iterator[Path]:
    """A home directory outside pytest's 0700 tmp tree: Dovecot's unprivileged mail and
    auth users must be able to walk down to the Maildirs and the master passdb."""
    base = Path(tempfile.mkdtemp(prefix="mailsvc-test-"))
    base.chmod(0o711)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# Dovecot for tests: no delay after a failed login, no per-IP penalty.
TEST_DOVECOT = {"auth_failure_delay": 0, "auth_penalty": False}


def local_agency() -> Agency:
    """Our own agency, owner of DOMAIN."""
    return Agency(
        code="000.00.31.H56", name="Sở Thông tin và Truyền thông", domains=[DOMAIN], local=True
    )


def seed(db_url: str, *rows: object) -> None:
    """Our agency plus ``rows`` (other agencies, mailboxes), committed."""
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.add(local_agency())
            session.add_all(rows)
    finally:
        engine.dispose()


def build_app(home: Path, listen: dict[str, str] | None = None) -> App:
    """The App of ``home``'s config (``listen`` overrides), with the test Dovecot options."""
    return App(load_settings(home, environ={}), listen=listen or {}, dovecot_options=TEST_DOVECOT)


@asynccontextmanager
async def running_server(home: Path) -> AsyncIterator[RunningServer]:
    app = build_app(home)
    await app.start()
    try:
        yield RunningServer(app, home)
    finally:
        await app.stop()


@pytest.fixture
async def server(service_home: Path, db_url: str) -> AsyncIterator[RunningServer]:
    prepare_home(service_home, db_url)
    seed(db_url)
    async with running_server(service_home) as running:
        yield running


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition until it holds (no fixed sleeps in tests)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.01
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


@pytest.fixture
def run_sync() -> Iterator[Callable[..., object]]:
    """Run a blocking client call in a thread while the server runs in the loop."""
    yield asyncio.to_thread
