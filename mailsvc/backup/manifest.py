"""The archive's table of contents: ``manifest.json``, the last member of every archive.

It lists every other member with its type, size, SHA-256, mode, owner and modification
time, plus what the backup saw (database kind, counts). Restore trusts nothing in the
archive that the manifest does not vouch for.

Archive layout (a gzip-compressed POSIX tar)::

    database/mailsvc.sqlite3 | database/mailsvc.pgdump   the snapshot
    maildirs/<domain>/<name>/Maildir/...                  paths.maildir_root
    blobs/<aa>/<sha256>                                   paths.blob_root
    blobs/<aa>/<bb>/<sha256>                              (stores from before Dec. 2026)
    home/...                                              configuration and keys
    manifest.json
    manifest.hmac                                         HMAC-SHA256 of manifest.json

The manifest sits inside the archive it describes, so on its own it proves nothing: an
attacker who rewrites a member can rewrite its line too. ``manifest.hmac`` authenticates
it with a key that never goes into a backup, ``HOME/backup.key`` (0600, made by ``init``
or the first backup). Keep a copy of that file apart from the archives: restoring on a
new machine needs it (``mailsvc restore --key FILE``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mailsvc.errors import MailsvcError

FORMAT = "mailsvc-backup"
VERSION = 1
MANIFEST_NAME = "manifest.json"
MAC_NAME = "manifest.hmac"
KEY_NAME = "backup.key"  # in HOME, never archived
PARTS = ("database", "maildirs", "blobs", "home")
SQLITE_MEMBER = "database/mailsvc.sqlite3"
PGDUMP_MEMBER = "database/mailsvc.pgdump"

EntryType = Literal["file", "dir", "symlink"]

# Names restore (and backup) give their own work next to the live files: staging
# ``.<name>.restoring``, the replaced ``.<name>.replaced``, an archive being written
# ``.<name>.partial``, a raised UID list ``dovecot-uidlist.restoring``.
WORKING_SUFFIXES = (".restoring", ".replaced", ".partial")
UIDLIST_WORK = "dovecot-uidlist.restoring"


class ArchiveError(MailsvcError):
    """The archive cannot be written, or is not one we can trust to restore."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One archive member. ``sha256`` is of the content (of the target, for a symlink)."""

    path: str
    type: EntryType
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    mtime_ns: int
    size: int = 0
    sha256: str = ""
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path,
            "type": self.type,
            "mode": f"{self.mode:04o}",
            "user": self.user,
            "group": self.group,
            "uid": self.uid,
            "gid": self.gid,
            "mtime_ns": self.mtime_ns,
        }
        if self.type != "dir":
            doc["size"] = self.size
            doc["sha256"] = self.sha256
        if self.type == "symlink":
            doc["target"] = self.target
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Entry:
        try:
            kind = doc["type"]
            if kind not in ("file", "dir", "symlink"):
                raise ValueError(f"unknown type {kind!r}")
            entry = cls(
                path=str(doc["path"]),
                type=kind,
                mode=int(doc["mode"], 8),
                uid=int(doc["uid"]),
                gid=int(doc["gid"]),
                user=str(doc["user"]),
                group=str(doc["group"]),
                mtime_ns=int(doc["mtime_ns"]),
                size=int(doc.get("size", 0)),
                sha256=str(doc.get("sha256", "")),
                target=str(doc.get("target", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"manifest entry {doc!r:.120}: {exc}") from exc
        check_member_path(entry.path)
        return entry


@dataclass
class Manifest:
    created_at: str  # ISO 8601, +07:00
    database_kind: str  # "sqlite" | "postgresql"
    details: dict[str, Any] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    read_sha256: str = ""  # of the bytes it was read from

    def to_bytes(self) -> bytes:
        head = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "database": self.database_kind,
            **self.details,
        }
        # One entry per line: readable with grep, diffable between two backups.
        lines = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
        body = ",\n".join(
            json.dumps(e.to_json(), ensure_ascii=False, separators=(",", ":")) for e in self.entries
        )
        return f'{lines},\n "entries": [\n{body}\n]\n}}\n'.encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArchiveError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ArchiveError(f"{MANIFEST_NAME}: not a {FORMAT} manifest")
        if doc.get("version") != VERSION:
            raise ArchiveError(
                f"{MANIFEST_NAME}: version {doc.get('version')!r}; this mailsvc reads {VERSION}"
            )
        if doc.get("database") not in ("sqlite", "postgresql"):
            raise ArchiveError(f"{MANIFEST_NAME}: unknown database kind {doc.get('database')!r}")
        entries = doc.pop("entries", None)
        if not isinstance(entries, list):
            raise ArchiveError(f"{MANIFEST_NAME}: no entry list")
        created = str(doc.pop("created_at", ""))
        kind = str(doc.pop("database"))
        for key in ("format", "version"):
            doc.pop(key, None)
        entries_read = [Entry.from_json(e) for e in entries]
        return cls(created, kind, doc, entries_read, hashlib.sha256(data).hexdigest())

    @property
    def sha256(self) -> str:
        return self.read_sha256 or hashlib.sha256(self.to_bytes()).hexdigest()


def check_member_path(path: str) -> None:
    """Refuse anything that could land outside its part: absolute paths, ``..``, odd parts."""
    pure = PurePosixPath(path)
    if (
        not path
        or pure.is_absolute()
        or path != str(pure)
        or not pure.parts  # "." (tar's own directory entry: `tar czf x.tar.gz .`)
        or any(p in ("", ".", "..") for p in pure.parts)
        or (pure.parts[0] not in PARTS and path not in (MANIFEST_NAME, MAC_NAME))
    ):
        raise ArchiveError(f"archive member {path!r}: not a path this archive format uses")
    if UIDLIST_WORK in pure.parts or (
        pure.parts[0] in ("home", "blobs")
        and any(p.startswith(".") and p.endswith(WORKING_SUFFIXES) for p in pure.parts)
    ):
        raise ArchiveError(f"archive member {path!r}: a name restore uses for its own work")


def symlink_stays_inside(member: str, target: str) -> bool:
    """Whether a symlink at ``member`` pointing at ``target`` resolves inside the member's
    own part (``home/``, ``maildirs/`` ...): relative, and never climbing out of it."""
    if not target or PurePosixPath(target).is_absolute():
        return False
    parts = list(PurePosixPath(member).parts[:-1])
    part_depth = 1
    for piece in PurePosixPath(target).parts:
        if piece == "..":
            if len(parts) <= part_depth:
                return False
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return len(parts) > part_depth


# ------------------------------------------------------------------ authentication


def ensure_backup_key(home: Path) -> Path:
    """HOME/backup.key, created (32 random bytes, hex, mode 0600) when missing."""
    path = home / KEY_NAME
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return path


def read_backup_key(path: Path) -> bytes:
    """The key in a backup.key file; ArchiveError when it is missing or not one."""
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except FileNotFoundError as exc:
        raise ArchiveError(
            f"no backup key at {path}: give --key FILE, the {KEY_NAME} of the home that "
            "made the archive"
        ) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError(f"{path} is not a mailsvc backup key: {exc}") from exc
    if len(key) < 16:
        raise ArchiveError(f"{path} is not a mailsvc backup key (too short)")
    return key


def manifest_mac(key: bytes, manifest: bytes) -> bytes:
    """The content of ``manifest.hmac``: HMAC-SHA256 of the manifest's bytes, hex."""
    return hmac.new(key, manifest, hashlib.sha256).hexdigest().encode() + b"\n"


def check_manifest_mac(key: bytes, manifest: bytes, mac: bytes | None) -> None:
    """Raise ArchiveError unless ``mac`` authenticates ``manifest`` under ``key``."""
    if mac is None:
        raise ArchiveError(
            f"the archive has no {MAC_NAME}: its manifest is not authenticated (made by an "
            "older mailsvc, or altered); it cannot be trusted"
        )
    if not hmac.compare_digest(mac.strip(), manifest_mac(key, manifest).strip()):
        raise ArchiveError(
            f"{MANIFEST_NAME} is not authenticated by the backup key (altered, or made by "
            "another home: give its key with --key FILE)"
        )
