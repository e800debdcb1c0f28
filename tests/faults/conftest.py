"""Faults on a running mailsvc: `mailsvc serve` as a real process (so it can be SIGKILLed),
a private PostgreSQL cluster that a test may stop, and process counting per home."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid
from pathlib import Path

import pytest

from mailsvc.config import PasswordSection
from mailsvc.db.models import Mailbox
from mailsvc.passwords import hash_password
from tests.e2e.conftest import DOMAIN, PASSWORD, client_tls
from tests.ports import unused_port

CLERK = f"vanthu@{DOMAIN}"
SENDER = "cv@sender.example.vn"
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http", "metrics")
SERVE_TIMEOUT = 120.0


def clerk(address: str = CLERK) -> Mailbox:
    """A clerk mailbox whose password is set (IMAP login works)."""
    return Mailbox(
        address=address,
        role="clerk",
        password_hash=hash_password(PASSWORD, PasswordSection()),
        must_change=False,
    )


def set_server_keys(home: Path, **values: object) -> None:
    """Add keys to the [server] table of ``home``'s mailsvc.toml."""
    path = home / "mailsvc.toml"
    lines = "".join(
        f"{k} = {v!r}\n" if not isinstance(v, str) else f'{k} = "{v}"\n' for k, v in values.items()
    )
    path.write_text(path.read_text().replace("[server]\n", "[server]\n" + lines, 1))


@pytest.fixture
def service_home() -> Iterator[Path]:
    """A home outside pytest's 0700 tmp tree (Dovecot's users must reach the Maildirs)."""
    base = Path(tempfile.mkdtemp(prefix="mailsvc-faults-"))
    base.chmod(0o711)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------- processes
def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def dovecot_masters(home: Path) -> list[int]:
    """Dovecot master processes running this home's generated configuration."""
    conf = str(home / "dovecot" / "dovecot.conf")
    return [
        pid
        for pid in _pids()
        if (argv := _argv(pid))
        and os.path.basename(argv[0]) == "dovecot"
        and conf in argv
        and _running(pid)
    ]


def clamds(home: Path) -> list[int]:
    conf = str(home / "clamav" / "clamd.conf")
    return [
        pid
        for pid in _pids()
        if (argv := _argv(pid))
        and os.path.basename(argv[0]) == "clamd"
        and conf in argv
        and _running(pid)
    ]


def marked(mark: str) -> list[int]:
    """Every live process that inherited ``MAILSVC_TEST_MARK=mark`` (serve and its children)."""
    needle = f"MAILSVC_TEST_MARK={mark}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and _running(pid):
            found.append(pid)
    return found


def wait_until(predicate: object, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a callable) until true; no fixed sleeps."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


# --------------------------------------------------------------------------------- serve
@dataclass
class Serve:
    """``python -m mailsvc serve`` for a home, all listeners on port 0."""

    home: Path
    db_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen[str] | None = None
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.home.parent / "serve.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MAILSVC_HOME=str(self.home),
            MAILSVC_DATABASE__URL=self.db_url,
            MAILSVC_DNS__MODE="off",
            MAILSVC_PIPELINE__WORKERS="0",
            MAILSVC_JOBS__ENABLED="false",
            MAILSVC_TEST_MARK=self.mark,
        )
        env.update(self.env_extra)
        return env

    def private_files(self) -> None:
        """serve refuses a config or an SQLite database that others can read."""
        files = [self.home / "mailsvc.toml"]
        if self.db_url.startswith("sqlite:///"):
            db = Path(self.db_url.removeprefix("sqlite:///"))
            files += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        for path in files:
            if path.exists():
                path.chmod(0o600)

    def start(self) -> dict[str, tuple[str, int]]:
        assert self.proc is None or self.proc.poll() is not None
        self.private_files()
        log = open(self.log_path, "a", encoding="utf-8")
        log.write(f"---- start {self.starts + 1}\n")
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailsvc", "serve", *(f"--{n}=127.0.0.1:0" for n in LISTENERS)],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        self.starts += 1
        addresses: dict[str, tuple[str, int]] = {}
        assert self.proc.stdout is not None
        deadline = time.monotonic() + SERVE_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited with {self.proc.wait()}: {self.log_tail()}")
            self.output.append(line)
            match = re.match(r"(\w+) listening on (.+):(\d+)$", line.strip())
            if match:
                addresses[match.group(1)] = (match.group(2), int(match.group(3)))
            if line.strip() == "ready":
                self.addresses = addresses
                threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
                return addresses
        raise AssertionError("serve did not become ready")

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 90.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        """Test teardown: stop serve and anything it left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for pid in marked(self.mark) + dovecot_masters(self.home) + clamds(self.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def smtp(self, timeout: float = 30) -> smtplib.SMTP:
        client = smtplib.SMTP(*self.addresses["smtp"], timeout=timeout)
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client


def message(
    *,
    sender: str = SENDER,
    to: str = CLERK,
    subject: str = "Thông báo lịch họp",
    body: str = "Kính gửi Văn thư.",
    message_id: str | None = None,
    pdf: bytes | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="sender.example.vn")
    msg["Date"] = "Sat, 05 Dec 2026 08:00:00 +0700"
    msg.set_content(body)
    if pdf is not None:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="cong-van.pdf")
    return msg.as_bytes(policy=SMTP_POLICY)


def send(
    addr: tuple[str, int],
    data: bytes,
    to: str = CLERK,
    timeout: float = 60,
    sender: str = SENDER,
) -> str:
    """One message over SMTP; returns the DATA reply as ``"CODE text"`` (raises on a
    connection failure)."""
    with smtplib.SMTP(*addr, timeout=timeout) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.ehlo("client.example.vn")
        code, text = client.mail(sender)
        if code != 250:
            return f"{code} {text.decode()}"
        code, text = client.rcpt(to)
        if code != 250:
            return f"{code} {text.decode()}"
        code, text = client.data(data)
        return f"{code} {text.decode()}"


def imap_message_ids(addr: tuple[str, int], user: str, password: str) -> list[str]:
    """Message-ID of every message in ``user``'s INBOX (imaplib, STARTTLS)."""
    import imaplib

    client = imaplib.IMAP4(*addr, timeout=30)
    try:
        client.starttls(ssl_context=client_tls())
        client.login(user, password)
        typ, _ = client.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        ids = []
        for part in data:
            if isinstance(part, tuple):
                text = part[1].decode("ascii", "replace")
                match = re.search(r"<[^>]+>", text)
                if match:
                    ids.append(match.group(0))
        return ids
    finally:
        with contextlib.suppress(Exception):
            client.logout()


# ------------------------------------------------------------------ private PostgreSQL
@dataclass
class PgCluster:
    """A PostgreSQL 15 cluster of our own (initdb in a temporary directory, another port):
    a test may stop it. The shared server at 127.0.0.1:5432 is never touched."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.root / "pg.log"),
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")

    def create_database(self) -> str:
        from sqlalchemy import create_engine, text

        name = f"mailsvc_f_{uuid.uuid4().hex[:10]}"
        engine = create_engine(
            self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
        engine.dispose()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def _free_port() -> int:
    return unused_port()  # not an ephemeral port: see tests/ports.py


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    root = Path(tempfile.mkdtemp(prefix="mailsvc-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PgCluster(root, _free_port())
    cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(AssertionError):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
