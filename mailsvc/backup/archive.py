"""``mailsvc backup`` and the daily ``backup_job``: one consistent archive of a home.

What "consistent" means follows the acceptance order (delivery.py): blob fsync → row
committed as ``stored`` → LMTP delivery into the Maildir → row ``delivered``. The
database snapshot is taken FIRST (snapshot.py) and decides everything copied after it,
while mail keeps arriving:

* **Blobs**: a blob is archived when the snapshot references it (a ``sha256`` /
  ``*_sha256`` column). Blobs of messages accepted after the snapshot, and blobs no row
  references at all, are left out. Blobs never change, so copying them later is exact.
* **Maildir messages** (files in ``cur/`` and ``new/``): a file we delivered carries our
  ``X-Mailsvc-Queue-Id`` header. It is archived when the snapshot holds that message
  as ``delivered`` for this mailbox. It is left out when the row is still ``stored``
  (repair delivers it again after a restore, so it would be there twice) or when
  there is no row and the file was written after the snapshot (accepted after it).
  Files without our header (notices, the users' own Sent/Drafts) and old files whose
  row was purged are archived as found. Maildir file names start with the delivery
  time, which is compared with ``cut``. Only files written after the cut, or after
  the oldest ``stored`` row, are opened to read the header.
* **Everything the snapshot references is archived**: rows ``delivered`` before the
  snapshot have their file in the Maildir (unless a user deleted it) and their blob in
  the store; rows ``stored`` are delivered again by repair when serve starts.
* **Maildir metadata** (``dovecot-uidlist``, ``dovecot.index*``, keywords,
  subscriptions) is copied after the messages of its folder, so the UID list covers
  every archived message and UIDs survive a restore. ``tmp/`` contents (deliveries in
  progress) and ``*.lock`` files are left out. Names, flags in names, modes, owners and
  modification times (Dovecot's INTERNALDATE) are kept exactly.
* **Home**: configuration, TLS and DKIM keys, policies, trust material: everything in
  HOME except the database, the Maildirs, the blobs, backups, and what serve
  regenerates (``dovecot/``, ``clamav/``, ``mailsvc.pid``).

A user's own changes during the copy land in the archive as the walk finds them: a
flag change is caught (a renamed file is found again by its unique base name), but a
message moved between folders during those seconds may end up in both folders or, if
the walk reached the target folder before the move and the source after it, in
neither. The snapshot rule above covers mail arriving; the next daily backup catches
moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import gzip
import hashlib
import io
import logging
import os
import pwd
import re
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from mailsvc import audit
from mailsvc.backup.manifest import (
    KEY_NAME,
    MAC_NAME,
    MANIFEST_NAME,
    ArchiveError,
    Entry,
    EntryType,
    Manifest,
    ensure_backup_key,
    manifest_mac,
    read_backup_key,
    symlink_stays_inside,
)
from mailsvc.backup.snapshot import DatabaseSnapshot, database_kind, sqlite_path, take_snapshot
from mailsvc.config import Settings
from mailsvc.jobs.context import JobContext
from mailsvc.pidfile import PID_FILE
from mailsvc.store.durable import fsync_directory
from mailsvc.time import VIETNAM, iso_local

log = logging.getLogger(__name__)

ARCHIVE_PREFIX = "mailsvc-backup-"
ARCHIVE_SUFFIX = ".tar.gz"
ARCHIVE_PATTERN = re.compile(r"^mailsvc-backup-\d{8}T\d{6}\+0700(-\d+)?\.tar\.gz$")
QUEUE_ID = re.compile(rb"(?im)^X-Mailsvc-Queue-Id:[ \t]*([^\s;]+)")
MAILDIR_TIME = re.compile(r"^(\d+)\.(?:[^.]*?M(\d+))?")
HEADER_PEEK = 64 * 1024
CHUNK = 1024 * 1024
COMPRESS_LEVEL = 6
# HOME entries serve regenerates on start (Dovecot's generated config and runtime, the
# clamd signature database and socket): not part of a backup.
REGENERATED = ("dovecot", "clamav")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    sha256: str  # of the archive file
    manifest_sha256: str
    size: int
    seconds: float
    created_at: str
    database_kind: str
    counts: dict[str, int]

    def audit_details(self, deleted: list[str]) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "manifest_sha256": self.manifest_sha256,
            "size": self.size,
            "database": self.database_kind,
            **self.counts,
            "deleted": deleted,
        }


@dataclass
class _Stats:
    mailboxes: set[str] = field(default_factory=set)
    messages: int = 0
    messages_left_out: int = 0
    messages_vanished: int = 0
    maildir_other: int = 0
    blobs: int = 0
    blobs_left_out: int = 0
    home_files: int = 0


class _HashingReader(io.RawIOBase):
    """Reads a file for tarfile and hashes exactly the bytes that go into the archive."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


class _HashingWriter(io.RawIOBase):
    """The archive file: counts and hashes what is written, fsyncs on request."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.handle.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


@dataclass(frozen=True)
class Meta:
    """What an archive keeps of a file's inode."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, st: os.stat_result) -> Meta:
        return cls(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size)


class _Names:
    """uid/gid → name, cached (the names make an archive portable between hosts)."""

    def __init__(self) -> None:
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def user(self, uid: int) -> str:
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = ""
        return self._users[uid]

    def group(self, gid: int) -> str:
        if gid not in self._groups:
            try:
                self._groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self._groups[gid] = ""
        return self._groups[gid]


class _ArchiveWriter:
    """Appends members to the tar stream and the matching entries to the manifest."""

    def __init__(self, fileobj: IO[bytes], on_entry: Callable[[int], None] | None = None) -> None:
        self.on_entry = on_entry  # progress: called with 1 per member written
        self.gzip = gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0)
        self.tar = tarfile.open(fileobj=self.gzip, mode="w|", format=tarfile.PAX_FORMAT)
        self.entries: list[Entry] = []
        self.names = _Names()
        self._seen: set[str] = set()

    def _info(self, path: str, st: Meta, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = st.mode
        info.uid, info.gid = st.uid, st.gid
        info.uname, info.gname = self.names.user(st.uid), self.names.group(st.gid)
        info.mtime = st.mtime_ns // 1_000_000_000
        return info

    def _entry(self, path: str, st: Meta, kind: EntryType, **extra: Any) -> Entry:
        entry = Entry(
            path=path,
            type=kind,
            mode=st.mode,
            uid=st.uid,
            gid=st.gid,
            user=self.names.user(st.uid),
            group=self.names.group(st.gid),
            mtime_ns=st.mtime_ns,
            **extra,
        )
        self.entries.append(entry)
        self._seen.add(path)
        if self.on_entry is not None:
            self.on_entry(1)
        return entry

    def has(self, path: str) -> bool:
        return path in self._seen

    def add_dir(self, path: str, st: os.stat_result) -> None:
        meta = Meta.of(st)
        self.tar.addfile(self._info(path, meta, tarfile.DIRTYPE))
        self._entry(path, meta, "dir")

    def add_stream(self, path: str, handle: IO[bytes], st: os.stat_result | Meta) -> None:
        """A file that does not change (a message, a blob): streamed, hashed on the way."""
        meta = st if isinstance(st, Meta) else Meta.of(st)
        info = self._info(path, meta, tarfile.REGTYPE)
        info.size = meta.size
        reader = _HashingReader(handle)
        try:
            self.tar.addfile(info, reader)
        except OSError as exc:  # tarfile: "unexpected end of data"
            raise ArchiveError(f"{path}: changed while being archived ({exc})") from exc
        self._entry(path, meta, "file", size=reader.size, sha256=reader.digest.hexdigest())

    def add_bytes(self, path: str, data: bytes, st: os.stat_result) -> None:
        meta = Meta.of(st)
        info = self._info(path, meta, tarfile.REGTYPE)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        self._entry(path, meta, "file", size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def add_symlink(self, path: str, target: str, st: os.stat_result) -> None:
        meta = Meta.of(st)
        info = self._info(path, meta, tarfile.SYMTYPE)
        info.linkname = target
        self.tar.addfile(info)
        digest = hashlib.sha256(target.encode()).hexdigest()
        self._entry(path, meta, "symlink", size=len(target.encode()), sha256=digest, target=target)

    def add_manifest(self, manifest: Manifest, key: bytes) -> bytes:
        """The manifest, then its HMAC under the home's backup key (the last members)."""
        data = manifest.to_bytes()
        for name, content in ((MANIFEST_NAME, data), (MAC_NAME, manifest_mac(key, data))):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            info.mtime = int(time.time())
            self.tar.addfile(info, io.BytesIO(content))
        return data

    def close(self) -> None:
        self.tar.close()
        self.gzip.close()


def archive_name(now: datetime, directory: Path) -> str:
    stamp = now.astimezone(VIETNAM).strftime("%Y%m%dT%H%M%S%z")
    name = f"{ARCHIVE_PREFIX}{stamp}{ARCHIVE_SUFFIX}"
    n = 2
    while (directory / name).exists():
        name = f"{ARCHIVE_PREFIX}{stamp}-{n}{ARCHIVE_SUFFIX}"
        n += 1
    return name


def create_backup(
    settings: Settings,
    directory: Path,
    *,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> BackupResult:
    """Write one archive into ``directory`` (temporary name, fsync, rename) and return
    what it holds. Raises ArchiveError; a failed backup leaves nothing behind.
    ``progress`` is called with 1 for every member written (the CLI's progress bar)."""
    started = time.monotonic()
    now = now or datetime.now(VIETNAM)
    kind = database_kind(settings.database_url)
    key = read_backup_key(ensure_backup_key(settings.home))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = archive_name(now, directory)
    final = directory / name
    partial = directory / f".{name}.partial"
    workdir = Path(tempfile.mkdtemp(dir=directory, prefix=".backup-work-"))
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            out = _HashingWriter(raw)
            writer = _ArchiveWriter(out, progress)  # type: ignore[arg-type]
            stats = _Stats()
            with take_snapshot(settings.database_url, workdir) as snapshot:
                _add_database(writer, snapshot, settings)
                refs = snapshot.blob_references()
                _add_blobs(writer, settings.path(settings.paths.blob_root), refs, stats)
                del refs
                _add_maildirs(writer, settings.path(settings.paths.maildir_root), snapshot, stats)
                counts = {
                    "messages_delivered": snapshot.counts.get("delivered", 0),
                    "messages_stored": snapshot.counts.get("stored", 0),
                    "message_rows": sum(snapshot.counts.values()),
                }
                snapshot_at = iso_local(snapshot.taken_at)
            _add_home(writer, settings, directory, stats)
            counts |= {
                "mailboxes": len(stats.mailboxes),
                "maildir_messages": stats.messages,
                "maildir_left_out": stats.messages_left_out,
                "maildir_other_files": stats.maildir_other,
                "blobs": stats.blobs,
                "blobs_left_out": stats.blobs_left_out,
                "home_files": stats.home_files,
                "entries": len(writer.entries),
            }
            manifest = Manifest(
                created_at=iso_local(now),
                database_kind=kind,
                details={
                    "snapshot_at": snapshot_at,
                    "hostname": os.uname().nodename,
                    "sources": {
                        "home": str(settings.home),
                        "maildir_root": str(settings.path(settings.paths.maildir_root)),
                        "blob_root": str(settings.path(settings.paths.blob_root)),
                    },
                    "counts": counts,
                },
                entries=writer.entries,
            )
            manifest_bytes = writer.add_manifest(manifest, key)
            writer.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, final)
        fsync_directory(directory)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ArchiveError(f"backup failed, nothing written: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = BackupResult(
        path=final,
        sha256=out.digest.hexdigest(),
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        size=out.size,
        seconds=time.monotonic() - started,
        created_at=iso_local(now),
        database_kind=kind,
        counts=counts,
    )
    log.info("backup %s: %d bytes in %.1f s, %s", final.name, result.size, result.seconds, counts)
    return result


# ------------------------------------------------------------------------------ parts


def _add_database(writer: _ArchiveWriter, snapshot: DatabaseSnapshot, settings: Settings) -> None:
    with open(snapshot.file, "rb") as handle:
        meta = Meta.of(os.fstat(handle.fileno()))
        if snapshot.kind == "sqlite":
            # Keep the live file's owner and mode (the copy is ours).
            with contextlib.suppress(OSError):
                live = os.stat(sqlite_path(settings.database_url))
                meta = replace(
                    meta, mode=stat.S_IMODE(live.st_mode), uid=live.st_uid, gid=live.st_gid
                )
        writer.add_stream(snapshot.member, handle, meta)


def _scan(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _add_blobs(writer: _ArchiveWriter, root: Path, refs: set[str], stats: _Stats) -> None:
    if not root.is_dir():
        return
    writer.add_dir("blobs", root.stat())

    def walk(directory: Path, arc: str) -> None:
        for entry in _scan(directory):
            member = f"{arc}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                writer.add_dir(member, entry.stat(follow_symlinks=False))
                walk(Path(entry.path), member)
            elif entry.is_file(follow_symlinks=False):
                if entry.name.startswith(".tmp-"):
                    continue  # a put in progress
                if entry.name.lower() not in refs:
                    stats.blobs_left_out += 1
                    continue
                with open(entry.path, "rb") as handle:
                    writer.add_stream(member, handle, os.fstat(handle.fileno()))
                stats.blobs += 1

    walk(root, "blobs")


def _add_maildirs(
    writer: _ArchiveWriter, root: Path, snapshot: DatabaseSnapshot, stats: _Stats
) -> None:
    if not root.is_dir():
        return
    writer.add_dir("maildirs", root.stat())
    _MaildirWalk(writer, root, snapshot, stats).walk(root, "maildirs")


class _MaildirWalk:
    def __init__(
        self, writer: _ArchiveWriter, root: Path, snapshot: DatabaseSnapshot, stats: _Stats
    ) -> None:
        self.writer = writer
        self.root = root
        self.snapshot = snapshot
        self.stats = stats
        # Files written before this time cannot be a copy of a 'stored' row (nor of a
        # row committed after the snapshot): no need to open them to read the header.
        earliest = snapshot.earliest_stored
        self.header_from = snapshot.cut if earliest is None else min(snapshot.cut, earliest - 1)

    def walk(self, directory: Path, arc: str) -> None:
        entries = _scan(directory)
        subdirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
        files = [e for e in entries if e.is_file(follow_symlinks=False)]
        names = {e.name for e in subdirs}
        folder = bool(names & {"cur", "new"})
        for entry in subdirs:
            member = f"{arc}/{entry.name}"
            if folder and entry.name in ("cur", "new", "tmp"):
                self.writer.add_dir(member, entry.stat(follow_symlinks=False))
        if folder:
            self._messages(directory, arc)
        for entry in subdirs:
            if folder and entry.name in ("cur", "new", "tmp"):
                continue
            member = f"{arc}/{entry.name}"
            self.writer.add_dir(member, entry.stat(follow_symlinks=False))
            self.walk(Path(entry.path), member)
        # The folder's own files last: dovecot-uidlist then lists every message above.
        for entry in files:
            if entry.name.endswith(".lock"):
                continue
            data, st = _read_whole(Path(entry.path))
            if data is None or st is None:
                continue  # removed meanwhile (Dovecot rewrites by rename)
            self.writer.add_bytes(f"{arc}/{entry.name}", data, st)
            self.stats.maildir_other += 1

    def _mailbox(self, folder: Path) -> str | None:
        parts = folder.relative_to(self.root).parts
        return f"{parts[1]}@{parts[0]}".lower() if len(parts) >= 2 else None

    def _messages(self, folder: Path, arc: str) -> None:
        mailbox = self._mailbox(folder)
        if mailbox:
            self.stats.mailboxes.add(mailbox)
        # new/ before cur/: Dovecot moves new → cur, never back, so a message moved
        # between the two listings is seen twice (deduplicated below), never missed.
        listed: list[tuple[str, str]] = []
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                listed += [(sub, e.name) for e in _scan(folder / sub) if e.is_file()]
        done: set[str] = set()
        for sub, name in listed:
            base = name.partition(":")[0]
            if base in done:
                continue
            opened = _open_message(folder, sub, name, base)
            if opened is None:
                self.stats.messages_vanished += 1  # expunged or moved meanwhile
                continue
            handle, sub, name = opened
            with handle:
                done.add(base)
                st = os.fstat(handle.fileno())
                if not self._keep(name, handle, mailbox):
                    self.stats.messages_left_out += 1
                    continue
                self.writer.add_stream(f"{arc}/{sub}/{name}", handle, st)
                self.stats.messages += 1

    def _keep(self, name: str, handle: IO[bytes], mailbox: str | None) -> bool:
        written = maildir_time(name)
        if written is not None and written < self.header_from:
            return True
        head = handle.read(HEADER_PEEK)
        handle.seek(0)
        queue_id = header_queue_id(head)
        if queue_id is None or mailbox is None:
            return True  # not a message we delivered: kept as found
        before_cut = written is not None and written < self.snapshot.cut
        if before_cut and queue_id not in self.snapshot.stored_queue_ids:
            return True
        states = self.snapshot.states(queue_id, mailbox)
        if "delivered" in states:
            return True
        if states:
            return False  # 'stored': repair delivers it again after a restore
        return before_cut  # no row: accepted after the snapshot (or an old, purged row)


def maildir_time(name: str) -> float | None:
    """Delivery time from a Maildir file name (``1732150800.M123456P42.host,S=..:2,S``)."""
    match = MAILDIR_TIME.match(name)
    if not match:
        return None
    return int(match.group(1)) + (int(match.group(2)) / 1e6 if match.group(2) else 0.0)


def header_queue_id(head: bytes) -> str | None:
    """Our ``X-Mailsvc-Queue-Id`` from the first bytes of a message (its header only)."""
    end = len(head)
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = head.find(sep)
        if pos != -1:
            end = min(end, pos)
    match = QUEUE_ID.search(head, 0, end)
    return match.group(1).decode("ascii", "replace") if match else None


def _open_message(
    folder: Path, sub: str, name: str, base: str
) -> tuple[IO[bytes], str, str] | None:
    """Open a listed message; when Dovecot renamed it meanwhile (new → cur, a flag
    change) find it again by its unique base name."""
    with contextlib.suppress(FileNotFoundError):
        return open(folder / sub / name, "rb"), sub, name
    for other in ("cur", "new"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in _scan(folder / other):
                if entry.name == base or entry.name.startswith(base + ":"):
                    with contextlib.suppress(FileNotFoundError):
                        return open(entry.path, "rb"), other, entry.name
    return None


def _read_whole(path: Path) -> tuple[bytes | None, os.stat_result | None]:
    """A file that may change while read (indexes, config): read to the end in one go."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            return handle.read(), st
    except FileNotFoundError:
        return None, None


def _home_exclusions(settings: Settings, output: Path) -> set[Path]:
    home = settings.home
    excluded = {
        settings.path(settings.paths.maildir_root).resolve(),
        settings.path(settings.paths.blob_root).resolve(),
        settings.path(settings.backup.directory).resolve(),
        output.resolve(),
        home / PID_FILE,
        home / KEY_NAME,  # authenticates the archives: kept apart from them
        *(home / name for name in REGENERATED),
    }
    # The organisation key's PIN and a file key (issuing) never go into a backup.
    for secret in (settings.issuing.pin_file, settings.issuing.key_file):
        if secret:
            excluded |= {settings.path(secret), settings.path(secret).resolve()}
    if database_kind(settings.database_url) == "sqlite":
        db = sqlite_path(settings.database_url)
        excluded |= {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))}
    return excluded


def home_exclusions(settings: Settings) -> set[Path]:
    """Paths in HOME that are data or regenerated, never restored as configuration."""
    return _home_exclusions(settings, settings.path(settings.backup.directory))


def _add_home(writer: _ArchiveWriter, settings: Settings, output: Path, stats: _Stats) -> None:
    home = settings.home
    excluded = _home_exclusions(settings, output)
    writer.add_dir("home", home.stat())

    def walk(directory: Path, arc: str) -> None:
        for entry in _scan(directory):
            path = Path(entry.path)
            if path in excluded or entry.name.endswith((".restoring", ".replaced", ".partial")):
                continue
            member = f"{arc}/{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                if symlink_stays_inside(member, target):
                    writer.add_symlink(member, target, st)
                    continue
                # A restore refuses links leaving their part: archive what it points at
                # (a certificate from /etc/letsencrypt ...) as a plain file.
                data, fst = _read_whole(path) if path.is_file() else (None, None)
                if data is None or fst is None:
                    log.warning("backup: %s links outside HOME to %s: left out", path, target)
                    continue
                writer.add_bytes(member, data, fst)
                stats.home_files += 1
            elif stat.S_ISDIR(st.st_mode):
                writer.add_dir(member, st)
                walk(path, member)
            elif stat.S_ISREG(st.st_mode):
                data, fst = _read_whole(path)
                if data is not None and fst is not None:
                    writer.add_bytes(member, data, fst)
                    stats.home_files += 1
            # sockets, fifos: runtime only

    walk(home, "home")


# -------------------------------------------------------------------- rotation, audit


def list_archives(directory: Path) -> list[Path]:
    """Archives in ``directory``, oldest first (names sort by time)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if ARCHIVE_PATTERN.match(p.name))


def prune_archives(directory: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` archives, and leftovers of interrupted backups
    older than a day. Returns the names of the deleted archives."""
    archives = list_archives(directory)
    deleted = []
    for path in archives[: max(0, len(archives) - keep)]:
        path.unlink(missing_ok=True)
        deleted.append(path.name)
    day_ago = time.time() - 86400
    for path in directory.glob(".*"):
        if path.name.endswith(".partial") or path.name.startswith(".backup-work-"):
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < day_ago:
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink()
    return deleted


def record_backup(session: Session, actor: str, result: BackupResult, deleted: list[str]) -> None:
    """The audit entry of a backup (the caller commits)."""
    audit.record(session, actor, "backup.create", result.path.name, result.audit_details(deleted))


async def backup_job(ctx: JobContext) -> str:
    """The daily backup: one archive into ``[backup] directory``, then only the newest
    ``[backup] keep`` archives are kept."""
    settings = ctx.settings
    directory = settings.path(settings.backup.directory)
    result = await asyncio.to_thread(create_backup, settings, directory, now=ctx.now)
    deleted = await asyncio.to_thread(prune_archives, directory, settings.backup.keep)

    def audit_it() -> None:
        with ctx.sessions.begin() as session:
            record_backup(session, "job:backup", result, deleted)

    await asyncio.to_thread(audit_it)
    return (
        f"{result.path.name}: {result.size / 1048576:.1f} MiB in {result.seconds:.1f} s, "
        f"{result.counts['message_rows']} message rows, {result.counts['maildir_messages']} "
        f"Maildir messages, {result.counts['blobs']} blobs; {len(deleted)} old archive(s) deleted"
    )
