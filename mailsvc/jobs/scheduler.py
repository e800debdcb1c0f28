"""The scheduler: APScheduler 3 with its job store in our database, run once across nodes.

- :class:`JobRunner` runs one job by name: it claims the run in ``job_run`` (one row per
  job and scheduled time; the unique constraint lets one node win), builds the
  :class:`JobContext`, calls the job function (imported by dotted path, see
  ``catalog.py``), refreshes the claim's heartbeat while it runs, and records the
  outcome. A failing job is logged and recorded; the scheduler goes on. A run cut off
  (its task cancelled) is recorded ``interrupted``; a cancel that arrives while the claim
  or the outcome is being written waits for that write, so no claim is left ``running``.
- :class:`ClaimingExecutor` is the APScheduler executor that hands each due run to the
  runner with its scheduled time (so every node claims the same key).
- :class:`JobScheduler` keeps the catalog's cluster jobs in the shared SQLAlchemy job
  store (``apscheduler_jobs``; added when missing, rescheduled when the schedule changed,
  never reset on restart so a run missed while down still happens) and node jobs in
  memory. It records ``interrupted`` the claims other nodes left running when they died
  (no heartbeat for ``[jobs] stale_after_seconds``). Stopping it starts no new run, waits
  up to ``[jobs] stop_grace_seconds`` for the running ones, then cuts off the rest.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings
from mailsvc.db.session import make_engine
from mailsvc.errors import MailsvcError, NotFoundError
from mailsvc.jobs.catalog import JOBS, JobSpec, JobUnavailable, find_spec, load_function
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.runs import (
    INTERRUPTED,
    beat,
    claim_key,
    claim_run,
    finish_run,
    reap_stale,
)
from mailsvc.outbound.mailer import Mailer
from mailsvc.time import VIETNAM

log = logging.getLogger(__name__)

STORE_TABLE = "apscheduler_jobs"
CLUSTER_STORE = "default"
NODE_STORE = "node"
CLAIMED_ELSEWHERE = "claimed-elsewhere"
UNAVAILABLE = "unavailable"
# After the grace, how long cut-off runs get to write "interrupted" (one UPDATE each).
RECORDING_SECONDS = 10.0

T = TypeVar("T")


def node_name(settings: Settings) -> str:
    return settings.jobs.node or f"{socket.gethostname()}:{os.getpid()}"


async def scheduled_job(name: str) -> None:
    """The function the job store records for every job; ClaimingExecutor runs the real one
    (by name, through JobRunner), so stored jobs never depend on optional modules."""
    raise MailsvcError(f"job {name} runs through mailsvc.jobs.scheduler.ClaimingExecutor")


async def _in_thread(call: Callable[..., T], *args: Any) -> tuple[T, bool]:
    """Run a blocking database call in the loop's thread pool and wait for its end even when
    this task is cancelled meanwhile: (result, whether a cancel arrived and was held back).

    ``asyncio.to_thread`` gives up on a cancel: a call still queued for a thread is then
    never run (a run's outcome never written), and a call already running is not waited
    for (a claim inserted whose id nobody gets). The caller acts on the held-back cancel
    once the database knows where the run stands.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    future = loop.run_in_executor(None, functools.partial(context.run, call, *args))
    cancelled = False
    while True:
        try:
            return await asyncio.shield(future), cancelled
        except asyncio.CancelledError:
            if future.cancelled():  # the pool itself is gone: nothing left to wait for
                raise
            cancelled = True


@dataclass(frozen=True)
class RunResult:
    job: str
    node: str
    scheduled_for: datetime
    outcome: str  # ok | failed | interrupted | unavailable | claimed-elsewhere
    summary: str


class JobRunner:
    """Runs a job by name, once per scheduled time across every node sharing the database."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        mailer: Mailer | None,
        *,
        node: str,
        specs: Sequence[JobSpec] = JOBS,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.mailer = mailer
        self.node = node
        self.specs = tuple(specs)

    def spec(self, name: str) -> JobSpec:
        spec = find_spec(name, self.specs)
        if spec is None:
            known = ", ".join(s.name for s in self.specs)
            raise NotFoundError(f"no job {name!r} (jobs: {known})")
        return spec

    async def run_now(self, name: str, *, now: datetime | None = None) -> RunResult:
        """Run at once (``mailsvc jobs run``); recorded with scheduled_for = now.
        Raises :class:`JobUnavailable` when the job's module is not installed."""
        spec = self.spec(name)
        function = load_function(spec.target)
        return await self._run(spec, function, now or datetime.now(UTC), manual=True)

    async def run_scheduled(self, name: str, scheduled_for: datetime) -> RunResult:
        """Run the scheduled occurrence unless another node has claimed it."""
        spec = self.spec(name)
        try:
            function = load_function(spec.target)
        except JobUnavailable as exc:
            log.warning("job %s skipped at %s: %s", name, scheduled_for.isoformat(), exc)
            return RunResult(name, self.node, scheduled_for, UNAVAILABLE, str(exc))
        return await self._run(spec, function, scheduled_for, manual=False)

    async def _run(
        self, spec: JobSpec, function: Any, scheduled_for: datetime, *, manual: bool
    ) -> RunResult:
        key = claim_key(spec.name, self.node if spec.scope == "node" else None)
        claim = functools.partial(claim_run, manual=manual)
        run_id, cancelled = await _in_thread(claim, self.sessions, key, scheduled_for, self.node)
        if run_id is None:
            if cancelled:
                raise asyncio.CancelledError
            log.info("job %s at %s: claimed by another node", spec.name, scheduled_for.isoformat())
            return RunResult(spec.name, self.node, scheduled_for, CLAIMED_ELSEWHERE, "")
        if cancelled:
            outcome, summary = INTERRUPTED, "stopped before it started"
        else:
            log.info("job %s started on %s (%s)", spec.name, self.node, scheduled_for.isoformat())
            outcome, summary, cancelled = await self._call(spec, function, run_id, scheduled_for)
        _, late = await _in_thread(finish_run, self.sessions, run_id, outcome, summary)
        log.info("job %s %s on %s: %s", spec.name, outcome, self.node, summary)
        if cancelled or late:
            raise asyncio.CancelledError
        return RunResult(spec.name, self.node, scheduled_for, outcome, summary)

    async def _call(
        self, spec: JobSpec, function: Any, run_id: int, scheduled_for: datetime
    ) -> tuple[str, str, bool]:
        """Call the job function while beating its claim: (outcome, summary, cut off)."""
        ctx = JobContext(self.settings, self.sessions, self.mailer, scheduled_for)
        heartbeat = asyncio.create_task(self._beat(run_id), name=f"heartbeat of job run {run_id}")
        try:
            return "ok", str(await function(ctx)), False
        except asyncio.CancelledError:
            return INTERRUPTED, "stopped before it finished", True
        except Exception as exc:  # boundary: one job's failure never stops the scheduler
            log.exception("job %s failed", spec.name)
            return "failed", f"{type(exc).__name__}: {exc}", False
        finally:
            heartbeat.cancel()

    async def _beat(self, run_id: int) -> None:
        """Refresh the claim every ``heartbeat_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.jobs.heartbeat_seconds)
            try:
                await asyncio.to_thread(beat, self.sessions, run_id)
            except Exception:  # boundary: a missed beat is retried; the job goes on
                log.warning("job run %s: heartbeat not recorded", run_id, exc_info=True)


class ClaimingExecutor(AsyncIOExecutor):
    """Hands each due run, with its scheduled time, to :class:`JobRunner`. Its shutdown
    (inherited) cancels the runs still going: :class:`JobRunner` records them interrupted."""

    def __init__(self, runner: JobRunner) -> None:
        super().__init__()
        self.runner = runner

    def running(self) -> set[asyncio.Future[Any]]:
        """The runs submitted and not finished yet."""
        return {future for future in self._pending_futures if not future.done()}

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        async def run() -> list[JobExecutionEvent]:
            events = []
            for run_time in run_times:
                result = await self.runner.run_scheduled(job.id, run_time)
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time, retval=result
                    )
                )
            return events

        def done(future: asyncio.Future[list[JobExecutionEvent]]) -> None:
            self._pending_futures.discard(future)
            if future.cancelled():
                self._run_job_success(job.id, [])
            elif future.exception() is not None:
                exc = future.exception()
                assert exc is not None
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        task = self._eventloop.create_task(run())
        task.add_done_callback(done)
        self._pending_futures.add(task)


class JobScheduler:
    """The running schedule of one node (started by ``App`` when ``jobs.enabled``)."""

    def __init__(self, runner: JobRunner, database_url: str) -> None:
        self.runner = runner
        self.database_url = database_url
        self.scheduler: AsyncIOScheduler | None = None
        self._executor: ClaimingExecutor | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        store_engine = make_engine(self.database_url)  # disposed by the store on shutdown
        executor = ClaimingExecutor(self.runner)
        scheduler = AsyncIOScheduler(
            timezone=VIETNAM,
            jobstores={
                CLUSTER_STORE: SQLAlchemyJobStore(engine=store_engine, tablename=STORE_TABLE),
                NODE_STORE: MemoryJobStore(),
            },
            executors={"default": executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.start(paused=True)
        try:
            await asyncio.to_thread(self._reconcile, scheduler)
            await asyncio.to_thread(self._reap)
        except BaseException:
            scheduler.shutdown(wait=False)
            raise
        self.scheduler, self._executor = scheduler, executor
        self._reaper = asyncio.create_task(self._reap_periodically(), name="stale job runs")
        scheduler.resume()
        log.info("scheduler started on %s: %s", self.runner.node, self.describe())

    def _reap(self) -> None:
        """Record interrupted the claims of nodes that died while running a job."""
        jobs = self.runner.settings.jobs
        before = datetime.now(UTC) - timedelta(seconds=jobs.stale_after_seconds)
        for run in reap_stale(self.runner.sessions, before):
            log.warning(
                "job %s (%s) was left running by node %s, silent since %s: recorded interrupted",
                run.job,
                run.scheduled_for.isoformat(),
                run.node,
                run.heartbeat_at.isoformat(),
            )

    async def _reap_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.runner.settings.jobs.heartbeat_seconds)
            try:
                await asyncio.to_thread(self._reap)
            except Exception:  # boundary: the database may be down for a while
                log.warning("stale job runs not checked", exc_info=True)

    def _reconcile(self, scheduler: AsyncIOScheduler) -> None:
        """Make the stores match the catalog without resetting stored next run times."""
        settings = self.runner.settings
        names = set()
        for spec in self.runner.specs:
            schedule = spec.schedule(settings)
            options: dict[str, Any] = {"id": spec.name, "name": spec.name, "args": (spec.name,)}
            if spec.scope == "node":
                if spec.at_start:
                    options["next_run_time"] = datetime.now(VIETNAM)
                scheduler.add_job(scheduled_job, schedule.trigger, jobstore=NODE_STORE, **options)
                continue
            names.add(spec.name)
            existing = scheduler.get_job(spec.name, jobstore=CLUSTER_STORE)
            if existing is None:
                try:
                    scheduler.add_job(
                        scheduled_job, schedule.trigger, jobstore=CLUSTER_STORE, **options
                    )
                except ConflictingIdError:  # another node added it a moment ago
                    pass
            elif str(existing.trigger) != str(schedule.trigger):
                log.info("job %s: schedule changed to %s", spec.name, schedule.text)
                scheduler.reschedule_job(spec.name, CLUSTER_STORE, schedule.trigger)
        for job in scheduler.get_jobs(jobstore=CLUSTER_STORE):
            if job.id not in names:
                log.info("job %s: no longer in the catalog; removed from the job store", job.id)
                job.remove()

    def describe(self) -> str:
        if self.scheduler is None:
            return "not started"
        return ", ".join(
            f"{job.id} next {job.next_run_time.isoformat() if job.next_run_time else '-'}"
            for job in self.scheduler.get_jobs()
        )

    async def stop(self) -> None:
        """Start no new run; wait up to ``[jobs] stop_grace_seconds`` for the running ones
        to finish, then cut off the rest, which are recorded interrupted. Returns once
        every run of this node has its outcome written (or, if the database does not
        answer, after ``RECORDING_SECONDS`` more: those claims are recorded interrupted
        later, once stale, by any node's scheduler)."""
        scheduler, executor = self.scheduler, self._executor
        if scheduler is None or executor is None or not scheduler.running:
            return
        self._executor = None  # a second call returns at once
        grace = self.runner.settings.jobs.stop_grace_seconds
        scheduler.pause()
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.wait([self._reaper])
        running = executor.running()
        if running:
            log.info(
                "scheduler stopping on %s: waiting up to %gs for %d running job(s)",
                self.runner.node,
                grace,
                len(running),
            )
            _, running = await asyncio.wait(running, timeout=grace)
        scheduler.shutdown(wait=False)  # cancels the runs still going
        if running:
            log.warning(
                "scheduler on %s: %d job(s) still running after %gs: cut off",
                self.runner.node,
                len(running),
                grace,
            )
            _, unrecorded = await asyncio.wait(running, timeout=RECORDING_SECONDS)
            if unrecorded:
                log.error(
                    "scheduler on %s: %d cut-off job(s) not recorded; a scheduler records "
                    "them interrupted once [jobs] stale_after_seconds have passed",
                    self.runner.node,
                    len(unrecorded),
                )
