"""Where a document's time goes: wall time of each phase of the message path under load.
Not a test.

    .venv/bin/python bench/phases.py [--documents 300] [--sessions 10]
    .venv/bin/python bench/phases.py --plain 2000   # bench/smtp.py's plain 20 KB mails
    TMPDIR=/mnt/journaled .venv/bin/python bench/phases.py   # the homes on another disk

Runs ``bench/documents.py``'s load (the same signed documents, home and service, ten SMTP
sessions) with the service's own methods timed where they are called: the checks
(``PipelineRunner.run`` and each stage), the acceptance (``Acceptance.accept``), its
thread's work (``_store``: the room check, the blobs, the transaction), the blobs
(``_prepare``), the transaction with its wait for the write turn (``_commit``) and the
LMTP delivery (``_deliver``); for the thread's parts the thread's CPU time beside the wall
time. A phase's wall time less its CPU is waiting: for a core, the GIL, a thread of the
event loop's executor, the write turn, an fsync. The figures are medians, 90th
percentiles and means over the documents; ``documents/s`` is the run's throughput, lower
than ``bench/documents.py``'s by what the timing costs.

The benches keep their messages, homes and databases under the system's temporary
directory; ``TMPDIR`` moves them, e.g. onto a journaled ext4 image mounted on a loop device,
where each fsync commits the journal (this machine's root file system has no journal).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import smtp as plain
from bench.documents import document_messages, prepare_home, run_ours
from bench.smtp import save_messages

WALL: defaultdict[str, list[float]] = defaultdict(list)
CPU: defaultdict[str, list[float]] = defaultdict(list)


def timed_coroutine(owner: type, name: str, label: Callable[..., str]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(self, *args, **kwargs)
        finally:
            WALL[label(*args)].append(time.perf_counter() - started)

    setattr(owner, name, timed)


def timed_function(owner: type, name: str, label: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            WALL[label].append(time.perf_counter() - started)
            CPU[label].append(time.thread_time() - cpu)

    setattr(owner, name, timed)


def instrument() -> None:
    from mailsvc.delivery import Acceptance
    from mailsvc.pipeline.runner import PipelineRunner

    timed_coroutine(PipelineRunner, "run", lambda *_: "checks (all stages)")
    timed_coroutine(PipelineRunner, "_inspect", lambda stage, _msg: f"  stage {stage.name}")
    timed_coroutine(Acceptance, "accept", lambda *_: "acceptance (all of it)")
    timed_function(Acceptance, "_store", "  its thread: room, blobs, transaction")
    timed_function(Acceptance, "_prepare", "    blobs (message, attachments)")
    timed_function(Acceptance, "_commit", "    transaction, write turn included")
    timed_coroutine(Acceptance, "_deliver", lambda *_: "  LMTP delivery")


def report(count: int, elapsed: float, what: str = "documents") -> None:
    print(f"{count} {what} in {elapsed:.1f} s: {count / elapsed:.1f} {what}/s")
    print(f"{'phase':<42} {'median':>8} {'p90':>8} {'mean':>8}   thread CPU (median)")
    order = [
        "checks (all stages)",
        *sorted(k for k in WALL if k.startswith("  stage")),
        "acceptance (all of it)",
        "  its thread: room, blobs, transaction",
        "    blobs (message, attachments)",
        "    transaction, write turn included",
        "  LMTP delivery",
    ]
    for label in order:
        values = sorted(WALL.get(label, ()))
        if not values:
            continue
        p90 = values[int(len(values) * 0.9)]
        line = (
            f"{label:<42} {statistics.median(values) * 1000:7.1f}  {p90 * 1000:7.1f}  "
            f"{statistics.mean(values) * 1000:7.1f} ms"
        )
        if label in CPU:
            line += f"   {statistics.median(CPU[label]) * 1000:.2f} ms"
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument(
        "--plain",
        type=int,
        metavar="N",
        default=0,
        help="bench/smtp.py's load instead: N plain 20 KB mails (no document)",
    )
    args = parser.parse_args()
    # The receipts have no route here (closed network): their retry warnings left out.
    logging.getLogger("mailsvc.outbound.mailer").setLevel(logging.ERROR)
    instrument()
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        if args.plain:
            count, what = args.plain, "messages"
            messages = save_messages(workdir / "messages", plain.make_messages(count, 20_000))
        else:
            count, what = args.documents, "documents"
            messages = save_messages(workdir / "messages", document_messages(count))
            settings = prepare_home(workdir / "home")
        print(f"homes under {tempfile.gettempdir()} (TMPDIR moves them)")
        WALL.clear()
        CPU.clear()
        if args.plain:
            elapsed, _latencies, _monitor = await plain.run_ours(messages, args.sessions, workdir)
        else:
            elapsed, _latencies, _numbered, _monitor = await run_ours(
                settings, messages, count, args.sessions
            )
    report(count, elapsed, what)


if __name__ == "__main__":
    asyncio.run(main())
