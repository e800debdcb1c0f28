"""Run a daemon (Dovecot, clamd) as a supervised child: start, wait until ready,
restart with back-off when it dies, stop on exit.

Children die with us. Each child asks the kernel for a parent-death signal
(``PR_SET_PDEATHSIG``, SIGTERM) between fork and exec, so a ``kill -9`` of
``mailsvc serve`` (or the OOM killer) stops Dovecot and clamd too. For what still
survives (a child started by an older version, a SIGTERM ignored),
:func:`stop_leftovers` finds processes that run *our* configuration file for this home
and stops them before a new start: SIGTERM, then SIGKILL after a grace period.

Back-off. A child that exits, or does not become ready, is a failure. The next start
waits 0.2 s, doubling to 30 s. The reason (the last error line of the child's logs)
is logged once per change, not once per attempt. After ``alert_after`` consecutive
failures ``on_failures`` is called once (the service alerts the administrators). The
count and the back-off reset only after the child has stayed up for
``stable_seconds``. While it is down ``state`` is ``down`` (``/healthz`` says degraded).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from mailsvc.errors import DependencyError

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
TERM_AGAIN_SECONDS = 1.0  # stop: SIGTERM repeated this often until the stop timeout
FailureHook = Callable[[str, int, str], Awaitable[None]]
ReadyHook = Callable[[], Awaitable[None]]

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)

STARTING, UP, DOWN, STOPPED = "starting", "up", "down", "stopped"


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent thread ends."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this process and the programs it starts.

    glibc gives each thread that allocates its own arena (up to eight per core), and an
    arena keeps what was freed in it: the SMTP process's worker threads (fsync, SQLite)
    each held a few megabytes of 300 KB messages long gone (bench/documents.py: SMTP
    process 268 MB at peak, 179 MB with two arenas, CPU per document not higher).
    ``MALLOC_ARENA_MAX`` in the environment does the same for the fork server, its
    workers, clamd and Dovecot; an operator's own setting is kept.
    """
    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))
    with contextlib.suppress(AttributeError, ValueError):  # not glibc; not a number
        _libc.mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))


YOUNG_COLLECTION_THRESHOLD = 10_000  # CPython's default is 700


def settle_heap(*, collect: bool = True) -> Callable[[], None]:
    """Once a long-running process has started: move every object alive to the cyclic
    collector's permanent generation (``gc.freeze``) and collect the youngest generation
    after 10,000 net allocations instead of 700. Returns what undoes both.

    What a process holds after start-up (modules, SQLAlchemy's mappers, pyHanko's and
    asn1crypto's tables: some 200,000 tracked objects) lives as long as the process, yet
    every full collection walked all of it again: in bench/smtp.py four full collections
    of the SMTP process took 75 ms each, the event loop standing still meanwhile, and the
    young ones ran every few messages. Frozen objects are still freed when nothing refers
    to them; only cycles among them wait for :func:`unfreeze <gc.unfreeze>`. In a pool
    worker, forked from the fork server, freezing without a collection first also keeps
    the collector from touching (and so copying) the pages it shares with the fork
    server. ``collect``: collect everything first, so that no garbage is frozen.
    """
    previous = gc.get_threshold()
    if collect:
        gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *previous[1:])

    def undo() -> None:
        gc.unfreeze()
        gc.set_threshold(*previous)

    return undo


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the thread that forked it ends.

    If the parent is already gone when the child runs this (it died between fork and
    prctl), the child signals itself at once.
    """
    parent = os.getpid()

    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def find_running(binary: str, config: Path) -> list[int]:
    """Processes running ``binary`` with ``config`` as an argument (our instance for a home).

    Only the exact path of our generated configuration counts: a system daemon, or the
    instance of another home, is never touched.
    """
    name = os.path.basename(binary)
    wanted = str(config)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        argv = _cmdline(int(entry.name))
        if argv and os.path.basename(argv[0]) == name and wanted in argv[1:]:
            found.append(int(entry.name))
    return sorted(found)


def stop_leftovers(
    name: str,
    binary: str,
    config: Path,
    *,
    pid_file: Path | None = None,
    grace: float = 10.0,
) -> list[int]:
    """Stop what a killed ``serve`` left running for this home; return the pids stopped.

    Candidates are the pid in ``pid_file`` and every process whose command line runs
    ``binary`` with ``config``; a pid-file entry whose command line does not match is
    ignored (a reused pid). Each gets SIGTERM, and SIGKILL (to its whole process group:
    we start children in their own session) if it is still there after ``grace``.
    Blocking: call from a thread.
    """
    pids = set(find_running(binary, config))
    if pid_file is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().split()[0])
            argv = _cmdline(pid)
            if argv and str(config) in argv[1:]:
                pids.add(pid)
    pids = {p for p in pids if _alive(p)}
    if not pids:
        return []
    for pid in sorted(pids):
        log.warning(
            "%s: stopping pid %d left running with %s by an earlier serve", name, pid, config
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    delay = 0.01
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    for pid in sorted(p for p in pids if _alive(p)):
        log.warning("%s: pid %d ignored SIGTERM for %.0fs; sending SIGKILL", name, pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while any(_alive(p) for p in pids) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    log.warning("%s: stopped %d leftover process(es): %s", name, len(pids), sorted(pids))
    return sorted(pids)


_TIMESTAMP = re.compile(
    r"^(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} -> |\S*\d\d:\d\d:\d\d\S*\s+)"
)  # clamd's "Sat Dec  5 09:00:00 2026 -> ", Dovecot's "2026-12-05T09:00:00 "
_SIGNIFICANT = re.compile(r"fatal|error|panic|cannot|can't|failed|ERROR", re.IGNORECASE)


def last_error(text: str) -> str:
    """The line of a child's log that best says why it stopped (timestamp removed)."""
    lines = [_TIMESTAMP.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if _SIGNIFICANT.search(line):
            return line[:500]
    return lines[-1][:500] if lines else ""


class SupervisedProcess:
    """One child process kept running until ``stop`` is called.

    ``ready`` is polled after each (re)start until it returns True or
    ``start_timeout`` passes. ``log_path`` receives the child's stdout and stderr;
    ``logs`` are further files the child writes (its own log) that explain a failure.
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
        max_backoff: float = 30.0,
        stop_timeout: float = 10.0,
        log_path: str | None = None,
        logs: Sequence[str] = (),
        stable_seconds: float = 60.0,
        alert_after: int = 5,
        on_failures: FailureHook | None = None,
        on_ready: ReadyHook | None = None,
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
        self._logs = [p for p in (log_path, *logs) if p]
        self._log_offsets: dict[str, int] = {}
        self._stable_seconds = stable_seconds
        self.alert_after = alert_after
        self.on_failures = on_failures
        self.on_ready = on_ready
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._up_since: float | None = None
        self.state = STOPPED
        self.restarts = 0
        self.failures = 0  # consecutive failures since it last stayed up
        self.reason = ""  # why it last failed (from its logs)
        self.next_backoff = min_backoff

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the child and return once it is ready; raise DependencyError if it is not."""
        self.state = STARTING
        await self._spawn()
        try:
            await self._wait_ready()
        except DependencyError:
            await self._kill()
            self.state = DOWN
            raise
        self._became_ready()
        self._task = asyncio.create_task(self._watch(), name=f"supervise-{self.name}")

    async def _spawn(self) -> None:
        self._log_offsets = {path: _size(path) for path in self._logs}
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
                start_new_session=True,  # a Ctrl-C on our terminal is ours to handle
                preexec_fn=die_with_parent(),
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
                    + (f": {self._read_reason()}" if self._logs else "")
                )
            with contextlib.suppress(OSError, TimeoutError):
                if await self._ready():
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        raise DependencyError(f"{self.name} not ready after {self._start_timeout:.0f}s")

    def _read_reason(self) -> str:
        text = ""
        for path in self._logs:
            try:
                with open(path, "rb") as handle:
                    handle.seek(self._log_offsets.get(path, 0))
                    text += handle.read(64 * 1024).decode("utf-8", "replace")
            except OSError:
                continue
        return last_error(text)

    def _became_ready(self) -> None:
        self.state = UP
        self._up_since = time.monotonic()
        if self.on_ready is not None:
            self._run_hook(self.on_ready())

    def _run_hook(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:  # boundary: a hook never stops supervision
                log.exception("%s: supervision hook failed", self.name)

        task = asyncio.create_task(guarded())
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    def _failed(self, what: str) -> None:
        """Count a failure; log the reason when it changed; alert once at the threshold."""
        self.state = DOWN
        self.failures += 1
        reason = self._read_reason() or what
        if _normalise(reason) != _normalise(self.reason):
            if reason == what:
                log.error("%s failed: %s", self.name, what)
            else:
                log.error("%s failed (%s): %s", self.name, what, reason)
        self.reason = reason
        if self.failures == self.alert_after and self.on_failures is not None:
            log.error(
                "%s: %d failures in a row; alerting the administrators",
                self.name,
                self.failures,
            )
            self._run_hook(self.on_failures(self.name, self.failures, reason))

    async def _watch(self) -> None:
        backoff = self._min_backoff
        while not self._stopping:
            assert self._proc is not None
            waiter = asyncio.ensure_future(self._proc.wait())
            if self.failures:
                # Stayed up long enough: forget the earlier failures.
                done, _ = await asyncio.wait({waiter}, timeout=self._stable_seconds)
                if not done and not self._stopping:
                    log.info(
                        "%s has stayed up %.0fs: back-off reset", self.name, self._stable_seconds
                    )
                    self.failures = 0
                    self.reason = ""
                    backoff = self._min_backoff
            code = await waiter
            if self._stopping:
                return
            self._up_since = None
            self._failed(f"exited with status {code}")
            while not self._stopping:
                self.next_backoff = backoff
                log.warning(
                    "%s down (failure #%d); next start in %.1fs", self.name, self.failures, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                if self._stopping:
                    return
                try:
                    await self._spawn()
                    await self._wait_ready()
                except DependencyError as exc:
                    await self._kill()
                    self._failed(str(exc).split(":", 1)[0])
                    continue
                self.restarts += 1
                log.warning("%s restarted (restart #%d)", self.name, self.restarts)
                self._became_ready()
                break

    def kill_for_test(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the current child (used to exercise crash recovery)."""
        if self._proc and self._proc.returncode is None:
            os.killpg(self._proc.pid, sig)

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        self.state = STOPPED
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._hooks):
            task.cancel()
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        while True:
            # SIGTERM to the whole group, again each second: a child forked while the
            # signal was on its way never got it (Dovecot starting an auth worker for a
            # look-up that raced the stop), and its parent waits for it (Dovecot's master:
            # 6 s, then SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            remaining = deadline - loop.time()
            if remaining <= 0:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                break
            try:
                await asyncio.wait_for(proc.wait(), min(TERM_AGAIN_SECONDS, remaining))
                break
            except TimeoutError:
                continue
        await _sweep_group(proc.pid, deadline)
        log.info("%s stopped", self.name)


async def _sweep_group(pgid: int, deadline: float) -> None:
    """After the daemon's own process has exited: what is left of its process group (a
    child its parent no longer waits for) ends too, by the stop timeout at the latest, so
    that no orphan outlives the stop."""
    loop = asyncio.get_running_loop()
    while _group_running(pgid):
        if loop.time() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        await asyncio.sleep(0.05)  # the group's members are not our children: no wait()


def _group_running(pgid: int) -> bool:
    """Whether a process of the group still runs. One that has ended and waits to be
    reaped (a zombie: its parent, or init once its parent is gone, has not collected its
    status yet) runs no more and holds nothing but its process-table entry; init may take
    seconds to collect it (in a container, PID 1 is not always quick about it)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: the group has members, count them as running
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _normalise(reason: str) -> str:
    return re.sub(r"\d+", "#", reason)
