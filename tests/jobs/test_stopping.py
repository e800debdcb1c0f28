"""Stopping a node while a job runs: no claim in ``job_run`` is left ``running``.

A node that is stopped waits (``[jobs] stop_grace_seconds``) for its running jobs and records
their outcome; a job still running after that is cut off and recorded ``interrupted``, even
when the cut comes while the outcome is being written.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_PAUSED, EVENT_SCHEDULER_SHUTDOWN
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings
from mailsvc.jobs.catalog import JobSpec, every
from mailsvc.jobs.models import JobRun
from mailsvc.jobs.scheduler import JobRunner, JobScheduler
from tests.e2e.conftest import wait_for
from tests.jobs import sample_jobs
from tests.jobs.conftest import write_home

HELD = JobSpec(
    "held", "tests.jobs.sample_jobs:held_job", "runs until released", lambda s: every(60),
    scope="node",
)  # fmt: skip


def runs(sessions: sessionmaker[Session]) -> list[JobRun]:
    with sessions() as session:
        return list(session.scalars(select(JobRun).order_by(JobRun.id)))


def run_of(sessions: sessionmaker[Session], job: str) -> JobRun:
    [run] = [r for r in runs(sessions) if r.job == job]
    return run


async def running_held_job(
    settings: Settings, sessions: sessionmaker[Session], db_url: str, node: str = "a"
) -> JobScheduler:
    """A started node whose ``held`` job (run at start) is running, waiting for its gate."""
    sample_jobs.GATE = sample_jobs.Gate()
    runner = JobRunner(settings, sessions, None, node=node, specs=(HELD,))
    scheduler = JobScheduler(runner, db_url)
    await scheduler.start()
    await asyncio.wait_for(sample_jobs.GATE.entered.wait(), 30)
    return scheduler


def when_told_to_stop(scheduler: JobScheduler, action: Callable[[], Any], events: int) -> None:
    """Call ``action`` (in the event loop) when APScheduler reports one of ``events``."""
    assert scheduler.scheduler is not None
    scheduler.scheduler.add_listener(lambda event: action(), events)


class LoadedPool(ThreadPoolExecutor):
    """The event loop's thread pool on a loaded machine: its only worker is kept busy, so a
    call submitted meanwhile waits in the queue, not started yet."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls: list[Future[Any]] = []
        self.busy = threading.Event()
        self._free = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.calls.append(future)
        return future

    def occupy(self) -> None:
        def busy() -> None:
            self.busy.set()
            self._free.wait()

        super().submit(busy)

    def let_go(self) -> None:
        self._free.set()


async def test_stopping_waits_for_a_running_job_and_records_its_outcome(
    settings: Settings, sessions: sessionmaker[Session], db_url: str
) -> None:
    scheduler = await running_held_job(settings, sessions, db_url)
    gate = sample_jobs.GATE
    # The job is still running when the node is told to stop; it ends a moment later.
    when_told_to_stop(
        scheduler, gate.release.set, EVENT_SCHEDULER_PAUSED | EVENT_SCHEDULER_SHUTDOWN
    )
    await scheduler.stop()
    row = run_of(sessions, "held@a")
    assert (row.outcome, row.summary) == ("ok", "released")
    assert row.finished_at is not None and not gate.cut_off


async def test_a_job_running_past_the_grace_is_cut_off_and_recorded_interrupted(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    settings = write_home(tmp_path / "home", db_url, "[jobs]\nstop_grace_seconds = 0\n")
    scheduler = await running_held_job(settings, sessions, db_url)
    await scheduler.stop()  # the gate is never released
    row = run_of(sessions, "held@a")
    assert (row.outcome, row.summary) == ("interrupted", "stopped before it finished")
    assert row.finished_at is not None and sample_jobs.GATE.cut_off


async def test_a_node_cut_off_while_writing_a_runs_outcome_still_records_it(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    """The flaky failure of the two-node test, made certain: the job has returned, and
    writing its outcome waits for a thread of the loop's pool when the node stops."""
    settings = write_home(tmp_path / "home", db_url, "[jobs]\nstop_grace_seconds = 0\n")
    loop = asyncio.get_running_loop()
    pool = LoadedPool()
    loop.set_default_executor(pool)
    try:
        scheduler = await running_held_job(settings, sessions, db_url)
        pool.occupy()
        await wait_for(pool.busy.is_set)
        submitted = len(pool.calls)
        sample_jobs.GATE.release.set()
        await wait_for(lambda: len(pool.calls) > submitted)  # the outcome, waiting for a thread
        # The worker frees up only once the node has shut its scheduler down.
        when_told_to_stop(scheduler, lambda: loop.call_soon(pool.let_go), EVENT_SCHEDULER_SHUTDOWN)
        await scheduler.stop()
        await wait_for(lambda: all(call.done() for call in pool.calls))
    finally:
        pool.let_go()
        pool.shutdown(wait=True)
    row = run_of(sessions, "held@a")
    assert (row.outcome, row.summary) == ("ok", "released")
    assert row.finished_at is not None and not sample_jobs.GATE.cut_off
