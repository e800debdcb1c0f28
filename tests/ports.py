"""A TCP port for a server a test starts later (a daemon given its port on the command line,
two services that must know each other's address in their configuration).

A port the kernel picks (bind to 0) comes from its ephemeral range, which every outgoing
connection and every other ``bind(0)`` draws from too: picked, released and bound seconds
later, it was sometimes taken meanwhile ("address already in use", seen in CI). These
ports are drawn below that range, where only other tests' servers bind, and checked free.
"""

from __future__ import annotations

import random
import socket

_LOW, _HIGH = 20_000, 32_000  # below Linux's ephemeral range (32768-60999 by default)


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(_LOW, _HIGH)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {_LOW} and {_HIGH}")
