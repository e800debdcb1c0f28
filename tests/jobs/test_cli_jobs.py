"""`mailsvc jobs list | run` against a real database (no server running)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.cli import main
from mailsvc.config import Settings
from mailsvc.db.models import AuthFailure
from mailsvc.jobs.catalog import JOBS, unavailable_reason
from mailsvc.jobs.models import JobRun


@pytest.fixture
def home(settings: Settings) -> Path:
    return settings.home


def cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


def test_list_shows_every_job_with_schedule_next_run_and_availability(home: Path) -> None:
    result = cli(home, "jobs", "list", "--json")
    assert result.exit_code == 0, result.output
    views = {v["name"]: v for v in json.loads(result.output)}
    assert list(views) == [s.name for s in JOBS]
    assert views["quarterly-statistics"]["schedule"] == "quarterly, day 1 07:00"
    assert views["quarterly-statistics"]["next_run"].endswith("-01T07:00:00+07:00")
    assert views["overdue-reminders"]["schedule"] == "daily 07:30"
    assert views["backup"]["schedule"] == "daily 01:30"
    assert views["crl-refresh"]["scope"] == "node"
    for spec in JOBS:
        view = views[spec.name]
        assert view["available"] == (unavailable_reason(spec) == "")
        assert view["last_run"] is None and view["in_job_store"] is False
        assert view["next_run"].endswith("+07:00")

    table = cli(home, "jobs", "list")
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == [
        "JOB", "SCHEDULE", "NEXT", "RUN", "STATE", "LAST", "RUN", "NODE", "OUTCOME", "SUMMARY"
    ]  # fmt: skip
    for spec in JOBS:
        reason = unavailable_reason(spec)
        if reason:  # listed as unavailable with the reason; `run` refuses with exit code 2
            assert f"unavailable: {spec.name}: {reason}" in table.output
            refused = cli(home, "jobs", "run", spec.name)
            assert refused.exit_code == 2
            assert f"job {spec.name} is not available on this node: {reason}" in refused.output
        else:
            [line] = [x for x in table.output.splitlines() if x.startswith(spec.name + " ")]
            assert " ready" in line


def test_run_unknown_job_exits_2(home: Path) -> None:
    result = cli(home, "jobs", "run", "vacuum")
    assert result.exit_code == 2
    assert "no job 'vacuum' (jobs: crl-refresh, clamav-update, backup" in result.output


def test_run_retention_purge_records_the_run_and_list_shows_it(
    home: Path, sessions: sessionmaker[Session], settings: Settings
) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=settings.jobs.auth_failure_retention_days + 1)
    with sessions.begin() as session:
        for account, at in (("a@x", old), ("b@x", now)):
            session.add(
                AuthFailure(
                    account=account, client_ip="10.0.0.1", first_failed_at=at, last_failed_at=at
                )
            )
        session.add_all(
            [
                JobRun(
                    job="overdue-reminders",
                    scheduled_for=now - timedelta(days=500),
                    node="old-node",
                    started_at=now - timedelta(days=500),
                    finished_at=now - timedelta(days=500),
                    outcome="ok",
                    summary="",
                ),
            ]
        )
    result = cli(home, "jobs", "run", "retention-purge")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "retention-purge: ok: 1 job runs; 0 overdue reminders; 1 failed-login rows purged" in (
        result.output
    )
    with sessions() as session:
        assert session.scalars(select(AuthFailure.account)).all() == ["b@x"]
        [run] = session.scalars(select(JobRun)).all()
    assert run.job == "retention-purge" and run.manual and run.node.endswith("/cli")
    assert run.outcome == "ok"

    listing = cli(home, "jobs", "list", "--json")
    [view] = [v for v in json.loads(listing.output) if v["name"] == "retention-purge"]
    assert view["last_run"]["outcome"] == "ok"
    assert view["last_run"]["node"] == run.node
    assert view["last_run"]["started_at"].endswith("+07:00")
    assert view["last_run"]["summary"].startswith("1 job runs")


def test_run_without_dovecot_says_no_mail_was_sent(home: Path) -> None:
    result = cli(home, "jobs", "run", "overdue-reminders")
    assert result.exit_code == 0
    assert "LMTP socket is missing" in result.output
    assert ": 0 overdue entries not reminded (no mailer)" in result.output
