"""WorkerPool: a process pool for CPU-bound document work that can kill a stuck worker.

``concurrent.futures.ProcessPoolExecutor`` cannot cancel a running task: a hostile PDF that
makes PDFium loop would keep a worker busy forever. ``WorkerPool`` wraps one and adds
``recycle()``: kill every worker, fail the tasks in flight (their callers see
``BrokenExecutor`` → an ``error`` finding → 451, the sender retries) and start afresh.
Workers get ``RLIMIT_AS`` (address space) and start from a ``forkserver`` so that forking
never copies the event loop's threads and locks.

app.py builds one and passes it as the executor to the stages that do CPU-bound work.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from mailsvc.supervisor import set_parent_death_signal, settle_heap

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def limit_worker(memory_bytes: int | None) -> None:
    """Pool initializer: cap the worker's address space; ignore SIGINT (the parent handles it);
    die with the fork server (which dies with ``serve``), never linger as an orphan; leave
    what the fork server preloaded out of the cyclic collector's walks (``settle_heap``;
    bench/heap.py: a signed document's work 2 to 7 % less CPU, medians of alternating
    rounds)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal()
    settle_heap(collect=False)  # no walk over the pages shared with the fork server
    if memory_bytes:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory_bytes = min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))


# Imported once in the fork server, so that no worker pays for pyHanko, the email
# package or the stage modules on its first task (py-spy: ~10 % of a short bench's
# worker time was imports).
PRELOAD = (
    # The program's main module: meant to be imported once here, so that a worker finds
    # it and does not import it again (multiprocessing.spawn._fixup_main_from_path). On
    # Python 3.11 the fork server is never given the main module's path (forkserver asks
    # get_preparation_data for "main_path", which it names "init_main_from_path"), so
    # every worker runs the main script again: the script must be cheap to import
    # (mailsvc.cli and the benches import the service inside their commands).
    "__main__",
    "mailsvc.documents.extract",
    "mailsvc.signatures.worker",
    "mailsvc.signatures.validation",
    "mailsvc.pipeline.limits",
    "mailsvc.pipeline.spam",
    "mailsvc.pipeline.classification",
    "mailsvc.pipeline.metadata",
    "mailsvc.register.attachments",
    "mailsvc.notify.exchange",
    # Only what the worker-side functions need: not mailsvc.pipeline.authentication or
    # mailsvc.register.recorder (SQLAlchemy, the models, DNS, SPF: ~35 MB in every
    # process of the pool). The DKIM work (mailsvc.pipeline.dkim_verify) is imported by a
    # worker on its first DKIM-signed message.
)


class WorkerPool(Executor):
    """A ProcessPoolExecutor that can be recycled when a task overruns its time."""

    def __init__(
        self,
        max_workers: int,
        *,
        memory_bytes: int | None = 1 << 30,
        start_method: str = "forkserver",
        preload: tuple[str, ...] = PRELOAD,
    ) -> None:
        self.max_workers = max_workers
        self.memory_bytes = memory_bytes
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # import the heavy modules once in the fork server, not in every worker
            self._context.set_forkserver_preload(list(preload))
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.recycled = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=self._context,
            initializer=limit_worker,
            initargs=(self.memory_bytes,),
        )

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                log.warning("worker pool was broken; starting a new one")
                self._replace()
                return self._pool.submit(fn, *args, **kwargs)

    def recycle(self) -> None:
        """Kill all workers (tasks in flight fail with BrokenProcessPool) and start anew."""
        with self._lock:
            log.warning("recycling the worker pool (a task overran its time)")
            self._replace()

    def _replace(self) -> None:
        old = self._pool
        # ProcessPoolExecutor has no public kill before Python 3.14 (terminate_workers)
        processes: dict[int, Any] = dict(getattr(old, "_processes", None) or {})
        for pid in processes:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The old pool's feeder thread may be stuck writing a large task into the pipe of
        # a worker just killed; nobody will read it, and interpreter exit would wait for
        # that thread forever. Closing our copy of the pipe's read end fails the write.
        call_queue = getattr(old, "_call_queue", None)
        reader = getattr(call_queue, "_reader", None)
        if processes and reader is not None:
            with contextlib.suppress(OSError):
                reader.close()
        old.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        self.recycled += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
