"""Content-addressed blob store: original messages and attachments by SHA-256, fsynced."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from mailsvc.store.durable import fsync_directory


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            fsync_directory(root.parent)

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` durably (file and directory fsynced); return its SHA-256 hex digest."""
        digest = digest or hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        created = self._make_parents(target.parent)
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
        # vanish with it after a crash (POSIX promises nothing for the parents): each new
        # fan-out directory's entry is fsynced in its parent, deepest first. After the
        # file's directory, not before: on a journalling file system (ext4, XFS) that
        # fsync has committed the mkdirs too, and these find nothing left to write.
        for directory in reversed(created):
            fsync_directory(directory.parent)
        return digest

    def _make_parents(self, directory: Path) -> list[Path]:
        """Create the two fan-out directories where missing; the ones this call made."""
        if directory.is_dir():
            return []
        created = []
        for level in (directory.parent, directory):
            try:
                level.mkdir()
            except FileExistsError:
                continue
            created.append(level)
        return created

    def get(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()
