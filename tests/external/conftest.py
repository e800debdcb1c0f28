"""The other agency's IMAP server (a second, real Dovecot with its own database) and our
own server configured to fetch from it, started and restarted by the test."""

from __future__ import annotations

import asyncio
import functools
import imaplib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from mailsvc.config import PasswordSection, Settings
from mailsvc.db.models import Agency, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker, migrate
from mailsvc.external.models import ExternalFetch
from mailsvc.mailboxes.dovecot import DovecotService, resolve_port
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.outbound.dkim import DkimSigner
from mailsvc.passwords import hash_password
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer, build_app, prepare_home, seed
from tests.signatures.pki import AGENCY_CODE, AGENCY_DOMAIN, AGENCY_NAME, session_pki
from tests.tlsutil import write_self_signed

REMOTE_USER = "vanthu@so-khac.gov.vn"
REMOTE_PASSWORD = "Mat-khau-ben-kia-2026"
CLERK = f"vanthu@{DOMAIN}"
NAME = "so-khac"


@functools.cache
def agency_signer() -> DkimSigner:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return DkimSigner(pem, "mail", AGENCY_DOMAIN)


def _enterable_dir(prefix: str) -> Path:
    """Outside pytest's 0700 tmp tree: Dovecot's users must reach Maildirs and databases."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o711)
    return base


@dataclass
class RemoteServer:
    """The other agency's mail server: Dovecot with IMAP, IMAPS and LMTP."""

    dovecot: DovecotService
    home: Path
    cert: Path

    @property
    def imap_port(self) -> int:
        return self.dovecot.imap_address[1]

    @property
    def imaps_port(self) -> int:
        return self.dovecot.imaps_address[1]

    async def deliver(self, raw: bytes, sender: str = "vanthu@ubnd.example.vn") -> None:
        """Mail arriving at the other agency (its MTA hands it to Dovecot over LMTP)."""
        lmtp = LmtpClient(self.dovecot.lmtp_path, timeout=10)
        try:
            await lmtp.deliver(REMOTE_USER, raw, sender=sender)
        finally:
            await lmtp.close()

    def imap(self) -> imaplib.IMAP4:
        """A plain loopback session as the remote mailbox's owner (test setup and checks)."""
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        client.login(REMOTE_USER, REMOTE_PASSWORD)
        return client


@pytest.fixture
async def remote() -> AsyncIterator[RemoteServer]:
    base = _enterable_dir("mailsvc-remote-")
    home = base / "home"
    home.mkdir()
    try:
        write_self_signed(home / "tls/cert.pem", home / "tls/key.pem", "localhost")
        url = f"sqlite:///{home / 'remote.sqlite3'}"
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        with make_sessionmaker(engine).begin() as session:
            session.add(
                Mailbox(
                    address=REMOTE_USER,
                    password_hash=hash_password(REMOTE_PASSWORD, PasswordSection()),
                    must_change=False,
                )
            )
        engine.dispose()
        settings = Settings(
            home=home,
            database={"url": url},
            # Fixed ports, so the server comes back where it was after a restart.
            listen={
                "imap": f"127.0.0.1:{resolve_port('127.0.0.1', 0)}",
                "imaps": f"127.0.0.1:{resolve_port('127.0.0.1', 0)}",
            },
            tls={"cert": str(home / "tls/cert.pem"), "key": str(home / "tls/key.pem")},
            dovecot={"auth_workers": 1},
        )
        dovecot = DovecotService(
            settings,
            password_page_url="https://mail.so-khac.gov.vn/password",
            auth_failure_delay=0,
            auth_penalty=False,
        )
        await dovecot.start()
        try:
            yield RemoteServer(dovecot, home, home / "tls/cert.pem")
        finally:
            await dovecot.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


EXTERNAL = """
[[external]]
name = "{name}"
host = "localhost"
port = {port}
tls = "{tls}"
ca_file = "{ca_file}"
username = "{username}"
password_file = "secrets/{name}.password"
folder = "{folder}"
deliver_to = "{deliver_to}"
poll_seconds = {poll_seconds}
idle = {idle}
"""


@dataclass
class Local:
    """Our server's home, configured to fetch the remote mailbox; start and stop at will."""

    home: Path
    engine: Engine
    db_url: str
    remote: RemoteServer
    running: RunningServer | None = None

    def configure(
        self,
        *,
        tls: str = "implicit",
        folder: str = "INBOX",
        poll_seconds: float = 300,
        idle: bool = True,
    ) -> None:
        prepare_home(self.home, self.db_url)
        port = self.remote.imaps_port if tls == "implicit" else self.remote.imap_port
        with (self.home / "mailsvc.toml").open("a", encoding="utf-8") as fh:
            fh.write(
                EXTERNAL.format(
                    name=NAME,
                    port=port,
                    tls=tls,
                    ca_file=self.remote.cert,
                    username=REMOTE_USER,
                    folder=folder,
                    deliver_to=CLERK,
                    poll_seconds=poll_seconds,
                    idle="true" if idle else "false",
                )
            )
        secret = self.home / "secrets" / f"{NAME}.password"
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(REMOTE_PASSWORD + "\n", encoding="utf-8")
        secret.chmod(0o600)

    async def start(self) -> RunningServer:
        app = build_app(self.home)
        self.running = RunningServer(app, self.home)
        await app.start()
        return self.running

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.app.stop()
            self.running = None

    def sessions(self) -> Session:
        return make_sessionmaker(self.engine)()

    def fetches(self) -> list[ExternalFetch]:
        with self.sessions() as session:
            return list(session.scalars(select(ExternalFetch).order_by(ExternalFetch.id)))


def _seed_local(db_url: str, home: Path) -> None:
    """Our agency, the clerk's mailbox that receives fetched mail, and the trust anchors
    for signed documents (as tests/e2e/test_signed_documents_e2e.py does)."""
    pki = session_pki()
    home.mkdir(parents=True)
    (home / "trust").mkdir()
    for pem in pki.trust_dir.glob("*.pem"):
        shutil.copy(pem, home / "trust" / pem.name)
    (home / "crl").mkdir(exist_ok=True)
    for crl in pki.crl_dir.glob("*.crl"):
        shutil.copy(crl, home / "crl" / crl.name)
    # The sending agency signs its mail with DKIM (key pinned: closed network). DKIM is
    # what proves a fetched message's origin: the SMTP hop into the other agency's
    # server is not ours to check (no SPF).
    seed(
        db_url,
        Agency(
            code=AGENCY_CODE,
            name=AGENCY_NAME,
            domains=[AGENCY_DOMAIN],
            dkim_keys={f"mail._domainkey.{AGENCY_DOMAIN}": agency_signer().txt_value()},
        ),
        Mailbox(
            address=CLERK,
            role="clerk",
            password_hash=hash_password(PASSWORD, PasswordSection()),
            must_change=False,
        ),
    )


@pytest.fixture
def local_base() -> Iterator[Path]:
    base = _enterable_dir("mailsvc-test-")
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def local(local_base: Path, db_url: str, remote: RemoteServer) -> AsyncIterator[Local]:
    await asyncio.to_thread(_seed_local, db_url, local_base)
    state = Local(local_base, make_engine(db_url), db_url, remote)
    try:
        yield state
    finally:
        await state.stop()
        state.engine.dispose()
