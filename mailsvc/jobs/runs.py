"""The job-run table: claiming a scheduled run, recording its outcome, reading the last runs.

A claim is one INSERT into ``job_run`` in its own transaction; the unique constraint on
(job, scheduled_for) lets exactly one node win on SQLite and PostgreSQL alike. While the
run goes on its node refreshes the claim's heartbeat (:func:`beat`); a ``running`` claim
whose heartbeat stopped belongs to a node that died, and :func:`reap_stale` records it
``interrupted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.base import utcnow
from mailsvc.db.session import reading
from mailsvc.jobs.models import JobRun

SUMMARY_LIMIT = 2000
RUNNING = "running"
INTERRUPTED = "interrupted"


def claim_run(
    sessions: sessionmaker[Session],
    job: str,
    scheduled_for: datetime,
    node: str,
    *,
    manual: bool = False,
) -> int | None:
    """Insert this node's claim on (job, scheduled_for); its id, or None if another has it."""
    now = utcnow()
    try:
        with sessions.begin() as session:
            run = JobRun(
                job=job,
                scheduled_for=scheduled_for,
                node=node,
                manual=manual,
                started_at=now,
                heartbeat_at=now,
                outcome=RUNNING,
                summary="",
            )
            session.add(run)
            session.flush()
            return run.id
    except IntegrityError:
        return None


def finish_run(sessions: sessionmaker[Session], run_id: int, outcome: str, summary: str) -> None:
    with sessions.begin() as session:
        session.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(finished_at=utcnow(), outcome=outcome, summary=summary[:SUMMARY_LIMIT])
        )


def beat(sessions: sessionmaker[Session], run_id: int) -> None:
    """Refresh a running claim's heartbeat: its node is alive and the run goes on."""
    with sessions.begin() as session:
        session.execute(
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.outcome == RUNNING)
            .values(heartbeat_at=utcnow())
        )


@dataclass(frozen=True)
class StaleRun:
    id: int
    job: str
    node: str
    scheduled_for: datetime
    heartbeat_at: datetime


def reap_stale(sessions: sessionmaker[Session], before: datetime) -> list[StaleRun]:
    """Record ``interrupted`` every running claim whose heartbeat is older than ``before``
    (its node died: killed, host lost); returns them. A node's clock far behind the others'
    could make its live claims look stale: keep the nodes' clocks synchronised (NTP)."""
    stale_claim = (JobRun.outcome == RUNNING, JobRun.heartbeat_at < before)
    with reading(sessions) as session:  # most of the time there is none: no write at all
        found = [
            StaleRun(r.id, r.job, r.node, r.scheduled_for, r.heartbeat_at)
            for r in session.scalars(select(JobRun).where(*stale_claim).order_by(JobRun.id))
        ]
    reaped = []
    for run in found:
        with sessions.begin() as session:
            result = session.execute(
                update(JobRun)
                .where(JobRun.id == run.id, *stale_claim)  # not if it beat in the meantime
                .values(
                    finished_at=utcnow(),
                    outcome=INTERRUPTED,
                    summary=f"no heartbeat since {run.heartbeat_at.isoformat()}: "
                    f"node {run.node} stopped before the run ended",
                )
            )
            if result.rowcount:  # type: ignore[attr-defined]
                reaped.append(run)
    return reaped


def claim_key(job: str, node: str | None) -> str:
    """The ``job`` column: the job's name, or ``name@node`` for a job every node runs."""
    return f"{job}@{node}" if node else job


def last_runs(session: Session) -> dict[str, JobRun]:
    """The latest run of every job that ever ran, by job name (any node for node jobs)."""
    latest = select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery()
    out: dict[str, JobRun] = {}
    for run in session.scalars(select(JobRun).join(latest, JobRun.id == latest.c.id)):
        name = run.job.partition("@")[0]
        if name not in out or run.id > out[name].id:
            out[name] = run
    return out


def runs_of(session: Session, job: str) -> list[JobRun]:
    return list(session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id)))


def purge_runs(session: Session, before: datetime) -> int:
    """Delete finished runs started before ``before``; returns how many."""
    result = session.execute(
        delete(JobRun).where(JobRun.started_at < before, JobRun.finished_at.is_not(None))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
