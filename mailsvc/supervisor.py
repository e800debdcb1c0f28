"""Run a daemon (Dovecot, clamd) as a supervised child: start, wait until ready,
restart with back-off when it dies, stop on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence

from mailsvc.errors import DependencyError

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]


class SupervisedProcess:
    """One child process kept running until ``stop`` is called.

    ``ready`` is polled after each (re)start until it returns True or
    ``start_timeout`` passes. A child that exits is restarted after a back-off
    that doubles from ``min_backoff`` up to ``max_backoff``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: ReadyCheck,
        *,
        env: dict[str, str] | None = None,
        start_timeout: float = 20.0,
        min_backoff: float = 0.2,
        max_backoff: float = 10.0,
        stop_timeout: float = 10.0,
        log_path: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._ready = ready
        self._env = env
        self._start_timeout = start_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stop_timeout = stop_timeout
        self._log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = asyncio.Event()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the child and return once it is ready; raise DependencyError if it is not."""
        await self._spawn()
        await self._wait_ready()
        self._task = asyncio.create_task(self._watch(), name=f"supervise-{self.name}")

    async def _spawn(self) -> None:
        stdout: int | object = asyncio.subprocess.DEVNULL
        handle = None
        if self._log_path:
            handle = open(self._log_path, "ab")  # noqa: ASYNC230
            stdout = handle
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,  # type: ignore[arg-type]
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )
        except OSError as exc:
            raise DependencyError(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        finally:
            if handle:
                handle.close()
        log.info("%s started (pid %s)", self.name, self._proc.pid)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        delay = 0.01
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                raise DependencyError(
                    f"{self.name} exited with status {self._proc.returncode} during start-up"
                    + (f"; see {self._log_path}" if self._log_path else "")
                )
            with contextlib.suppress(OSError):
                if await self._ready():
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        raise DependencyError(f"{self.name} not ready after {self._start_timeout:.0f}s")

    async def _watch(self) -> None:
        backoff = self._min_backoff
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            log.warning("%s exited with status %s; restarting in %.1fs", self.name, code, backoff)
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            try:
                await self._spawn()
                await self._wait_ready()
                self.restarts += 1
                backoff = self._min_backoff
                log.warning("%s restarted (restart #%d)", self.name, self.restarts)
            except DependencyError as exc:
                log.error("%s restart failed: %s", self.name, exc)
                backoff = min(backoff * 2, self._max_backoff)

    def kill_for_test(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the current child (used to exercise crash recovery)."""
        if self._proc and self._proc.returncode is None:
            os.killpg(self._proc.pid, sig)

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self._stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        log.info("%s stopped", self.name)
