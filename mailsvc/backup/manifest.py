"""The archive's table of contents: ``manifest.json``, the last member of every archive.

It lists every other member with its type, size, SHA-256, mode, owner and modification
time, plus what the backup saw (database kind, counts). Restore trusts nothing in the
archive that the manifest does not vouch for.

Archive layout (a gzip-compressed POSIX tar)::

    database/mailsvc.sqlite3 | database/mailsvc.pgdump   the snapshot
    maildirs/<domain>/<name>/Maildir/...                  paths.maildir_root
    blobs/<aa>/<bb>/<sha256>                              paths.blob_root
    home/...                                              configuration and keys
    manifest.json
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from mailsvc.errors import MailsvcError

FORMAT = "mailsvc-backup"
VERSION = 1
MANIFEST_NAME = "manifest.json"
PARTS = ("database", "maildirs", "blobs", "home")
SQLITE_MEMBER = "database/mailsvc.sqlite3"
PGDUMP_MEMBER = "database/mailsvc.pgdump"

EntryType = Literal["file", "dir", "symlink"]


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
        or any(p in ("", ".", "..") for p in pure.parts)
        or (pure.parts[0] not in PARTS and path != MANIFEST_NAME)
    ):
        raise ArchiveError(f"archive member {path!r}: not a path this archive format uses")
