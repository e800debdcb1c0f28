"""Stopping a node while a job runs, and a node that dies: no claim in ``job_run`` is left
``running`` for ever.

A node that is stopped waits (``[jobs] stop_grace_seconds``) for its running jobs and records
their outcome; a job still running after that is cut off and recorded ``interrupted``, even
when the cut comes while the outcome is being written. A node killed in the middle of a run
(SIGKILL) stops refreshing its claim; another node records the claim ``interrupted`` once it
is ``stale_after_seconds`` old, and never touches the claim of a live node's long job.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_SCHEDULER_PAUSED, EVENT_SCHEDULER_SHUTDOWN
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings
from mailsvc.errors import ConfigError
from mailsvc.jobs.catalog import JobSpec, every
from mailsvc.jobs.models import JobRun
from mailsvc.jobs.scheduler import JobRunner, JobScheduler
from tests.e2e.conftest import wait_for
from tests.jobs import sample_jobs
from tests.jobs.conftest import write_home

ROOT = Path(__file__).resolve().parents[2]
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


async def test_a_claim_left_running_by_a_killed_node_is_recorded_interrupted(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    home = tmp_path / "home"
    settings = write_home(
        home, db_url, "[jobs]\nheartbeat_seconds = 0.2\nstale_after_seconds = 2\n"
    )
    stale_after = timedelta(seconds=settings.jobs.stale_after_seconds)
    # Node a runs a job that will last longer than stale_after_seconds: it stays live.
    scheduler = await running_held_job(settings, sessions, db_url, node="a")
    try:
        # Node "dead", a process of its own, is killed (SIGKILL) in the middle of its run.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.jobs.node_process", str(home), "dead",
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            await wait_for(lambda: any(r.job == "endless@dead" for r in runs(sessions)), 60)
        finally:
            process.kill()
            await process.wait()
        await wait_for(lambda: run_of(sessions, "endless@dead").outcome != "running", 30)
        dead = run_of(sessions, "endless@dead")
        live = run_of(sessions, "held@a")
    finally:
        sample_jobs.GATE.release.set()
        await scheduler.stop()
    assert dead.outcome == "interrupted" and dead.node == "dead"
    assert dead.summary.startswith("no heartbeat since ")
    assert dead.heartbeat_at is not None and dead.finished_at is not None
    assert dead.finished_at - dead.heartbeat_at >= stale_after
    # Node a's job had run longer than stale_after_seconds, but its claim was refreshed.
    assert live.outcome == "running" and live.finished_at is None
    assert dead.finished_at - live.started_at >= stale_after
    assert live.heartbeat_at is not None and live.heartbeat_at > live.started_at
    finished = run_of(sessions, "held@a")
    assert (finished.outcome, finished.summary) == ("ok", "released")


def test_a_stale_claim_must_be_several_heartbeats_old(tmp_path: Path, db_url: str) -> None:
    with pytest.raises(ConfigError, match="stale_after_seconds must be at least 3"):
        write_home(tmp_path / "home", db_url, "[jobs]\nheartbeat_seconds = 120\n")
    settings = write_home(tmp_path / "home", db_url, "[jobs]\nheartbeat_seconds = 100\n")
    assert settings.jobs.stale_after_seconds == 300
