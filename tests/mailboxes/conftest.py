"""A real Dovecot per test (started in ~0.2 s) on the test's database, with real clients."""

from __future__ import annotations

import asyncio
import datetime as dt
import imaplib
import ipaddress
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import update
from sqlalchemy.orm import Session

from mailsvc.config import PasswordSection, Settings
from mailsvc.db.models import Mailbox
from mailsvc.db.session import make_engine
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.passwords import hash_password

DOMAIN = "so-tp.gov.vn"
PASSWORD = "Dung-mat-khau-42"
PAGE = "https://mail.so-tp.gov.vn:8443/password"


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for localhost / 127.0.0.1 (generated, never committed)."""
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.2")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Tls(d / "cert.pem", d / "key.pem")


@pytest.fixture
def home() -> Iterator[Path]:
    """A home directory the mail user can traverse (pytest's own tmp tree is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mailsvc-test-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Accounts:
    """Creates and changes mailboxes directly in the test database."""

    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url)
        self.cfg = PasswordSection()

    def add(
        self,
        local: str,
        password: str = PASSWORD,
        *,
        must_change: bool = False,
        expires: dt.datetime | None = None,
        enabled: bool = True,
    ) -> str:
        address = f"{local}@{DOMAIN}"
        with Session(self.engine) as s, s.begin():
            s.add(
                Mailbox(
                    address=address,
                    password_hash=hash_password(password, self.cfg) if password else "",
                    must_change=must_change,
                    password_expires_at=expires,
                    enabled=enabled,
                )
            )
        return address

    def set(self, address: str, **values: Any) -> None:
        if "password" in values:
            values["password_hash"] = hash_password(values.pop("password"), self.cfg)
        with Session(self.engine) as s, s.begin():
            s.execute(update(Mailbox).where(Mailbox.address == address).values(**values))


@pytest.fixture
def accounts(db_url: str) -> Iterator[Accounts]:
    acc = Accounts(db_url)
    yield acc
    acc.engine.dispose()


StartDovecot = Callable[..., Awaitable[DovecotService]]


@pytest.fixture
async def start_dovecot(db_url: str, home: Path, tls: Tls) -> AsyncIterator[StartDovecot]:
    started: list[DovecotService] = []

    async def start(
        imap: str = "127.0.0.1:0", imaps: str = "127.0.0.1:0", *, chosen_imap: int = 0
    ) -> DovecotService:
        settings = Settings(
            home=home,
            database={"url": db_url},
            listen={"imap": imap, "imaps": imaps},
            tls={"cert": str(tls.cert), "key": str(tls.key)},
            dovecot={"auth_workers": 2},
        )
        svc = DovecotService(
            settings,
            password_page_url=PAGE,
            auth_failure_delay=0,
            auth_penalty=False,
            restart_min_backoff=0.05,
        )
        if chosen_imap:  # as if port 0 had been resolved to it before this start
            svc.imap_address = (svc.imap_address[0], chosen_imap)
        started.append(svc)
        await svc.start()
        return svc

    yield start
    for svc in started:
        await svc.stop()


@pytest.fixture
async def dovecot(start_dovecot: StartDovecot) -> DovecotService:
    return await start_dovecot()


@pytest.fixture
async def lmtp(dovecot: DovecotService) -> AsyncIterator[LmtpClient]:
    client = LmtpClient(dovecot.lmtp_path, pool_size=4, timeout=10)
    yield client
    await client.close()


def _nodelay(sock: socket.socket) -> socket.socket:
    # imaplib sends an APPEND literal and its CRLF separately: without this each APPEND
    # waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Imap(imaplib.IMAP4):
    """imaplib with TCP_NODELAY (and an optional source address)."""

    source: tuple[str, int] | None = None

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = socket.create_connection(
            (self.host, self.port),
            timeout if timeout is not None else 10,
            source_address=self.source,
        )
        return _nodelay(sock)


class ImapSsl(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), 10)
        _nodelay(sock)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def client_context(tls: Tls) -> ssl.SSLContext:
    """Verifies the server against our test certificate, hostname included."""
    return ssl.create_default_context(cafile=str(tls.cert))


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise AssertionError("condition not met before the deadline")


async def async_wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise AssertionError("condition not met before the deadline")


def message(
    subject: str = "Công văn số 12/UBND", body: str = "Nội dung.\r\n", **headers: str
) -> bytes:
    lines = [
        "From: Van thu <vanthu@ubnd.gov.vn>",
        f"To: someone@{DOMAIN}",
        f"Subject: {subject}",
        f"Message-ID: <{time.monotonic_ns()}@ubnd.gov.vn>",
        *[f"{k.replace('_', '-')}: {v}" for k, v in headers.items()],
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")
