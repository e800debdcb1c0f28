"""``mailsvc restore``: verify an archive completely, then put the home back as it was.

1. Refuse while the home is in use: ``mailsvc serve`` holds ``HOME/mailsvc.pid``
   (pidfile.py); a managed Dovecot left running, or anything answering on a configured
   listener port, also refuses. The restore then holds the pid file itself.
2. Read the archive twice. The manifest comes last, then its HMAC: the first pass reads
   only those two and checks the HMAC with the backup key (manifest.py), writing nothing.
   The second pass writes every member into staging directories next to their targets
   (same file system, so the swap is a rename), hashing it on the way; a member is
   written only when the authenticated manifest lists it with the same type and size
   (sparse members are refused in both passes). Every member must match its entry (type,
   size, SHA-256), every entry must have its member, no symlink may leave its part (by its
   text, nor resolved through other staged links), and
   the database kind must be the configured one. Any difference refuses the archive with
   the member named, and the staging is removed: nothing live was touched.
3. Owners (by name, so the mail user ``vmail`` maps to this host's uid), modes (permission
   bits only: never setuid/setgid) and modification times are set on the staged files; one
   ``sync``. What the archived config would make mailsvc run (``executed_changes``) is
   returned for the CLI to show; it applies such a change only with ``--accept-commands``.
4. Swap, all or nothing: the SQLite database (file replaced, stale ``-wal``/``-shm``
   moved aside), the blob store, the Maildir root and each top-level entry of the
   archived home (configuration, keys, policies) are renamed in, each old one kept as
   ``.NAME.replaced``; then PostgreSQL (``pg_restore --clean --if-exists``, built before
   any swap, fed to ``psql --single-transaction``, tables the archive does not have
   dropped first). Only then are the old ones removed; a failure renames them back.
   Member names that are restore's own working names (``.restoring``, ``.replaced``,
   ``.partial``) are refused when the archive is read.

Rows the archive holds as ``stored`` are delivered again when serve starts (repair).
"""

from __future__ import annotations

import contextlib
import grp
import gzip
import hashlib
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tarfile
import tomllib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailsvc import audit
from mailsvc.backup.archive import home_exclusions
from mailsvc.backup.manifest import (
    KEY_NAME,
    MAC_NAME,
    MANIFEST_NAME,
    PGDUMP_MEMBER,
    SQLITE_MEMBER,
    ArchiveError,
    Entry,
    Manifest,
    check_manifest_mac,
    check_member_path,
    read_backup_key,
    symlink_stays_inside,
)
from mailsvc.backup.snapshot import database_kind, libpq_target, run_tool, sqlite_path
from mailsvc.config import CONFIG_NAME, Settings, restore_guarded
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.errors import ConflictError
from mailsvc.mailboxes.dovecot import parse_hostport
from mailsvc.pidfile import PID_FILE, PidFile, holder
from mailsvc.runtime import runtime_dir
from mailsvc.store.durable import fsync_directory

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
UIDLIST = "dovecot-uidlist"
MAX_MANIFEST = 1 << 30
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http")
SAFE_MODE = 0o777  # permission bits only: never setuid, setgid or sticky from an archive


# ------------------------------------------------------------------ is anyone serving?


def ensure_stopped(settings: Settings) -> None:
    """Raise ConflictError when this home is being served (or restored)."""
    home = settings.home
    owner = holder(home)
    if owner:
        raise ConflictError(f"{owner} is using {home}; stop it first (lock {home / PID_FILE})")
    pid = _dovecot_pid(home)
    if pid:
        raise ConflictError(
            f"Dovecot of {home} is still running (pid {pid}); stop `mailsvc serve` first"
        )
    for name in LISTENERS:
        host, port = parse_hostport(getattr(settings.listen, name))
        if port == 0:
            continue
        if _answers("127.0.0.1" if host in ("", "0.0.0.0", "*") else host, port):
            raise ConflictError(
                f"something answers on listen.{name} ({host}:{port}); stop `mailsvc serve` "
                "(and a system Dovecot) first"
            )


def _dovecot_pid(home: Path) -> int | None:
    try:
        pid = int((runtime_dir(home) / "dovecot" / "master.pid").read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm.startswith("dovecot") else None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=0.3):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------- reading, staging


class _Hashing:
    """Wraps the raw archive file: the SHA-256 of the whole archive, read once; each
    chunk's size goes to ``advance`` (a progress bar)."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None] | None = None) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        if self.advance is not None and data:
            self.advance(len(data))
        return data

    def readable(self) -> bool:
        return True


@dataclass(frozen=True)
class _Seen:
    type: str
    size: int
    sha256: str
    target: str = ""


@dataclass
class _Staging:
    """Where each part of the archive is written before the swap."""

    settings: Settings
    kind: str  # the configured database kind
    roots: dict[str, Path] = field(default_factory=dict)  # part -> staging root
    live: dict[str, Path] = field(default_factory=dict)  # part -> live path

    @classmethod
    def plan(cls, settings: Settings) -> _Staging:
        s = settings
        kind = database_kind(s.database_url)
        staging = cls(s, kind)
        staging.live = {
            "maildirs": s.path(s.paths.maildir_root),
            "blobs": s.path(s.paths.blob_root),
            "home": s.home,
        }
        for part, live in staging.live.items():
            name = ".home.restoring" if part == "home" else f".{live.name}.restoring"
            staging.roots[part] = live.with_name(name) if part != "home" else s.home / name
        if kind == "sqlite":
            db = sqlite_path(s.database_url)
            staging.live["database"] = db
            staging.roots["database"] = db.with_name(f".{db.name}.restoring")
        else:
            staging.roots["database"] = s.home / ".database.restoring"
        return staging

    def clear(self) -> None:
        for root in self.roots.values():
            if root.is_dir() and not root.is_symlink():
                shutil.rmtree(root, ignore_errors=True)
            else:
                root.unlink(missing_ok=True)

    def target(self, member: str) -> Path | None:
        """The staging path of a member (None: written nowhere, e.g. a foreign database)."""
        parts = PurePosixPath(member).parts
        part, rest = parts[0], parts[1:]
        if part == "database":
            if self.kind == "sqlite":
                return self.roots["database"] if member == SQLITE_MEMBER else None
            return self.roots["database"] / "mailsvc.pgdump" if member == PGDUMP_MEMBER else None
        root = self.roots[part]
        return root.joinpath(*rest)

    def root_for(self, member: str) -> Path:
        return self.roots[PurePosixPath(member).parts[0]]


def _safe_parent(root: Path, path: Path) -> None:
    """Create the parents of ``path`` below ``root``; refuse a symlink on the way."""
    current = root.parent
    for part in path.relative_to(root.parent).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ArchiveError(f"archive member under {current}: path goes through a symlink")
        if not current.exists():
            current.mkdir(mode=0o700)


def _copy_member(source: IO[bytes], dest: Path | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    out = None
    if dest is not None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        out = os.fdopen(fd, "wb")
    try:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return size, digest.hexdigest()


def _check_header(info: tarfile.TarInfo) -> None:
    """Refuse what no mailsvc archive holds before anything reads its data: a sparse
    member unpacks to far more than the archive stores."""
    if info.issparse():
        raise ArchiveError(f"archive member {info.name}: a sparse file (not made by mailsvc)")


def _read_manifest(archive: Path, key: bytes) -> Manifest:
    """A first pass over the archive that writes nothing: only ``manifest.json`` and
    ``manifest.hmac`` are read, and the manifest is authenticated with ``key``."""
    manifest_bytes: bytes | None = None
    mac: bytes | None = None
    try:
        raw = open(archive, "rb")
    except OSError as exc:
        raise ArchiveError(f"cannot read {archive}: {exc.strerror}") from exc
    try:
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                check_member_path(info.name)
                _check_header(info)
                if info.name == MANIFEST_NAME:
                    if manifest_bytes is not None:
                        raise ArchiveError(f"archive member {MANIFEST_NAME}: appears twice")
                    if not info.isreg() or info.size > MAX_MANIFEST:
                        raise ArchiveError(f"{MANIFEST_NAME}: not a plain file of sane size")
                    handle = tar.extractfile(info)
                    assert handle is not None
                    manifest_bytes = handle.read()
                elif info.name == MAC_NAME:
                    if mac is not None or not info.isreg() or info.size > 256:
                        raise ArchiveError(f"{MAC_NAME}: not one small plain file")
                    handle = tar.extractfile(info)
                    assert handle is not None
                    mac = handle.read()
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as exc:
        raise _damaged(archive, exc) from exc
    finally:
        raw.close()
    return _authenticated(archive, manifest_bytes, mac, key)


def _damaged(archive: Path, exc: BaseException) -> ArchiveError:
    return ArchiveError(f"{archive} is damaged or truncated ({exc or type(exc).__name__})")


def _authenticated(
    archive: Path, manifest_bytes: bytes | None, mac: bytes | None, key: bytes
) -> Manifest:
    """The manifest, once its HMAC under ``key`` is checked."""
    if manifest_bytes is None:
        raise ArchiveError(f"{archive} has no {MANIFEST_NAME} (truncated, or not a mailsvc backup)")
    check_manifest_mac(key, manifest_bytes, mac)
    return Manifest.from_bytes(manifest_bytes)


def _check_listed(info: tarfile.TarInfo, listed: dict[str, Entry]) -> None:
    """Before a member's data is written: the authenticated manifest lists it with the
    same type and (for a file) size, so no member writes more than its entry states."""
    entry = listed.get(info.name)
    kind = "dir" if info.isdir() else "file" if info.isreg() else "symlink"
    if entry is None:
        raise ArchiveError(f"{info.name}: in the archive but not in the manifest")
    if entry.type != kind:
        raise ArchiveError(f"{info.name}: a {kind} in the archive, a {entry.type} in the manifest")
    if kind == "file" and info.size != entry.size:
        raise ArchiveError(
            f"{info.name}: size {info.size} bytes does not match the manifest's {entry.size} bytes"
        )


def _read_archive(
    archive: Path,
    staging: _Staging | None,
    key: bytes,
    progress: Callable[[int], None] | None = None,
    expected: Manifest | None = None,
) -> tuple[Manifest, dict[str, _Seen], str]:
    """One pass over the archive: members hashed (and written into ``staging``), the
    manifest authenticated with ``key`` and parsed. With ``staging``, ``expected`` is the
    manifest ``_read_manifest`` authenticated: a member it does not list with that type
    and size is refused before its data is written. Returns (manifest, what was seen,
    SHA-256 of the archive)."""
    if staging is not None and expected is None:
        raise ValueError("staging needs the authenticated manifest")
    listed = {e.path: e for e in expected.entries} if expected is not None else {}
    seen: dict[str, _Seen] = {}
    manifest_bytes: bytes | None = None
    mac: bytes | None = None
    try:
        raw = open(archive, "rb")
    except OSError as exc:
        raise ArchiveError(f"cannot read {archive}: {exc.strerror}") from exc
    try:
        hashing = _Hashing(raw, progress)
        gz = gzip.GzipFile(fileobj=cast(IO[bytes], hashing), mode="rb")
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                name = info.name
                check_member_path(name)
                _check_header(info)
                if name in seen or (name == MANIFEST_NAME and manifest_bytes is not None):
                    raise ArchiveError(f"archive member {name}: appears twice")
                if name == MANIFEST_NAME:
                    if not info.isreg() or info.size > MAX_MANIFEST:
                        raise ArchiveError(f"{MANIFEST_NAME}: not a plain file of sane size")
                    handle = tar.extractfile(info)
                    assert handle is not None
                    manifest_bytes = handle.read()
                    continue
                if name == MAC_NAME:
                    if mac is not None or not info.isreg() or info.size > 256:
                        raise ArchiveError(f"{MAC_NAME}: not one small plain file")
                    handle = tar.extractfile(info)
                    assert handle is not None
                    mac = handle.read()
                    continue
                if expected is not None and (info.isdir() or info.isreg() or info.issym()):
                    _check_listed(info, listed)
                dest = staging.target(name) if staging else None
                if dest is not None and staging is not None:
                    _safe_parent(staging.root_for(name), dest)
                if info.isdir():
                    if dest is not None:
                        dest.mkdir(mode=0o700, exist_ok=True)
                    seen[name] = _Seen("dir", 0, "")
                elif info.isreg():
                    handle = tar.extractfile(info)
                    assert handle is not None
                    size, sha = _copy_member(handle, dest)
                    seen[name] = _Seen("file", size, sha)
                elif info.issym():
                    if not symlink_stays_inside(name, info.linkname):
                        raise ArchiveError(
                            f"archive member {name}: a symlink to {info.linkname!r} leaves "
                            "its part of the archive"
                        )
                    if dest is not None:
                        os.symlink(info.linkname, dest)
                    data = info.linkname.encode()
                    seen[name] = _Seen(
                        "symlink", len(data), hashlib.sha256(data).hexdigest(), info.linkname
                    )
                else:
                    raise ArchiveError(f"archive member {name}: unsupported type (device, fifo)")
        while gz.read(CHUNK):  # the rest of the stream: gzip's own CRC is checked at the end
            pass
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as exc:
        raise _damaged(archive, exc) from exc
    finally:
        raw.close()
    manifest = _authenticated(archive, manifest_bytes, mac, key)
    if expected is not None and manifest.sha256 != expected.sha256:
        raise ArchiveError(f"{archive} changed while it was read")
    return manifest, seen, hashing.digest.hexdigest()


def _links_leaving(staging: _Staging) -> list[str]:
    """Staged symlinks that resolve outside their part's staging root. Each link's own
    text stays inside (``symlink_stays_inside``), but a chain can leave: ``d/s2 ->
    ../../../../a`` then ``d/etc -> s2/../../../../../etc`` is ``/etc``."""
    problems = []
    for part in ("home", "maildirs", "blobs"):
        root = staging.roots[part]
        if not root.is_dir() or root.is_symlink():
            continue
        real_root = Path(os.path.realpath(root))
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if not path.is_symlink():
                    continue
                resolved = Path(os.path.realpath(path))
                if resolved != real_root and real_root not in resolved.parents:
                    member = "/".join((part, *path.relative_to(root).parts))
                    problems.append(
                        f"{member}: a symlink resolving outside its part ({os.readlink(path)!r})"
                    )
    return problems


def _compare(manifest: Manifest, seen: dict[str, _Seen]) -> list[str]:
    problems = []
    listed = {e.path: e for e in manifest.entries}
    for path, got in seen.items():
        entry = listed.get(path)
        if entry is None:
            problems.append(f"{path}: in the archive but not in the manifest")
        elif entry.type != got.type:
            problems.append(f"{path}: a {got.type} in the archive, a {entry.type} in the manifest")
        elif entry.type != "dir" and (entry.size, entry.sha256) != (got.size, got.sha256):
            problems.append(
                f"{path}: SHA-256 {got.sha256[:16]}… ({got.size} bytes) does not match the "
                f"manifest's {entry.sha256[:16]}… ({entry.size} bytes)"
            )
    problems += [f"{p}: listed in the manifest but missing" for p in listed if p not in seen]
    return problems


def backup_key(settings: Settings, key_file: Path | None = None) -> bytes:
    """The key that authenticates archives: ``key_file``, or this home's backup.key."""
    return read_backup_key(key_file or settings.home / KEY_NAME)


def verify_archive(
    archive: Path, key: bytes, progress: Callable[[int], None] | None = None
) -> tuple[Manifest, str]:
    """Authenticate the manifest and check every member against it; writes nothing."""
    manifest, seen, sha = _read_archive(archive, None, key, progress)
    problems = _compare(manifest, seen)
    if problems:
        raise ArchiveError(_refusal(archive, problems))
    return manifest, sha


def _refusal(archive: Path, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"archive {archive.name} refused: {problems[0]}{more}; nothing was changed"


# ---------------------------------------------------------------------------- apply


def _owner(entry: Entry) -> tuple[int, int]:
    uid, gid = entry.uid, entry.gid
    with contextlib.suppress(KeyError):
        if entry.user:
            uid = pwd.getpwnam(entry.user).pw_uid
    with contextlib.suppress(KeyError):
        if entry.group:
            gid = grp.getgrnam(entry.group).gr_gid
    return uid, gid


def _set_meta(path: Path, entry: Entry, as_root: bool) -> None:
    if as_root:
        os.chown(path, *_owner(entry), follow_symlinks=False)
    if entry.type != "symlink":
        os.chmod(path, entry.mode & SAFE_MODE)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


class _Swaps:
    """Renames with a way back: a live path is moved aside to ``.NAME.replaced`` and the
    staged one put in its place; ``undo`` puts the old ones back, ``commit`` removes them."""

    def __init__(self) -> None:
        self.done: list[tuple[Path | None, Path, Path | None]] = []  # (staged, live, old)

    def aside(self, live: Path) -> None:
        """Move ``live`` (when present) out of the way without a replacement."""
        if live.exists() or live.is_symlink():
            old = self._old(live)
            os.rename(live, old)
            self.done.append((None, live, old))

    def swap(self, staged: Path, live: Path) -> None:
        old = None
        if live.exists() or live.is_symlink():
            old = self._old(live)
            os.rename(live, old)
        try:
            os.rename(staged, live)
        except OSError:
            if old is not None:
                os.rename(old, live)
            raise
        self.done.append((staged, live, old))

    def undo(self) -> None:
        for staged, live, old in reversed(self.done):
            try:
                if staged is not None:
                    os.rename(live, staged)  # back into the staging, removed with it
                if old is not None:
                    os.rename(old, live)
            except OSError as exc:
                log.error("restore: could not put %s back from %s: %s", live, old, exc)
        self.done = []

    def commit(self) -> None:
        parents = set()
        for _staged, live, old in self.done:
            if old is not None:
                _remove(old)
            parents.add(live.parent)
        for parent in parents:
            fsync_directory(parent)
        self.done = []

    @staticmethod
    def _old(live: Path) -> Path:
        old = live.with_name(f".{live.name}.replaced")
        if old.exists() or old.is_symlink():
            _remove(old)  # left by an interrupted restore
        return old


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@dataclass
class RestoreSummary:
    archive: Path
    sha256: str
    manifest_sha256: str
    created_at: str
    database_kind: str
    database_target: str
    counts: dict[str, int]
    replaced: list[str]
    home_restored: list[str]
    home_skipped: list[str]
    tables_dropped: list[str]
    uid_counters_kept: int = 0

    def audit_details(self) -> dict[str, Any]:
        return {
            "path": str(self.archive),
            "sha256": self.sha256,
            "manifest_sha256": self.manifest_sha256,
            "created_at": self.created_at,
            "database": self.database_kind,
            **self.counts,
            "home_restored": self.home_restored,
            "tables_dropped": self.tables_dropped,
            "uid_counters_kept": self.uid_counters_kept,
        }


@dataclass
class PreparedRestore:
    """A verified archive, staged next to its targets; ``apply`` swaps it in."""

    settings: Settings
    archive: Path
    sha256: str
    manifest: Manifest
    staging: _Staging
    lock: PidFile
    executed: list[ExecutedChange] = field(default_factory=list)

    def discard(self) -> None:
        self.staging.clear()
        self.lock.release(remove=True)

    def apply(self) -> RestoreSummary:
        try:
            return self._apply()
        finally:
            self.staging.clear()
            self.lock.release(remove=True)

    def _apply(self) -> RestoreSummary:
        """Everything that can fail without touching the live home runs first (the
        PostgreSQL script is built, the swaps are planned and checked); then every swap
        keeps the old file aside, PostgreSQL is restored in one transaction, and only
        then are the old files removed. A failure puts every old file back."""
        s, staging = self.settings, self.staging
        replaced: list[str] = []
        dropped: list[str] = []
        psql: list[str] | None = None
        if staging.kind == "sqlite":
            target = str(staging.live["database"])
        else:
            target = libpq_target(s.database_url)[0]
            psql, dropped = self._postgresql_script(staging.roots["database"] / "mailsvc.pgdump")
        replaced.append(f"database {target}")
        uid_counters = 0
        if staging.roots["maildirs"].is_dir():
            uid_counters = keep_uid_counters(staging.roots["maildirs"], staging.live["maildirs"])
        plan: list[tuple[Path, Path]] = []
        for part in ("blobs", "maildirs"):
            if staging.roots[part].is_dir():
                plan.append((staging.roots[part], staging.live[part]))
                replaced.append(f"{part} {staging.live[part]}")
        restored, skipped = [], []
        keep_out = home_exclusions(s) | {s.home / PID_FILE} | set(staging.roots.values())
        home_stage = staging.roots["home"]
        if home_stage.is_dir():
            for entry in sorted(home_stage.iterdir()):
                live = s.home / entry.name
                if live in keep_out or live.resolve() in keep_out:
                    skipped.append(entry.name)
                    continue
                plan.append((entry, live))
                restored.append(entry.name + ("/" if entry.is_dir() else ""))
        for _staged, live in plan:
            if not os.access(live.parent, os.W_OK | os.X_OK):
                raise ArchiveError(f"cannot replace {live}: its directory is not writable")
        swaps = _Swaps()
        try:
            if staging.kind == "sqlite":
                self._swap_sqlite(staging.roots["database"], staging.live["database"], swaps)
            for staged, live in plan:
                swaps.swap(staged, live)
            if psql is not None:
                env = libpq_target(s.database_url)[1]
                run_tool(psql, env, "restoring the PostgreSQL database (psql)")
        except BaseException as exc:
            swaps.undo()
            if isinstance(exc, (OSError, ArchiveError)):
                raise ArchiveError(
                    f"restore of {self.archive.name} failed: {exc}; the home was put back as it was"
                ) from exc
            raise
        swaps.commit()
        counts = {k: int(v) for k, v in dict(self.manifest.details.get("counts", {})).items()}
        return RestoreSummary(
            archive=self.archive,
            sha256=self.sha256,
            manifest_sha256=self.manifest.sha256,
            created_at=self.manifest.created_at,
            database_kind=staging.kind,
            database_target=target,
            counts=counts,
            replaced=replaced,
            home_restored=restored,
            home_skipped=skipped,
            tables_dropped=dropped,
            uid_counters_kept=uid_counters,
        )

    def _swap_sqlite(self, staged: Path, live: Path, swaps: _Swaps) -> None:
        if live.exists():
            st = live.stat()
            if os.geteuid() == 0:
                os.chown(staged, st.st_uid, st.st_gid)
            os.chmod(staged, stat.S_IMODE(st.st_mode))
        # The old database's write-ahead log must not be applied to the new file.
        for suffix in ("-wal", "-shm", "-journal"):
            swaps.aside(live.with_name(live.name + suffix))
        swaps.swap(staged, live)

    def _postgresql_script(self, dump: Path) -> tuple[list[str], list[str]]:
        """The psql command that restores ``dump`` in one transaction (tables the archive
        does not have dropped first), and those tables; changes nothing yet."""
        url = self.settings.database_url
        target, env = libpq_target(url)
        wanted = _archived_tables(dump, env)
        extras = _current_tables(url) - wanted
        work = dump.parent
        prelude = work / "prelude.sql"
        prelude.write_text(
            "".join(
                f'DROP {kind} IF EXISTS "{schema}"."{name}" CASCADE;\n'
                for schema, name, kind in sorted(extras)
            ),
            encoding="utf-8",
        )
        script = work / "restore.sql"
        run_tool(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                f"--file={script}",
                str(dump),
            ],
            env,
            "pg_restore",
        )
        psql = [
            "psql",
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            f"--dbname={target}",
            f"--file={prelude}",
            f"--file={script}",
        ]
        return psql, [f"{schema}.{name}" for schema, name, _ in sorted(extras)]


def keep_uid_counters(staged: Path, live: Path) -> int:
    """IMAP never reuses a UID: where a live folder already handed out UIDs beyond the
    archived ``dovecot-uidlist`` (mail that arrived after the backup), raise the
    archived next-UID to the live one (same UIDVALIDITY only). The archived messages
    keep their UIDs; mail delivered after the restore gets UIDs no client has seen.
    Returns how many folders were raised."""
    raised = 0
    for dirpath, _dirs, files in os.walk(staged):
        if UIDLIST not in files:
            continue
        path = Path(dirpath) / UIDLIST
        try:
            theirs = _uidlist_state((live / path.relative_to(staged)).read_bytes())
        except OSError:
            continue
        data = path.read_bytes()
        ours = _uidlist_state(data)
        if ours is None or theirs is None or ours[0] != theirs[0] or theirs[1] <= ours[1]:
            continue
        head, sep, rest = data.partition(b"\n")
        tokens = [t for t in head.split(b" ") if not t.startswith(b"N")]
        tokens.insert(2, b"N%d" % theirs[1])
        st = path.stat()
        tmp = path.with_name(UIDLIST + ".restoring")
        tmp.write_bytes(b" ".join(tokens) + sep + rest)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
        raised += 1
    return raised


def _uidlist_state(data: bytes) -> tuple[bytes, int] | None:
    """(UIDVALIDITY, next UID) of a version-3 ``dovecot-uidlist``: the header's ``N``, or
    one past the highest UID listed (Dovecot appends lines without rewriting the header)."""
    head, _, rest = data.partition(b"\n")
    tokens = head.strip().split(b" ")
    if not tokens or tokens[0] != b"3":
        return None
    fields = {t[:1]: t[1:] for t in tokens[1:] if t}
    if not fields.get(b"V", b"").isdigit():
        return None
    next_uid = int(fields[b"N"]) if fields.get(b"N", b"").isdigit() else 1
    for line in rest.split(b"\n"):
        uid = line.split(b" ", 1)[0]
        if uid.isdigit():
            next_uid = max(next_uid, int(uid) + 1)
    return fields[b"V"], next_uid


def _archived_tables(dump: Path, env: dict[str, str]) -> set[tuple[str, str, str]]:
    proc = subprocess.run(
        ["pg_restore", "--list", str(dump)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ArchiveError(f"pg_restore --list failed: {proc.stderr.strip()[-200:]}")
    found = set()
    for line in proc.stdout.splitlines():
        if line.startswith(";") or "; " not in line:
            continue
        fields = line.split("; ", 1)[1].split()
        # "<catalog oid> <object oid> TABLE <schema> <name> <owner>"
        if len(fields) >= 5 and fields[2] in ("TABLE", "VIEW") and fields[3] != "DATA":
            found.add((fields[3], fields[4], fields[2]))
    return found


def _current_tables(url: str) -> set[tuple[str, str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_schema, table_name, table_type FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).all()
    except SQLAlchemyError as exc:
        raise ArchiveError(f"cannot read the configured PostgreSQL database: {exc}") from exc
    finally:
        engine.dispose()
    return {(s, n, "VIEW" if t == "VIEW" else "TABLE") for s, n, t in rows}


@dataclass(frozen=True)
class ExecutedChange:
    """A setting whose value mailsvc executes, loads or writes to (config.RESTORE_GUARD),
    as the restored config would change it; ``kind`` is "runs" or "writes"."""

    key: str
    live: str
    restored: str
    kind: str = "runs"


def executed_changes(settings: Settings, staged_home: Path) -> list[ExecutedChange]:
    """What the archived ``mailsvc.toml`` would make mailsvc run or load, and where it
    would make it write, where it differs from the live configuration (a restored config
    could carry ``alerts.command`` or a ``clamav.freshclam_binary`` shipped in the
    archive). The settings are those config.py marks with RESTORE_GUARD."""
    path = staged_home / CONFIG_NAME
    if not path.is_file():
        return []  # the live configuration stays
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ArchiveError(f"the archived {CONFIG_NAME} cannot be read: {exc}") from exc
    changes = []
    for (section, key), kind in sorted(restore_guarded().items()):
        live = str(getattr(getattr(settings, section), key))
        block = data.get(section, {})
        default = type(getattr(settings, section)).model_fields[key].default
        restored = str(block.get(key, default) if isinstance(block, dict) else default)
        if restored != live:
            changes.append(ExecutedChange(f"{section}.{key}", live, restored, kind))
    return changes


def prepare_restore(
    settings: Settings,
    archive: Path,
    key_file: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> PreparedRestore:
    """Refuse while serving, take the home, authenticate, verify and stage the whole
    archive. Raises ConflictError or ArchiveError; then nothing live has changed."""
    key = backup_key(settings, key_file)
    ensure_stopped(settings)
    lock = PidFile.acquire(settings.home, "restore")
    staging = _Staging.plan(settings)
    try:
        authenticated = _read_manifest(archive, key)  # writes nothing
        if authenticated.database_kind != staging.kind:
            raise ArchiveError(
                f"it holds a {authenticated.database_kind} database but database.url is "
                f"{staging.kind} (set database.url first)"
            )
        staging.clear()  # leftovers of an interrupted restore
        manifest, seen, sha = _read_archive(archive, staging, key, progress, authenticated)
        problems = _compare(manifest, seen) or _links_leaving(staging)
        if problems:
            raise ArchiveError(_refusal(archive, problems))
        _apply_metadata(manifest, staging)
        changes = executed_changes(settings, staging.roots["home"])
        os.sync()
    except OSError as exc:
        staging.clear()
        lock.release(remove=True)
        raise ArchiveError(f"staging the archive failed: {exc}; nothing was changed") from exc
    except ArchiveError as exc:
        staging.clear()
        lock.release(remove=True)
        if "nothing was changed" in str(exc):
            raise
        raise ArchiveError(_refusal(archive, [str(exc)])) from exc
    except BaseException:
        staging.clear()
        lock.release(remove=True)
        raise
    return PreparedRestore(settings, archive, sha, manifest, staging, lock, changes)


def _apply_metadata(manifest: Manifest, staging: _Staging) -> None:
    as_root = os.geteuid() == 0
    dirs: list[tuple[Path, Entry]] = []
    for entry in manifest.entries:
        if entry.path == "home" or entry.path.startswith("database/"):
            continue  # HOME itself stays; the database gets the live file's owner
        path = staging.target(entry.path)
        if path is None:
            continue
        if entry.type == "dir":
            dirs.append((path, entry))
        else:
            _set_meta(path, entry, as_root)
    # Directories last, deepest first: writing into them changed their times.
    for path, entry in sorted(dirs, key=lambda d: len(d[0].parts), reverse=True):
        _set_meta(path, entry, as_root)
    db_entry = next((e for e in manifest.entries if e.path.startswith("database/")), None)
    db_path = staging.target(db_entry.path) if db_entry else None
    if db_entry is not None and db_path is not None and db_path.exists():
        _set_meta(db_path, db_entry, as_root)


# ---------------------------------------------------------------------------- audit


def record_restore(settings: Settings, actor: str, summary: RestoreSummary) -> str | None:
    """Append the restore to the restored database's audit log; returns a warning or None."""
    return _record(settings, actor, "backup.restore", summary.archive.name, summary.audit_details())


def record_refusal(settings: Settings, actor: str, archive: Path, reason: str) -> None:
    warning = _record(settings, actor, "backup.restore-refused", archive.name, {"reason": reason})
    if warning:
        log.warning("%s", warning)


def _record(
    settings: Settings, actor: str, action: str, target: str, details: dict[str, Any]
) -> str | None:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            audit.record(session, actor, action, target, details)
    except SQLAlchemyError as exc:
        return f"could not write {action} to the audit log: {type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    return None


@contextlib.contextmanager
def restoring(
    settings: Settings,
    archive: Path,
    key_file: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[PreparedRestore]:
    """``prepare_restore`` whose staging is discarded unless ``apply`` ran."""
    prepared = prepare_restore(settings, archive, key_file, progress)
    try:
        yield prepared
    finally:
        prepared.discard()
