"""A mailsvc that can be stopped and started again on the same home (backup, restore,
restart), plus the readers the backup tests compare with: every table's rows, a
directory tree's files and hashes, an archive's members, IMAP's view of a mailbox."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import imaplib
import io
import json
import os
import re
import smtplib
import subprocess
import sys
import tarfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import MetaData, create_engine, select

from mailsvc.cli import main
from tests.conftest import PG_ADMIN_URL, _create_pg_database, _drop_pg_database
from tests.e2e.conftest import DOMAIN, RunningServer, build_app, prepare_home, seed
from tests.e2e.conftest import service_home as service_home  # the fixture

REPO = Path(__file__).resolve().parents[2]
CLERK = f"vanthu@{DOMAIN}"
OFFICIAL = f"annv.stttt@{DOMAIN}"
QUEUE_ID = re.compile(rb"(?im)^X-Mailsvc-Queue-Id:[ \t]*(\S+)")


class Service:
    """Start, stop and start again a whole mailsvc on one home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.running: RunningServer | None = None

    async def start(self) -> RunningServer:
        app = build_app(self.home)
        try:
            await app.start()
        except BaseException:
            await app.stop()
            raise
        self.running = RunningServer(app, self.home)
        return self.running

    async def stop(self) -> None:
        if self.running is not None:
            running, self.running = self.running, None
            await running.app.stop()


@pytest.fixture
async def service(service_home: Path, db_url: str) -> AsyncIterator[Service]:
    prepare_home(service_home, db_url)
    with (service_home / "mailsvc.toml").open("a", encoding="utf-8") as fh:
        # A sender thread sends as fast as it can while the backup runs.
        fh.write("\n[smtp]\nmax_messages_per_ip_per_minute = 100000\n")
    seed(db_url)
    svc = Service(service_home)
    try:
        yield svc
    finally:
        await svc.stop()


# ------------------------------------------------------------------------------ mail


def make_message(n: int, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"cv{n}@sender.example.vn"
    msg["To"] = to
    msg["Subject"] = f"Công văn số {n}/2026"
    msg["Message-ID"] = make_msgid(domain="sender.example.vn")
    msg.set_content(f"Kính gửi quý cơ quan, văn bản số {n}.")
    return msg


def send(server: RunningServer, n: int, to: str) -> None:
    with server.smtp() as client:
        client.ehlo("client.example.vn")
        refused = client.send_message(make_message(n, to), f"cv{n}@sender.example.vn", [to])
        assert refused == {}


class Sender(threading.Thread):
    """Keeps sending over SMTP (alternating recipients) until stopped."""

    def __init__(self, server: RunningServer, recipients: tuple[str, ...], first: int) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.recipients = recipients
        self.first = first
        self.sent = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = self.first
        while not self.stopping.is_set():
            try:
                send(self.server, n, self.recipients[n % len(self.recipients)])
                self.sent += 1
            except (OSError, smtplib.SMTPException, AssertionError) as exc:
                self.errors.append(f"{n}: {exc}")
            n += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


# ------------------------------------------------------------------------------- CLI


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in its own process (as cron or an operator runs it)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), MAILSVC_ACTOR="cli:tester")
    return subprocess.run(
        [sys.executable, "-m", "mailsvc", "--home", str(home), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def invoke(home: Path, *args: str) -> Result:
    """The command line in this process (faster; the tests call it from a thread)."""
    return CliRunner().invoke(
        main, ["--home", str(home), *args], env={"MAILSVC_ACTOR": "cli:tester"}
    )


def archive_path(output: str) -> Path:
    match = re.search(r"^archive\s+(\S+)", output, re.M)
    assert match, output
    return Path(match.group(1))


# -------------------------------------------------------------------------- readers


def table_rows(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table (values as text, so JSON and dates compare)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        meta = MetaData()
        meta.reflect(engine, views=False)
        with engine.connect() as conn:
            return {
                name: {
                    tuple(json.dumps(v, sort_keys=True, default=str) for v in row)
                    for row in conn.execute(select(table))
                }
                for name, table in meta.tables.items()
            }
    finally:
        engine.dispose()


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """relative path -> (type, sha256, mode, uid, gid, mtime_ns of files)."""
    out: dict[str, tuple[Any, ...]] = {}
    out["."] = _describe(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = _describe(path)
    return out


def _describe(path: Path) -> tuple[Any, ...]:
    st = path.lstat()
    if path.is_dir():
        return ("dir", "", st.st_mode & 0o7777, st.st_uid, st.st_gid, 0)
    digest = _digest(path.name, path.read_bytes())
    return ("file", digest, st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns)


def _digest(name: str, data: bytes) -> str:
    """SHA-256; of a dovecot-uidlist without its next-UID field, which restore may raise."""
    if name == "dovecot-uidlist":
        head, sep, rest = data.partition(b"\n")
        data = re.sub(rb" N\d+", b"", head) + sep + rest
    return hashlib.sha256(data).hexdigest()


def manifest_tree(archive: Archive, part: str) -> dict[str, tuple[Any, ...]]:
    """The same view of one part of an archive, from its manifest."""
    out = {}
    for e in archive.manifest["entries"]:
        if e["path"] != part and not e["path"].startswith(part + "/"):
            continue
        rel = "." if e["path"] == part else e["path"][len(part) + 1 :]
        mtime, digest = 0, ""
        if e["type"] == "file":
            mtime = e["mtime_ns"]
            digest = _digest(e["path"].rsplit("/", 1)[-1], archive.members[e["path"]])
            assert hashlib.sha256(archive.members[e["path"]]).hexdigest() == e["sha256"]
        out[rel] = (e["type"], digest, int(e["mode"], 8), e["uid"], e["gid"], mtime)
    return out


@dataclass
class Archive:
    manifest: dict[str, Any]
    members: dict[str, bytes]  # regular files only

    @classmethod
    def read(cls, path: Path) -> Archive:
        members: dict[str, bytes] = {}
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                if info.isreg():
                    handle = tar.extractfile(info)
                    assert handle is not None
                    members[info.name] = handle.read()
        return cls(json.loads(members["manifest.json"]), members)

    def maildir_messages(self) -> dict[str, tuple[str, str | None]]:
        """member -> (mailbox, queue id) for every archived Maildir message."""
        out = {}
        for name, data in self.members.items():
            parts = name.split("/")
            if parts[0] == "maildirs" and len(parts) >= 6 and parts[-2] in ("cur", "new"):
                match = QUEUE_ID.search(data.split(b"\n\n", 1)[0])
                qid = match.group(1).decode() if match else None
                out[name] = (f"{parts[2]}@{parts[1]}", qid)
        return out

    def blobs(self) -> set[str]:
        return {n.rsplit("/", 1)[1] for n in self.members if n.startswith("blobs/")}


@contextlib.contextmanager
def archived_database(archive: Archive, work: Path) -> Iterator[str]:
    """A database URL holding the archive's snapshot."""
    if "database/mailsvc.sqlite3" in archive.members:
        path = work / "archived.sqlite3"
        path.write_bytes(archive.members["database/mailsvc.sqlite3"])
        yield f"sqlite:///{path}"
        return
    dump = work / "archived.pgdump"
    dump.write_bytes(archive.members["database/mailsvc.pgdump"])
    name, url = _create_pg_database(PG_ADMIN_URL)
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={url}", str(dump)],
            check=True,
            capture_output=True,
        )
        yield url
    finally:
        _drop_pg_database(PG_ADMIN_URL, name)


def imap_state(server: RunningServer, user: str) -> tuple[int, dict[str, tuple[int, str]]]:
    """(UIDVALIDITY, queue id -> (UID, flags)) of a mailbox's INBOX."""
    client = server.imap(user)
    try:
        typ, _ = client.select("INBOX", readonly=True)
        assert typ == "OK"
        validity = int(client.response("UIDVALIDITY")[1][0] or 0)
        typ, data = client.uid(
            "FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (X-MAILSVC-QUEUE-ID)])"
        )
        assert typ == "OK"
        state: dict[str, tuple[int, str]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, header = item
            uid = int(re.search(rb"UID (\d+)", meta).group(1))  # type: ignore[union-attr]
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode()  # type: ignore[union-attr]
            flags = " ".join(sorted(f for f in flags.split() if f != "\\Recent"))
            qid = QUEUE_ID.search(header).group(1).decode()  # type: ignore[union-attr]
            assert qid not in state, f"{qid} twice in {user}'s INBOX"
            state[qid] = (uid, flags)
        return validity, state
    finally:
        client.logout()


def imap_store(server: RunningServer, user: str, uid: int, command: str, flags: str) -> None:
    client: imaplib.IMAP4 = server.imap(user)
    try:
        client.select("INBOX")
        typ, _ = client.uid("STORE", str(uid), command, flags)
        assert typ == "OK"
        if "\\Deleted" in flags:
            client.expunge()
    finally:
        client.logout()


def rewrite_archive(source: Path, target: Path, member: str, change: bytes) -> None:
    """A copy of an archive in which one member's content is altered (the manifest kept)."""
    with tarfile.open(source, "r:gz") as src, gzip.open(target, "wb") as gz:
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as dst:
            for info in src:
                data = src.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
                if info.name == member and data is not None:
                    data = data + change
                    info.size = len(data)
                dst.addfile(info, io.BytesIO(data) if data is not None else None)


@dataclass(frozen=True)
class Forged:
    """A member an attacker puts into an archive: a file (``data``) or a symlink."""

    name: str
    data: bytes = b""
    mode: int = 0o600
    symlink_to: str = ""


def forge_archive(
    source: Path,
    target: Path,
    forged: list[Forged],
    *,
    key: bytes | None,
    with_mac: bool = True,
) -> None:
    """A copy of ``source`` with ``forged`` members added or replaced and a manifest
    rewritten to match them, as an attacker holding the archive would do; its
    ``manifest.hmac`` is computed with ``key`` (None: the archive's own MAC is kept)."""
    by_name = {f.name: f for f in forged}
    with tarfile.open(source, "r:gz") as src:
        originals = [(info, src.extractfile(info).read() if info.isreg() else None) for info in src]  # type: ignore[union-attr]
    members = [(i, d) for i, d in originals if i.name not in ("manifest.json", "manifest.hmac")]
    manifest = json.loads(next(d for i, d in originals if i.name == "manifest.json") or b"")
    old_mac = next((d for i, d in originals if i.name == "manifest.hmac"), None)
    entries = [e for e in manifest["entries"] if e["path"] not in by_name]
    kept = [(i, d) for i, d in members if i.name not in by_name]
    for item in forged:
        info = tarfile.TarInfo(item.name)
        info.mode, info.mtime = item.mode, 1_700_000_000
        entry = {"path": item.name, "mode": f"{item.mode:04o}", "user": "root", "group": "root",
                 "uid": 0, "gid": 0, "mtime_ns": 1_700_000_000 * 10**9}  # fmt: skip
        if item.symlink_to:
            info.type, info.linkname = tarfile.SYMTYPE, item.symlink_to
            link = item.symlink_to.encode()
            entry |= {"type": "symlink", "size": len(link), "target": item.symlink_to,
                      "sha256": hashlib.sha256(link).hexdigest()}  # fmt: skip
            kept.append((info, None))
        else:
            info.size = len(item.data)
            entry |= {"type": "file", "size": len(item.data),
                      "sha256": hashlib.sha256(item.data).hexdigest()}  # fmt: skip
            kept.append((info, item.data))
        entries.append(entry)
    manifest["entries"] = entries
    manifest_bytes = json.dumps(manifest, ensure_ascii=False).encode()
    mac = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest().encode() if key else old_mac
    with gzip.open(target, "wb") as gz, tarfile.open(fileobj=gz, mode="w|") as dst:
        for info, data in kept:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
        tail = [("manifest.json", manifest_bytes)]
        if with_mac and mac is not None:
            tail.append(("manifest.hmac", mac))
        for name, data in tail:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
