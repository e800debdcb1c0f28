"""Content-addressed blob store: original messages and attachments by SHA-256, fsynced.

Layout: ``<root>/<aa>/<sha256>``, one level of 256 directories named by the digest's
first two hex digits (as git keeps its loose objects). Stores written before December 2026
used two levels, ``<root>/<aa>/<bb>/<sha256>`` (65,536 leaf directories, so that a young
store made a directory, and fsynced one more entry, for nearly every blob): blobs found
there are read, found and removed where they are, and new blobs go to the one-level
place. Backups archive the files wherever they are, so either layout restores as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from mailsvc.store.durable import fsync_directory

_TOPS = 16**2  # "ab": the first two hex digits


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            fsync_directory(root.parent)
        # One flag per fan-out directory whose entry a put of this process has fsynced: a
        # put that finds its directory made but not flagged (made by another thread a
        # moment ago, or before a restart) fsyncs the entry itself before it returns
        # rather than trusting the other to have done so.
        self._durable = bytearray(_TOPS)

    def place_for(self, digest: str) -> Path:
        """Where a new blob of ``digest`` is written."""
        return self.root / digest[:2] / digest

    def path_for(self, digest: str) -> Path:
        """Where the blob of ``digest`` is: its place, or the earlier two-level layout's
        when it is there and not in its place (the place when it is in neither)."""
        place = self.place_for(digest)
        if place.exists():
            return place
        earlier = self.root / digest[:2] / digest[2:4] / digest
        return earlier if earlier.exists() else place

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` durably (file and directory fsynced); return its SHA-256 hex digest."""
        digest = digest or hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        flag = int(digest[:2], 16)
        if not self._durable[flag]:
            with contextlib.suppress(FileExistsError):
                target.parent.mkdir()
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
        # vanish with it after a crash (POSIX promises nothing for the parents): the
        # fan-out directory's entry is fsynced in the root once per process. After the
        # file's directory, not before: on a journalling file system (ext4, XFS) that
        # fsync has committed the mkdir too, and this one finds nothing left to write.
        if not self._durable[flag]:
            fsync_directory(self.root)
            self._durable[flag] = 1
        return digest

    def get(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()
