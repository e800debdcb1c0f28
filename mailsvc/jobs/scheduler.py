"""The scheduler: APScheduler 3 with its job store in our database, run once across nodes.

- :class:`JobRunner` runs one job by name: it claims the run in ``job_run`` (one row per
  job and scheduled time; the unique constraint lets one node win), builds the
  :class:`JobContext`, calls the job function (imported by dotted path, see
  ``catalog.py``) and records the outcome. A failing job is logged and recorded; the
  scheduler goes on.
- :class:`ClaimingExecutor` is the APScheduler executor that hands each due run to the
  runner with its scheduled time (so every node claims the same key).
- :class:`JobScheduler` keeps the catalog's cluster jobs in the shared SQLAlchemy job
  store (``apscheduler_jobs``; added when missing, rescheduled when the schedule changed,
  never reset on restart so a run missed while down still happens) and node jobs in
  memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
from mailsvc.jobs.runs import claim_key, claim_run, finish_run
from mailsvc.outbound.mailer import Mailer
from mailsvc.time import VIETNAM

log = logging.getLogger(__name__)

STORE_TABLE = "apscheduler_jobs"
CLUSTER_STORE = "default"
NODE_STORE = "node"
CLAIMED_ELSEWHERE = "claimed-elsewhere"
UNAVAILABLE = "unavailable"


def node_name(settings: Settings) -> str:
    return settings.jobs.node or f"{socket.gethostname()}:{os.getpid()}"


async def scheduled_job(name: str) -> None:
    """The function the job store records for every job; ClaimingExecutor runs the real one
    (by name, through JobRunner), so stored jobs never depend on optional modules."""
    raise MailsvcError(f"job {name} runs through mailsvc.jobs.scheduler.ClaimingExecutor")


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
        run_id = await asyncio.to_thread(
            claim_run, self.sessions, key, scheduled_for, self.node, manual=manual
        )
        if run_id is None:
            log.info("job %s at %s: claimed by another node", spec.name, scheduled_for.isoformat())
            return RunResult(spec.name, self.node, scheduled_for, CLAIMED_ELSEWHERE, "")
        log.info("job %s started on %s (%s)", spec.name, self.node, scheduled_for.isoformat())
        ctx = JobContext(self.settings, self.sessions, self.mailer, scheduled_for)
        try:
            summary = str(await function(ctx))
            outcome = "ok"
        except asyncio.CancelledError:
            finish_run(self.sessions, run_id, "interrupted", "stopped before it finished")
            raise
        except Exception as exc:  # boundary: one job's failure never stops the scheduler
            log.exception("job %s failed", spec.name)
            outcome, summary = "failed", f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(finish_run, self.sessions, run_id, outcome, summary)
        log.info("job %s %s on %s: %s", spec.name, outcome, self.node, summary)
        return RunResult(spec.name, self.node, scheduled_for, outcome, summary)


class ClaimingExecutor(AsyncIOExecutor):
    """Hands each due run, with its scheduled time, to :class:`JobRunner`."""

    def __init__(self, runner: JobRunner) -> None:
        super().__init__()
        self.runner = runner

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

    async def start(self) -> None:
        store_engine = make_engine(self.database_url)  # disposed by the store on shutdown
        scheduler = AsyncIOScheduler(
            timezone=VIETNAM,
            jobstores={
                CLUSTER_STORE: SQLAlchemyJobStore(engine=store_engine, tablename=STORE_TABLE),
                NODE_STORE: MemoryJobStore(),
            },
            executors={"default": ClaimingExecutor(self.runner)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.start(paused=True)
        try:
            await asyncio.to_thread(self._reconcile, scheduler)
        except BaseException:
            scheduler.shutdown(wait=False)
            raise
        self.scheduler = scheduler
        scheduler.resume()
        log.info("scheduler started on %s: %s", self.runner.node, self.describe())

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

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
