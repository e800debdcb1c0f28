"""``mailsvc jobs``: the scheduled jobs, their next and last runs; run one now.

``jobs run NAME`` runs the job in this process, recorded in ``job_run`` like a scheduled
run (scheduled_for = now). Mail it writes goes to the running Dovecot over its LMTP
socket (local mailboxes) or to the configured relay; without the socket, no mail.
Exit codes: 0 done, 1 the job failed, 2 unknown or unavailable job.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.app import split_hostport
from mailsvc.cli import Context
from mailsvc.cli.console import echo_json, echo_table, json_option, open_database, open_session
from mailsvc.config import Settings
from mailsvc.directory import DbDirectory
from mailsvc.jobs.catalog import JOBS, find_spec, unavailable_reason
from mailsvc.jobs.models import APSCHEDULER_JOBS, JobRun
from mailsvc.jobs.runs import last_runs
from mailsvc.jobs.scheduler import JobRunner, RunResult, node_name
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.outbound.dkim import DkimSigner
from mailsvc.outbound.mailer import Mailer, SmtpRelay

pass_ctx = click.make_pass_decorator(Context)

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 2


def _run_view(run: JobRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "node": run.node,
        "manual": run.manual,
        "scheduled_for": run.scheduled_for,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "outcome": run.outcome,
        "summary": run.summary,
    }


def job_views(session: Session, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Every job of the catalog with its schedule, next run and last run (JSON-ready)."""
    stored = {
        job_id: datetime.fromtimestamp(ts, UTC) if ts is not None else None
        for job_id, ts in session.execute(
            select(APSCHEDULER_JOBS.c.id, APSCHEDULER_JOBS.c.next_run_time)
        )
    }
    last = last_runs(session)
    views = []
    for spec in JOBS:
        schedule = spec.schedule(settings)
        if spec.name in stored:
            next_run = stored[spec.name]
        else:  # not in the shared store yet (serve never ran), or a job of every node
            next_run = schedule.trigger.get_next_fire_time(None, now)
        text = schedule.text + (", on every node" if spec.scope == "node" else "")
        reason = unavailable_reason(spec)
        views.append(
            {
                "name": spec.name,
                "description": spec.description,
                "schedule": text,
                "scope": spec.scope,
                "available": not reason,
                "unavailable_reason": reason,
                "in_job_store": spec.name in stored,
                "next_run": next_run,
                "last_run": _run_view(last.get(spec.name)),
            }
        )
    return views


def build_mailer(settings: Settings, sessions: sessionmaker[Session]) -> Mailer | None:
    """A Mailer queueing into the outbound queue, which the running server delivers (over
    its Dovecot's LMTP socket, or the relay); None when no server has ever run here."""
    lmtp_path = DovecotService(settings).lmtp_path
    if not lmtp_path.exists():
        return None
    key = settings.path(settings.dkim.key)
    signer = (
        DkimSigner(key.read_bytes(), settings.dkim.selector, settings.server.domain)
        if key.exists()
        else None
    )
    directory = DbDirectory(sessions, local_domains=(settings.server.domain,))
    relay = settings.outbound.relay
    return Mailer(
        LmtpClient(lmtp_path),
        is_local_domain=directory.is_local_domain,
        relay=SmtpRelay(*split_hostport(relay)) if relay else None,
        signer=signer,
        sessions=sessions,
    )


async def run_job(
    settings: Settings, sessions: sessionmaker[Session], name: str
) -> tuple[RunResult, bool]:
    """Run ``name`` now in this process; (result, whether mail could be sent)."""
    mailer = build_mailer(settings, sessions)
    runner = JobRunner(settings, sessions, mailer, node=f"{node_name(settings)}/cli")
    try:
        return await runner.run_now(name), mailer is not None
    finally:
        if mailer is not None and isinstance(mailer.local, LmtpClient):
            await mailer.local.close()


@click.group("jobs")
def jobs_group() -> None:
    """Scheduled jobs: schedule, next and last runs; run one now."""


@jobs_group.command("list")
@json_option
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """Each job: schedule, next run (+07:00), last run (node, outcome, summary)."""
    with open_session(ctx) as session:
        views = job_views(session, ctx.settings, datetime.now(UTC))
    if as_json:
        echo_json(views, ctx)
        return
    rows = []
    for view in views:
        last = view["last_run"] or {}
        rows.append(
            {
                "name": view["name"],
                "schedule": view["schedule"],
                "next": view["next_run"],
                "state": "ready" if view["available"] else "unavailable",
                "last": last.get("started_at"),
                "node": last.get("node", ""),
                "outcome": last.get("outcome", ""),
                "summary": last.get("summary", ""),
            }
        )
    echo_table(
        rows,
        (
            ("name", "JOB"),
            ("schedule", "SCHEDULE"),
            ("next", "NEXT RUN"),
            ("state", "STATE"),
            ("last", "LAST RUN"),
            ("node", "NODE"),
            ("outcome", "OUTCOME"),
            ("summary", "SUMMARY"),
        ),
        ctx,
    )
    for view in views:
        if not view["available"]:
            click.echo(f"unavailable: {view['name']}: {view['unavailable_reason']}")


@jobs_group.command("run")
@click.argument("name")
@json_option
@pass_ctx
def run_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Run job NAME now in this process and print its summary."""
    spec = find_spec(name)
    if spec is None:
        known = ", ".join(s.name for s in JOBS)
        click.echo(f"error: no job {name!r} (jobs: {known})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    reason = unavailable_reason(spec)
    if reason:
        click.echo(f"error: job {name} is not available on this node: {reason}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    with open_database(ctx) as sessions:
        result, can_mail = asyncio.run(run_job(ctx.settings, sessions, name))
    if not can_mail:
        click.echo(
            "note: Dovecot's LMTP socket is missing (is `mailsvc serve` running?); "
            "no mail was delivered",
            err=True,
        )
    if as_json:
        echo_json(
            {
                "job": result.job,
                "node": result.node,
                "scheduled_for": result.scheduled_for,
                "outcome": result.outcome,
                "summary": result.summary,
                "mail_delivered": can_mail,
            },
            ctx,
        )
    else:
        click.echo(f"{result.job}: {result.outcome}: {result.summary}")
    if result.outcome != "ok":
        sys.exit(EXIT_FAILED)


def register(group: click.Group) -> None:
    group.add_command(jobs_group)
