"""JobScheduler: the schedule lives in the database, survives restarts, and two nodes
sharing it run each scheduled occurrence once; node jobs (CRL refresh) run at start."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings
from mailsvc.jobs.catalog import JOBS, JobSpec, every, find_spec
from mailsvc.jobs.models import APSCHEDULER_JOBS, JobRun
from mailsvc.jobs.scheduler import CLUSTER_STORE, JobRunner, JobScheduler
from tests.e2e.conftest import wait_for
from tests.jobs import sample_jobs
from tests.jobs.conftest import write_home
from tests.signatures.pki import session_pki

POLICY = Path(__file__).resolve().parents[2] / "policies" / "signature.yaml"


def stored(sessions: sessionmaker[Session]) -> dict[str, float | None]:
    with sessions() as session:
        rows = session.execute(select(APSCHEDULER_JOBS.c.id, APSCHEDULER_JOBS.c.next_run_time))
        return {job_id: ts for job_id, ts in rows}


def runs(sessions: sessionmaker[Session]) -> list[JobRun]:
    with sessions() as session:
        return list(session.scalars(select(JobRun).order_by(JobRun.id)))


def run_node(
    settings: Settings,
    db_url: str,
    name: str,
    specs: tuple[JobSpec, ...],
    started: threading.Barrier,
    stop: threading.Event,
) -> None:
    """One node: its own thread, event loop, engine and scheduler (as a separate process)."""
    from mailsvc.db.session import make_engine, make_sessionmaker

    async def main() -> None:
        engine = make_engine(db_url)
        runner = JobRunner(settings, make_sessionmaker(engine), None, node=name, specs=specs)
        scheduler = JobScheduler(runner, db_url)
        await scheduler.start()
        await asyncio.to_thread(started.wait, 30)
        await asyncio.to_thread(stop.wait, 60)
        await scheduler.stop()  # waits for a run still going and records its outcome
        engine.dispose()

    asyncio.run(main())


async def test_two_nodes_sharing_the_database_run_each_occurrence_once(
    settings: Settings, sessions: sessionmaker[Session], db_url: str
) -> None:
    specs = (
        JobSpec("count", "tests.jobs.sample_jobs:counting_job", "counts", lambda s: every(1 / 60)),
    )
    sample_jobs.EXECUTIONS.clear()
    started, stop = threading.Barrier(3), threading.Event()
    threads = [
        threading.Thread(
            target=run_node, args=(settings, db_url, name, specs, started, stop), daemon=True
        )
        for name in ("node-a", "node-b")
    ]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(started.wait, 30)
    try:
        # Both nodes wake up on every whole second (the interval counts from a fixed anchor).
        await wait_for(lambda: len({r.scheduled_for for r in runs(sessions)}) >= 3, timeout=15)
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 30)
    rows = runs(sessions)
    per_time = Counter(r.scheduled_for for r in rows)
    assert per_time and max(per_time.values()) == 1  # one claim per scheduled time
    assert Counter(sample_jobs.EXECUTIONS) == per_time  # one execution per claim
    # A run still going when the nodes stop is waited for: none is left running (or lost).
    assert {r.outcome for r in rows} == {"ok"}
    assert all(r.finished_at is not None for r in rows)
    assert {r.node for r in rows} <= {"node-a", "node-b"}
    assert list(stored(sessions)) == ["count"]  # one shared schedule, not one per node


async def test_schedule_is_kept_in_the_database_across_restarts(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    settings = write_home(tmp_path / "home", db_url, '[backup]\ndaily_at = "01:30"\n')
    cluster = tuple(s for s in JOBS if s.scope == "cluster")
    scheduler = JobScheduler(JobRunner(settings, sessions, None, node="a", specs=cluster), db_url)
    await scheduler.start()
    assert scheduler.scheduler is not None
    backup = scheduler.scheduler.get_job("backup", jobstore=CLUSTER_STORE)
    assert backup is not None and backup.next_run_time is not None
    assert backup.next_run_time.utcoffset() == timedelta(hours=7)
    assert (backup.next_run_time.hour, backup.next_run_time.minute) == (1, 30)
    await scheduler.stop()
    first = stored(sessions)
    assert sorted(first) == sorted(s.name for s in cluster)
    quarterly = datetime.fromtimestamp(first["quarterly-statistics"] or 0, UTC)
    assert quarterly.astimezone(backup.next_run_time.tzinfo).day == 1

    # A restart finds the jobs in the database and keeps their next run times.
    scheduler = JobScheduler(JobRunner(settings, sessions, None, node="b", specs=cluster), db_url)
    await scheduler.start()
    await scheduler.stop()
    assert stored(sessions) == first

    # A changed schedule is rescheduled; a job gone from the catalog leaves the store.
    settings = write_home(tmp_path / "home", db_url, '[backup]\ndaily_at = "02:45"\n')
    fewer = tuple(s for s in cluster if s.name != "compliance-alerts")
    scheduler = JobScheduler(JobRunner(settings, sessions, None, node="c", specs=fewer), db_url)
    await scheduler.start()
    assert scheduler.scheduler is not None
    backup = scheduler.scheduler.get_job("backup", jobstore=CLUSTER_STORE)
    assert backup is not None and (backup.next_run_time.hour, backup.next_run_time.minute) == (
        2,
        45,
    )
    await scheduler.stop()
    after = stored(sessions)
    assert "compliance-alerts" not in after
    assert after["quarterly-statistics"] == first["quarterly-statistics"]
    assert after["backup"] != first["backup"]


async def test_crl_refresh_runs_on_each_node_at_start(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    pki = session_pki()
    home = tmp_path / "home"
    source = home / "crl-src"
    source.mkdir(parents=True)
    for crl in pki.crl_dir.glob("*.crl"):
        shutil.copy(crl, source / crl.name)
    names = sorted(p.name for p in source.iterdir())
    policies = tmp_path / "policies"
    policies.mkdir()
    text = POLICY.read_text(encoding="utf-8")
    sources = "".join(f"\n  - crl-src/{n}" for n in names)
    (policies / "signature.yaml").write_text(
        text.replace("crl_sources: []", f"crl_sources:{sources}"), encoding="utf-8"
    )
    settings = write_home(home, db_url, f'[paths]\npolicies = "{policies}"\n')
    spec = find_spec("crl-refresh")
    assert spec is not None and spec.scope == "node"
    assert spec.schedule(settings).text == "every 360 min"
    scheduler = JobScheduler(JobRunner(settings, sessions, None, node="a", specs=(spec,)), db_url)
    await scheduler.start()
    try:
        await wait_for(lambda: any(r.outcome == "ok" for r in runs(sessions)))
    finally:
        await scheduler.stop()
    [row] = runs(sessions)
    assert row.job == "crl-refresh@a"
    assert row.summary == f"{len(names)} of {len(names)} CRL sources refreshed"
    assert len(list((home / "crl").iterdir())) == len(names)
    assert stored(sessions) == {}  # node jobs are not in the shared store


def test_a_sent_message_counts_as_a_document_only_when_it_carries_one() -> None:
    from mailsvc.register.statistics import carries_document

    plain = {"findings": [
        {"stage": "metadata", "status": "none", "reason": "not-an-official-document"},
        {"stage": "signatures", "status": "none", "reason": "no-documents"},
    ]}  # fmt: skip
    recognised = {
        "findings": [{"stage": "metadata", "status": "pass", "reason": "document-metadata"}]
    }
    signed = {"findings": [{"stage": "signatures", "status": "pass", "reason": "valid"}]}
    assert not carries_document(plain) and not carries_document({}) and not carries_document(None)
    assert carries_document(recognised) and carries_document(signed)
