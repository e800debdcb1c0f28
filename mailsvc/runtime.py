"""The short runtime directory of a home: where the unix sockets of its daemons live.

A unix socket path holds at most 107 bytes (``sun_path`` is 108 with the NUL), and
Dovecot puts sockets two levels below its ``base_dir``
(``token-login/imap-urlauth``). Under a long home such as
``/srv/so-thong-tin-va-truyen-thong/mailsvc/production-2027`` those paths do not fit,
so the sockets live in a directory named after a hash of the home instead::

    /run/mailsvc/<12 hex digits of sha256(home)>/        (root)
    $XDG_RUNTIME_DIR/mailsvc/<id>/ or /tmp/mailsvc-<uid>/<id>/   (anyone else)

The id is stable, so a new ``serve`` finds what a killed one left (Dovecot's
``master.pid``). ``/run`` is emptied at boot, which is what runtime state wants.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mailsvc.errors import ConfigError

UNIX_SOCKET_MAX = 107  # sun_path is 108 bytes including the terminating NUL
# Dovecot's longest socket below base_dir is "token-login/imap-urlauth" (24 bytes); keep a margin.
DOVECOT_SOCKET_TAIL = len("/dovecot/token-login/imap-urlauth") + 8


def home_id(home: Path) -> str:
    """12 hex digits naming ``home`` (its resolved path) in the runtime directory."""
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:12]


def runtime_root() -> Path:
    if os.geteuid() == 0:
        return Path("/run/mailsvc")
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.access(xdg, os.W_OK):
        return Path(xdg) / "mailsvc"
    return Path(f"/tmp/mailsvc-{os.geteuid()}")


def runtime_dir(home: Path) -> Path:
    """The runtime directory of ``home`` (not created)."""
    path = runtime_root() / home_id(home)
    if len(str(path)) + DOVECOT_SOCKET_TAIL > UNIX_SOCKET_MAX:
        raise ConfigError(
            f"runtime directory {path} is too long for unix sockets "
            f"(limit {UNIX_SOCKET_MAX} bytes); set XDG_RUNTIME_DIR to a shorter directory"
        )
    return path


def make_runtime_dir(home: Path) -> Path:
    """Create ``runtime_dir(home)`` (mode 0755, so Dovecot's unprivileged processes can
    reach their sockets) and return it."""
    path = runtime_dir(home)
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    if root.stat().st_uid != os.geteuid():
        raise ConfigError(f"runtime directory {root} belongs to another user")
    os.chmod(root, 0o755)  # explicit: serve runs with umask 077
    path.mkdir(exist_ok=True)
    os.chmod(path, 0o755)
    return path
