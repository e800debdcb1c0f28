"""Recycling the worker pool while large tasks wait in its pipe must not hang the process.

ProcessPoolExecutor's feeder thread writes each pickled task into the workers' pipe. When the
workers are killed (``WorkerPool.recycle``: a hostile document overran its time) while a task
larger than the pipe's buffer is being written, nobody reads the rest: the feeder thread
blocks for ever, and interpreter exit waits for it. Seen as a test run that never ended.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from mailsvc.documents.pool import WorkerPool

    def block(started: str, release: str) -> int:
        with open(started, "w") as fifo:  # tell the parent the worker is busy
            fifo.write("busy")
        with open(release) as fifo:  # held until the parent has recycled
            return len(fifo.read())

    def size(data: bytes) -> int:
        return len(data)

    if __name__ == "__main__":
        started, release = sys.argv[1], sys.argv[2]
        os.mkfifo(started)
        os.mkfifo(release)
        pool = WorkerPool(1)
        pool.submit(block, started, release)
        with open(started) as fifo:
            assert fifo.read() == "busy"
        # 5 MB tasks: the feeder thread is now stuck writing the first into the pipe
        waiting = [pool.submit(size, b"x" * 5_000_000) for _ in range(3)]
        pool.recycle()  # the worker is killed: nobody opens the release pipe any more
        print(pool.submit(size, b"abc").result(timeout=60))
        pool.shutdown(wait=True)
        print("exiting")
    """
)


def test_recycle_with_large_tasks_in_flight_lets_the_process_exit(tmp_path: Path) -> None:
    script = tmp_path / "recycle.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "started"), str(tmp_path / "release")],
        capture_output=True,
        text=True,
        timeout=30,  # the bug: the process never exits (TimeoutExpired fails the test)
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "exiting"]
