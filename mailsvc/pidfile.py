"""``HOME/mailsvc.pid``: who owns a home directory right now (``mailsvc serve`` or a restore).

The owner holds an exclusive ``flock`` on the file for as long as it runs and writes its
pid and purpose into it. The kernel drops the lock when the process ends, however it
ends, so a stale file never blocks anyone. ``flock`` locks belong to one open file, so a
second holder is refused even inside the same process (tests run the server in-process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from mailsvc.errors import ConflictError

PID_FILE = "mailsvc.pid"


class PidFile:
    def __init__(self, path: Path, fd: int, created: bool = False) -> None:
        self.path = path
        self._fd: int | None = fd
        self.created = created  # the file did not exist before this holder

    @classmethod
    def acquire(cls, home: Path, purpose: str) -> PidFile:
        """Take the home directory for ``purpose`` (``serve``, ``restore``) or raise
        ConflictError naming the current holder."""
        home.mkdir(parents=True, exist_ok=True)
        path = home / PID_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                created = True
            except FileExistsError:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                created = False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(fd)
                os.close(fd)
                raise ConflictError(f"{home} is in use by {holder} (lock {path})") from None
            if _same_file(fd, path):
                break
            os.close(fd)  # a holder that created the file removed it: take the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
        return cls(path, fd, created)

    def release(self, remove: bool = False) -> None:
        """Drop the lock; with ``remove``, also delete the file if this holder created it
        (a refused restore leaves no file behind)."""
        if self._fd is None:
            return
        if remove and self.created:
            with contextlib.suppress(OSError):
                self.path.unlink()  # still locked: a waiting acquire sees the inode change
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the file drops the lock
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def holder(home: Path) -> str | None:
    """``mailsvc serve (pid 1234)`` when someone holds the home directory, else None."""
    path = home / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    if len(text) >= 2 and text[0].isdigit():
        return f"mailsvc {text[1]} (pid {text[0]})"
    return "another mailsvc process"
