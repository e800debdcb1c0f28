"""Making a directory entry durable: a file fsynced is not found after a crash unless the
entry naming it (and every new directory on its path) is fsynced too."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """fsync the directory ``path``: the entries made or renamed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
