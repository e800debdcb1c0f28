"""A real clamd for tests, shared by the whole test session.

clamd runs under :class:`mailsvc.adapters.clamd_daemon.ClamdDaemon` (and so under the
supervisor) in a background thread with its own event loop, so tests in any event
loop (function-scoped or not) can connect to it, and a test can stop, kill and restart
it. It uses the generated test signature database (EICAR + our own body signatures).

Use from any test directory:

- the ``clamd_service`` fixture (session-scoped): register the module once with
  ``pytest_plugins = ["tests.clamd_fixture"]`` in tests/conftest.py, or import it where
  needed: ``from tests.clamd_fixture import clamd_service  # noqa: F401`` in a conftest.py
  or test module (all importers share one clamd process through ``shared_clamd``);
- or plain Python: ``shared_clamd()`` returns the same running service;
  ``ClamdService.start_new(root)`` starts a private one (stop it yourself).
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mailsvc.adapters.clamd import ClamdClient
from mailsvc.adapters.clamd_daemon import ClamdDaemon, ClamdLimits

T = TypeVar("T")

# Small enough that the over-limit test stays fast, large enough for every sample.
TEST_STREAM_MAX_BYTES = 8 * 1024 * 1024


class ClamdService:
    """A clamd child supervised from a background event loop."""

    def __init__(self, daemon: ClamdDaemon) -> None:
        self.daemon = daemon
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="clamd-test-loop", daemon=True
        )
        self._thread.start()

    @classmethod
    def start_new(
        cls, root: Path, *, stream_max_bytes: int = TEST_STREAM_MAX_BYTES
    ) -> ClamdService:
        service = cls(ClamdDaemon(root, limits=ClamdLimits.for_stream(stream_max_bytes)))
        service.start()
        return service

    @property
    def address(self) -> str:
        return self.daemon.address

    @property
    def stream_max_bytes(self) -> int:
        return self.daemon.limits.stream_max_bytes

    def client(self, *, timeout: float = 10.0) -> ClamdClient:
        return self.daemon.client(timeout=timeout)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        """Start clamd (again) and return once it answers PING."""
        self._run(self.daemon.start())

    def stop(self) -> None:
        """Stop clamd; the socket disappears until :meth:`start`."""
        self._run(self.daemon.stop())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


_shared: ClamdService | None = None
_shared_lock = threading.Lock()


def shared_clamd() -> ClamdService:
    """The session's clamd, started on first use and stopped when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            root = Path(tempfile.mkdtemp(prefix="clamd-t-"))  # short: sun_path is 108 bytes
            _shared = ClamdService.start_new(root)
            atexit.register(_close_shared, root)
        return _shared


def _close_shared(root: Path) -> None:
    if _shared is not None:
        _shared.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def clamd_service() -> Iterator[ClamdService]:
    """A running clamd with the test signature database (shared, session-wide)."""
    service = shared_clamd()
    if service.daemon.process is None:  # a test stopped it and did not restart it
        service.start()
    yield service
