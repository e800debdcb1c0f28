"""systemd's readiness protocol (sd_notify) without a dependency: one datagram to the unix
socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace).

``mailsvc serve`` takes the variable out of its environment first (:func:`take_socket`), so
its children (Dovecot answers ``NOTIFY_SOCKET`` with its own READY=1, clamd) never speak for
the service; it sends ``READY=1`` once every listener is up (deploy/mailsvc.service has
``Type=notify``) and ``STOPPING=1`` when SIGTERM arrives. Without ``NOTIFY_SOCKET`` (not
started by systemd) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def take_socket() -> str:
    """``NOTIFY_SOCKET``, removed from this process's environment (so children lack it)."""
    return os.environ.pop("NOTIFY_SOCKET", "")


def notify(state: str, address: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``address``; True when the socket took it."""
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("sd_notify %s to %s failed: %s", state, address, exc)
        return False
    return True
