"""Stopping a supervised daemon reaches the children it starts while it is being stopped.

Dovecot's master, told to stop just after it started, was sometimes still starting an auth
worker for a look-up that raced the stop: the worker was born after the process group's
SIGTERM, never got it, and the master waited six seconds before killing it (9 tests of a
suite run paid that in their teardown, and so would an operator's restart). The daemon
here does the same, deterministically: it forks its worker in its SIGTERM handler and waits
for it, killing it after six seconds like Dovecot's master.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from mailsvc.supervisor import SupervisedProcess, _group_running
from tests.e2e.conftest import wait_for

DAEMON = r"""
import os, signal, sys

ready, marker = sys.argv[1], sys.argv[2]
worker = []


def on_term(signum, frame):
    if worker:
        return  # a second SIGTERM for the master: it is already stopping
    pid = os.fork()
    if pid == 0:  # the worker, born after the signal that asked its group to stop
        def bye(signum, frame):
            with open(marker, "w") as out:
                out.write("SIGTERM")
            os._exit(0)
        signal.signal(signal.SIGTERM, bye)
        while True:
            signal.pause()
    worker.append(pid)


signal.signal(signal.SIGTERM, on_term)
open(ready, "w").close()
while not worker:
    signal.pause()
# Dovecot's master waits SERVICE_DIE_TIMEOUT_MSECS (6 s) for its children, then kills them
signal.signal(signal.SIGALRM, lambda signum, frame: os.kill(worker[0], signal.SIGKILL))
signal.alarm(6)
os.waitpid(worker[0], 0)
sys.exit(0)
"""


def script_daemon(
    tmp_path: Path, name: str, script: str, *args: str, stop_timeout: float | None = None
) -> SupervisedProcess:
    """A supervised ``python -c script`` that is ready once it has created ``tmp_path/ready``
    (its first argument; ``args`` follow)."""
    ready = tmp_path / "ready"

    async def is_ready() -> bool:
        return ready.exists()

    options = {} if stop_timeout is None else {"stop_timeout": stop_timeout}
    return SupervisedProcess(
        name,
        [sys.executable, "-c", script, str(ready), *args],
        is_ready,
        log_path=str(tmp_path / "daemon.log"),
        **options,
    )


async def test_a_worker_born_during_the_stop_gets_sigterm_too(tmp_path: Path) -> None:
    marker = tmp_path / "worker-got-sigterm"
    daemon = script_daemon(tmp_path, "late-worker", DAEMON, str(marker))
    await daemon.start()
    assert daemon.pid is not None
    await daemon.stop()
    assert daemon.pid is None
    # the worker ended on a SIGTERM of its own, not by its master's SIGKILL six seconds on
    assert marker.read_text() == "SIGTERM"


ABANDONS = r"""
import os, signal, sys

ready = sys.argv[1]
if os.fork() == 0:  # a worker that ignores SIGTERM, and a master that does not wait for it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        signal.pause()
open(ready, "w").close()
signal.pause()  # SIGTERM's default action ends the master at once
"""


async def test_a_worker_left_behind_by_its_master_does_not_outlive_the_stop(
    tmp_path: Path,
) -> None:
    """The daemon's own process exits on SIGTERM and leaves a worker that ignores it: the
    stop ends the rest of the process group (SIGKILL at the stop timeout), no orphan stays."""
    daemon = script_daemon(tmp_path, "abandons-worker", ABANDONS, stop_timeout=2.0)
    await daemon.start()
    group = daemon.pid
    assert group is not None
    await daemon.stop()

    def group_gone() -> bool:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        return False

    # nobody is left in the daemon's process group (once init has reaped the killed worker)
    await wait_for(group_gone, timeout=5)


ZOMBIE_LEFT = r"""
import os, signal, sys

ready = sys.argv[1]
if os.fork() == 0:  # a worker that ends at once; its parent never collects it
    os._exit(0)
open(ready, "w").close()
signal.pause()
"""


async def test_a_group_whose_members_have_all_ended_is_not_waited_for(tmp_path: Path) -> None:
    """A zombie (ended, not yet collected by its parent or, once the parent is gone, by
    init) runs no more: the stop does not wait for init to collect it (PID 1 in a container
    took up to two seconds, and every Dovecot stop of the test suite paid it)."""
    daemon = script_daemon(tmp_path, "leaves-a-zombie", ZOMBIE_LEFT, stop_timeout=30.0)
    await daemon.start()
    group = daemon.pid
    assert group is not None
    await wait_for(lambda: _states(group) == ["S", "Z"] or _states(group) == ["Z", "S"], timeout=5)
    assert _group_running(group)  # the master runs: the zombie beside it changes nothing

    loop = asyncio.get_running_loop()
    started = loop.time()
    await daemon.stop()
    assert daemon.pid is None
    assert not _group_running(group)
    # the stop ended when the master did, well before its 30 s timeout
    assert loop.time() - started < 10


def test_a_group_of_zombies_only_is_not_running() -> None:
    # Popen collects its child only when asked (asyncio's watcher would at once)
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    group = process.pid
    try:
        pause = threading.Event()
        deadline = time.monotonic() + 10
        while _states(group) != ["Z"]:  # ended, not collected
            assert time.monotonic() < deadline, _states(group)
            pause.wait(0.01)
        os.killpg(group, 0)  # no ProcessLookupError: the kernel still counts the zombie
        assert not _group_running(group)
    finally:
        process.wait()
    assert not _group_running(group)


def _states(pgid: int) -> list[str]:
    """The states (R, S, Z ...) of the processes of a process group, by pid."""
    found = []
    for entry in sorted(os.listdir("/proc"), key=lambda e: int(e) if e.isdigit() else 0):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid:
            found.append(fields[0].decode())
    return found
