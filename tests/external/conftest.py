"""The other agency's IMAP server (a second, real Dovecot with its own database) and our
own server configured to fetch from it, started and restarted by the test."""

from __future__ import annotations

import asyncio
import functools
import imaplib
import re
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
timeout_seconds = {timeout}
"""


@dataclass
class Local:
    """Our server's home, configured to fetch the remote mailbox; start and stop at will."""

    home: Path
    engine: Engine
    db_url: str
    remote: RemoteServer | None
    running: RunningServer | None = None

    def configure(
        self,
        *,
        tls: str = "implicit",
        folder: str = "INBOX",
        poll_seconds: float = 300,
        idle: bool = True,
        port: int | None = None,
        timeout: float = 60,
        extra: str = "",
    ) -> None:
        """``port``: another server than ``remote``; ``extra``: TOML before the table."""
        prepare_home(self.home, self.db_url, extra=extra)
        if port is None:
            assert self.remote is not None
            port = self.remote.imaps_port if tls == "implicit" else self.remote.imap_port
        with (self.home / "mailsvc.toml").open("a", encoding="utf-8") as fh:
            fh.write(
                EXTERNAL.format(
                    name=NAME,
                    port=port,
                    tls=tls,
                    ca_file=self.remote.cert if self.remote is not None else "",
                    username=REMOTE_USER,
                    folder=folder,
                    deliver_to=CLERK,
                    poll_seconds=poll_seconds,
                    idle="true" if idle else "false",
                    timeout=timeout,
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


@pytest.fixture
async def hostile_local(local_base: Path, db_url: str) -> AsyncIterator[Local]:
    """Our server, to be pointed at a HostileImap instead of the real remote Dovecot."""
    await asyncio.to_thread(_seed_local, db_url, local_base)
    state = Local(local_base, make_engine(db_url), db_url, None)
    try:
        yield state
    finally:
        await state.stop()
        state.engine.dispose()


class HostileImap:
    """A loopback IMAP server that misbehaves as ``mode`` says when a message is listed
    or fetched; everything else (CAPABILITY, LOGIN, SELECT, LOGOUT) it answers plainly.

    - ``honest``: lists ``uids`` (RFC822.SIZE ``size``), answers each listing for the UIDs
      asked only, and serves ``body`` (cut to the partial range asked, as RFC 3501 says);
    - ``big-literal``: answers BODY.PEEK[] with a literal of ``literal_size`` bytes,
      streamed as fast as the client reads it (``streamed`` counts what was written);
    - ``endless-line``: a small literal, then ``literal_size`` bytes with no line end;
    - ``listing-flood``: answers any listing with a line for every UID in ``uids``, in one
      write, whatever range was asked (a server ignoring the range);
    - ``drip``: announces a literal, then sends one byte every ``drip_seconds``;
    - ``hangup``: starts the answer to BODY.PEEK[], then closes the connection.

    ``commands`` holds every command received, ``logins`` counts sessions."""

    def __init__(self, mode: str = "honest") -> None:
        self.mode = mode
        self.uids: list[int] = [1]
        self.size = 1000
        self.body = (
            b"From: vanthu@so-khac.gov.vn\r\nTo: vanthu@sotttt.example.vn\r\n"
            b"Subject: hostile\r\nMessage-ID: <hostile-1@so-khac.gov.vn>\r\n\r\nxin chao\r\n"
        )
        self.literal_size = 64 * 1024 * 1024
        self.drip_seconds = 0.5
        self.streamed = 0
        self.commands: list[str] = []
        self.logins = 0
        self.closed = asyncio.Event()  # a session ended (the client went away)
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def _selected(self, spec: str) -> list[int]:
        """The UIDs of ``uids`` in an IMAP sequence set ("1:5,7,9:*")."""
        last = max(self.uids, default=0)
        chosen: set[int] = set()
        for part in spec.split(","):
            low, _, high = part.partition(":")
            lo = last if low == "*" else int(low)
            hi = lo if not high else (last if high == "*" else int(high))
            lo, hi = min(lo, hi), max(lo, hi)
            chosen.update(u for u in self.uids if lo <= u <= hi)
        return sorted(chosen)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"* OK [CAPABILITY IMAP4rev1] hostile\r\n")
            while line := await reader.readline():
                text = line.decode().rstrip("\r\n")
                self.commands.append(text)
                tag, _, rest = text.partition(" ")
                words = rest.split(" ")
                command = words[0].upper()
                if command == "CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1\r\n" + f"{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    self.logins += 1
                    writer.write(f"{tag} OK logged in\r\n".encode())
                elif command == "SELECT":
                    last = max(self.uids, default=0)
                    writer.write(
                        f"* {len(self.uids)} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n"
                        f"* OK [UIDNEXT {last + 1}] n\r\n{tag} OK [READ-WRITE] done\r\n".encode()
                    )
                elif command == "LOGOUT":
                    writer.write(f"* BYE\r\n{tag} OK bye\r\n".encode())
                    await writer.drain()
                    return
                elif command == "UID" and words[1].upper() == "SEARCH":
                    found = " ".join(str(u) for u in self._selected(words[-1]))
                    writer.write(f"* SEARCH {found}\r\n{tag} OK done\r\n".encode())
                elif command == "UID" and "BODY.PEEK[]" in rest:
                    await self._body(writer, tag, int(words[2]), rest)
                elif command == "UID":
                    wanted = self.uids if self.mode == "listing-flood" else None
                    listed = wanted or self._selected(words[2])
                    writer.write(
                        b"".join(
                            b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (n, uid, self.size)
                            for n, uid in enumerate(listed, 1)
                        )
                        + f"{tag} OK done\r\n".encode()
                    )
                else:
                    writer.write(f"{tag} OK done\r\n".encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def _body(self, writer: asyncio.StreamWriter, tag: str, uid: int, rest: str) -> None:
        if self.mode == "big-literal":
            writer.write(b"* 1 FETCH (UID %d BODY[] {%d}\r\n" % (uid, self.literal_size))
            chunk = b"A" * 998 + b"\r\n"
            block = chunk * 1024
            while self.streamed < self.literal_size:
                part = block[: self.literal_size - self.streamed]
                writer.write(part)
                await writer.drain()
                self.streamed += len(part)
            writer.write(f")\r\n{tag} OK done\r\n".encode())
        elif self.mode == "endless-line":
            writer.write(b"* 1 FETCH (UID %d BODY[] {4}\r\nabcd" % uid)
            block = b"X" * (1 << 20)
            while self.streamed < self.literal_size:
                writer.write(block)
                await writer.drain()
                self.streamed += len(block)
            await asyncio.Event().wait()  # then nothing, for ever
        elif self.mode == "hangup":
            writer.write(b"* 1 FETCH (UID %d BODY[] {100000}\r\nFrom: a@b.vn\r\n" % uid)
            await writer.drain()
            raise ConnectionResetError("hung up")
        elif self.mode == "drip":
            writer.write(b"* 1 FETCH (UID %d BODY[] {100000}\r\n" % uid)
            while True:
                await writer.drain()
                await asyncio.sleep(self.drip_seconds)  # the hostile behaviour itself
                writer.write(b"x")
                self.streamed += 1
        else:
            body = self.body
            if m := re.search(r"BODY\.PEEK\[\]<0\.(\d+)>", rest):
                body = body[: int(m.group(1))]
                writer.write(b"* 1 FETCH (UID %d BODY[]<0> {%d}\r\n" % (uid, len(body)))
            else:
                writer.write(b"* 1 FETCH (UID %d BODY[] {%d}\r\n" % (uid, len(body)))
            writer.write(body + f")\r\n{tag} OK done\r\n".encode())
