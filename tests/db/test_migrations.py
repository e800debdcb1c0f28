"""Migrations upgrade a database that holds rows written by the previous release.

perf_0001 (``message_signature``): a database at exchange_0001 with messages whose stored
verdicts record signatures is upgraded; every signature gets its row, fingerprints in
their column (lower-case hex without colons), and the mailbox checks find the priority
message by it. jobs_0002 (``job_run.heartbeat_at``): existing runs get their end (or start)
time, so a run an older release left ``running`` is found stale and recorded interrupted.
SQLite, or PostgreSQL with MAILSVC_TEST_DATABASE."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select, text

from mailsvc.checks.compliance import evaluate
from mailsvc.checks.policy import PriorityPolicy, load_checking_policy
from mailsvc.db.base import UtcDateTime
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import alembic_config, make_engine, make_sessionmaker, migrate
from mailsvc.jobs.models import JobRun
from mailsvc.jobs.runs import reap_stale
from mailsvc.signatures.models import MessageSignature
from mailsvc.web.workspace.signatures import stored_signatures
from tests.checks.builders import CLERK, local
from tests.conftest import PG_ADMIN_URL, _create_pg_database, _drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
PRIORITY = "5f" * 32
OTHER = "30" * 32


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all."""
    if PG_ADMIN_URL:
        name, url = _create_pg_database(PG_ADMIN_URL)
        try:
            yield url
        finally:
            _drop_pg_database(PG_ADMIN_URL, name)
    else:
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"


def stored_verdict(*documents: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A verdict as exchange_0001's release stored it (Finding.summary with evidence)."""
    findings: list[dict[str, Any]] = [
        {"stage": "antivirus", "status": "pass", "reason": "clean", "detail": "", "score": 0.0,
         "evidence": {}},
    ]  # fmt: skip
    for document, signatures in documents:
        findings.append(
            {
                "stage": "signatures",
                "status": "pass",
                "reason": "signed",
                "detail": f"{document}: ok",
                "score": 0.0,
                "evidence": {
                    "document": document,
                    "outcome": "valid",
                    "sender_agency": "000.00.32.H56",
                    "signer_matches_sender": True,
                    "signatures": signatures,
                },
            }
        )
    return {"queue_id": "Q", "action": "deliver", "deciding": None, "findings": findings}


def signature(fingerprint: str, kind: str = "personal") -> dict[str, Any]:
    return {
        "format": "pdf",
        "indication": "TOTAL_PASSED",
        "subindication": None,
        "signer": "Nguyễn Văn An",
        "organisation": "Sở Tài chính",
        "kind": kind,
        "serial": "4F2A19",
        "fingerprint": fingerprint,
    }


def test_perf_0001_backfills_signer_fingerprints(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "exchange_0001")
    engine = make_engine(empty_url)
    at = local(2026, 11, 23, 9)
    verdicts = {
        1: stored_verdict(  # two documents; the listed certificate written with colons
            ("35-QD-UBND.pdf", [signature(OTHER), signature(":".join([PRIORITY[:2]] * 32).upper(),
                                                             "organisation")]),
            ("phu-luc.pdf", [signature(OTHER)]),
        ),
        2: stored_verdict(),  # plain mail
        3: {"findings": "not a list"},  # whatever a hand-edited row may hold
        4: stored_verdict(("cv.pdf", [signature(OTHER)])),
    }  # fmt: skip
    # The message table is the same at exchange_0001 as now: its model writes the rows.
    with engine.begin() as conn:
        conn.execute(
            insert(MessageRecord),
            [
                {
                    "id": record_id,
                    "queue_id": f"Q{record_id}",
                    "message_key": f"{record_id:064d}",
                    "message_id": f"<{record_id}@sotc.example.gov.vn>",
                    "sha256": f"{record_id:064d}",
                    "size": 100,
                    "mail_from": "vanthu@sotc.example.gov.vn",
                    "recipient": CLERK,
                    "direction": "inbound",
                    "received_at": at,
                    "action": "deliver",
                    "verdict": verdict,
                    "state": "delivered",
                }
                for record_id, verdict in verdicts.items()
            ],
        )
    engine.dispose()

    migrate(empty_url)

    engine = make_engine(empty_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            version = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
            rows = session.scalars(
                select(MessageSignature).order_by(
                    MessageSignature.message_record_id, MessageSignature.position
                )
            ).all()
            shown = stored_signatures(session, 1)
            policy = load_checking_policy(ROOT / "policies" / "checking.yaml").model_copy(
                update={"priority": PriorityPolicy(certificates=(PRIORITY,))}
            )
            [day] = evaluate(
                session, policy, date(2026, 11, 23), date(2026, 11, 23),
                mailboxes=[CLERK], now=local(2026, 11, 23, 17),
            )  # fmt: skip
    finally:
        engine.dispose()
    assert version == ScriptDirectory.from_config(alembic_config(empty_url)).get_current_head()
    assert [(r.message_record_id, r.position, r.document, r.fingerprint) for r in rows] == [
        (1, 0, "35-QD-UBND.pdf", OTHER),
        (1, 1, "35-QD-UBND.pdf", PRIORITY),
        (1, 2, "phu-luc.pdf", OTHER),
        (4, 0, "cv.pdf", OTHER),
    ]
    assert [(s.kind, s.signer, s.indication, s.subindication) for s in shown[:2]] == [
        ("personal", "Nguyễn Văn An", "TOTAL_PASSED", ""),
        ("organisation", "Nguyễn Văn An", "TOTAL_PASSED", ""),
    ]
    assert [p.record_id for p in day.priority] == [1]


def test_jobs_0002_gives_existing_runs_a_heartbeat(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "perf_0001")
    started = datetime(2026, 11, 21, 18, 30, tzinfo=UTC)
    finished = started + timedelta(minutes=4)
    times = ("scheduled_for", "started_at", "finished_at")
    old_job_run = sa.table(  # job_run as perf_0001 has it
        "job_run",
        *(sa.column(name) for name in ("job", "node", "manual", "outcome", "summary")),
        *(sa.column(name, UtcDateTime()) for name in times),
    )
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            insert(old_job_run),
            [
                {"job": "backup", "node": "a", "manual": False, "outcome": "ok", "summary": "done",
                 "scheduled_for": started, "started_at": started, "finished_at": finished},
                # Left running by a node stopped in the middle (the old release's race).
                {"job": "compliance-alerts", "node": "a", "manual": False, "outcome": "running",
                 "summary": "", "scheduled_for": started, "started_at": started,
                 "finished_at": None},
            ],
        )  # fmt: skip
    engine.dispose()

    migrate(empty_url)

    engine = make_engine(empty_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            rows = session.execute(select(JobRun.job, JobRun.heartbeat_at))
            heartbeats = {job: at for job, at in rows}
        reaped = reap_stale(sessions, datetime.now(UTC) - timedelta(minutes=5))
        with sessions() as session:
            rows = session.execute(select(JobRun.job, JobRun.outcome))
            outcomes = {job: outcome for job, outcome in rows}
    finally:
        engine.dispose()
    assert heartbeats == {"backup": finished, "compliance-alerts": started}
    assert [r.job for r in reaped] == ["compliance-alerts"]
    assert outcomes == {"backup": "ok", "compliance-alerts": "interrupted"}
