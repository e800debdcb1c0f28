"""JobRunner: the claim makes a scheduled run happen once across nodes; outcomes recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.jobs.catalog import JobSpec, JobUnavailable, every
from mailsvc.jobs.models import JobRun
from mailsvc.jobs.scheduler import CLAIMED_ELSEWHERE, UNAVAILABLE, JobRunner
from tests.jobs import sample_jobs

SPECS = (
    JobSpec("count", "tests.jobs.sample_jobs:counting_job", "counts", lambda s: every(1)),
    JobSpec("fail", "tests.jobs.sample_jobs:failing_job", "fails", lambda s: every(1)),
    JobSpec("missing", "mailsvc.not_written_yet:some_job", "absent", lambda s: every(1)),
    JobSpec(
        "per-node",
        "tests.jobs.sample_jobs:counting_job",
        "node job",
        lambda s: every(1),
        scope="node",
    ),
)


def runs(sessions: sessionmaker[Session]) -> list[JobRun]:
    with sessions() as session:
        return list(session.scalars(select(JobRun).order_by(JobRun.id)))


async def test_two_nodes_claiming_the_same_scheduled_run_execute_it_once(
    settings: Settings, sessions: sessionmaker[Session], db_url: str
) -> None:
    # Each node has its own engine (as separate processes would).
    engines = [make_engine(db_url) for _ in range(2)]
    try:
        nodes = [
            JobRunner(settings, make_sessionmaker(e), None, node=n, specs=SPECS)
            for e, n in zip(engines, ("node-a", "node-b"), strict=True)
        ]
        sample_jobs.EXECUTIONS.clear()
        due = datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
        results = await asyncio.gather(*(n.run_scheduled("count", due) for n in nodes))
    finally:
        for engine in engines:
            engine.dispose()
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == [CLAIMED_ELSEWHERE, "ok"]
    assert sample_jobs.EXECUTIONS == [due]
    [row] = runs(sessions)
    winner = next(r for r in results if r.outcome == "ok")
    assert (row.job, row.scheduled_for, row.node) == ("count", due, winner.node)
    assert row.outcome == "ok" and row.summary == f"counted {due.isoformat()}"
    assert row.finished_at is not None and not row.manual


async def test_failure_is_recorded_and_unavailable_job_is_skipped(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    runner = JobRunner(settings, sessions, None, node="node-a", specs=SPECS)
    due = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    failed = await runner.run_scheduled("fail", due)
    assert failed.outcome == "failed" and failed.summary == "RuntimeError: disk full"
    missing = await runner.run_scheduled("missing", due)
    assert missing.outcome == UNAVAILABLE
    assert "mailsvc.not_written_yet is not installed" in missing.summary
    with pytest.raises(JobUnavailable, match="not installed"):
        await runner.run_now("missing")
    [row] = runs(sessions)  # the unavailable job left no claim
    assert (row.job, row.outcome, row.summary) == ("fail", "failed", "RuntimeError: disk full")


async def test_node_jobs_run_on_every_node_and_manual_runs_are_recorded(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    nodes = [JobRunner(settings, sessions, None, node=n, specs=SPECS) for n in ("a", "b")]
    due = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    results = await asyncio.gather(*(n.run_scheduled("per-node", due) for n in nodes))
    assert [r.outcome for r in results] == ["ok", "ok"]
    manual = await nodes[0].run_now("count")
    assert manual.outcome == "ok"
    rows = runs(sessions)
    assert sorted(r.job for r in rows) == ["count", "per-node@a", "per-node@b"]
    [manual_row] = [r for r in rows if r.job == "count"]
    assert manual_row.manual and manual_row.node == "a"
    assert manual_row.scheduled_for == manual.scheduled_for
