"""Content-addressed blob store: original messages and attachments by SHA-256, fsynced."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from mailsvc.store.durable import fsync_directory

_LEAVES = 16**4  # "ab/cd": the first four hex digits
_TOPS = 16**2  # "ab"


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            fsync_directory(root.parent)
        # One flag per fan-out directory ("ab/cd": 65,536, then "ab": 256) whose entry a
        # put of this process has fsynced: a put that finds its directory made but not
        # flagged (made by another thread a moment ago, or before a restart) fsyncs the
        # entry itself before it returns rather than trusting the other to have done so.
        self._durable = bytearray(_LEAVES + _TOPS)

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` durably (file and directory fsynced); return its SHA-256 hex digest."""
        digest = digest or hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        pending = self._make_parents(digest)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_directory(target.parent)
        # A file fsynced into a directory whose own entry was never made durable can
        # vanish with it after a crash (POSIX promises nothing for the parents): each
        # fan-out directory's entry is fsynced in its parent, deepest first. After the
        # file's directory, not before: on a journalling file system (ext4, XFS) that
        # fsync has committed the mkdirs too, and these find nothing left to write.
        for flag, directory in reversed(pending):
            fsync_directory(directory.parent)
            self._durable[flag] = 1
        return digest

    def _make_parents(self, digest: str) -> list[tuple[int, Path]]:
        """Make the two fan-out directories where missing; those whose entries are not
        known to be durable yet (made now, by another thread, or before a restart), with
        their flags."""
        top, leaf = self.root / digest[:2], self.root / digest[:2] / digest[2:4]
        pending = []
        for flag, directory in ((_LEAVES + int(digest[:2], 16), top), (int(digest[:4], 16), leaf)):
            if self._durable[flag]:
                continue
            with contextlib.suppress(FileExistsError):
                directory.mkdir()
            pending.append((flag, directory))
        return pending

    def get(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()
