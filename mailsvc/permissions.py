"""Who may read the home directory: the service, and Dovecot through one group.

The home holds the database (password hashes, the register, the audit log), the config
(which can hold the PostgreSQL password), TLS and DKIM keys, and the master user's secret.
Nothing in it is for other local users:

- ``init`` and ``serve`` run with umask 077, so whatever they create is private;
- the home is 0750; when mailsvc runs as root its group is the mail user's group, the one
  Dovecot's mail processes run with (its auth process gets it as an extra group), so
  Dovecot can still reach the Maildir root and its own files under ``HOME/dovecot``;
- the config and an SQLite database (with its ``-wal``/``-shm``) are 0600;
- ``serve`` refuses to start while the config or the database is readable by others
  (see ``exposed_secrets``): a password hash that others could read must not be served.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from mailsvc.config import CONFIG_NAME, Settings

UMASK = 0o077
HOME_MODE = 0o750
SECRET_MODE = 0o600


@contextmanager
def private_umask() -> Iterator[None]:
    """Run a command with umask 077 (restored after: the CLI also runs inside tests)."""
    previous = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def sqlite_files(database_url: str) -> list[Path]:
    """The SQLite database file and its WAL companions (none for other databases)."""
    try:
        url = make_url(database_url)
    except Exception:  # a malformed URL is reported by whoever connects
        return []
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    path = Path(url.database)
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def secret_files(settings: Settings) -> list[Path]:
    """The config and the database files that exist."""
    files = [settings.home / CONFIG_NAME, *sqlite_files(settings.database_url)]
    return [p for p in files if p.exists()]


def restrict_home(home: Path, group: int | None = None) -> None:
    """HOME 0750, group ``group`` (when given: we run as root and Dovecot needs it)."""
    if group is not None and home.stat().st_gid != group:
        os.chown(home, -1, group)
    if stat.S_IMODE(home.stat().st_mode) != HOME_MODE:
        os.chmod(home, HOME_MODE)


def restrict_secrets(settings: Settings) -> list[Path]:
    """Make the config and the database files 0600; returns the files changed."""
    changed = []
    for path in secret_files(settings):
        if stat.S_IMODE(path.stat().st_mode) != SECRET_MODE:
            os.chmod(path, SECRET_MODE)
            changed.append(path)
    return changed


def exposed_secrets(settings: Settings) -> list[str]:
    """One line per secret file that users other than us and our group can read."""
    problems = []
    for path in secret_files(settings):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & stat.S_IROTH:
            problems.append(f"{path} is readable by other users (mode {mode:04o})")
    return problems
