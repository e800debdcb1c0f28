"""Housekeeping jobs: the CRL cache and the retention purge (records, and spam in Junk)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import delete, or_, select

from mailsvc.app import policies_dir
from mailsvc.db.models import AuthFailure, Mailbox
from mailsvc.errors import DependencyError
from mailsvc.jobs.catalog import JobUnavailable, load_function
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.models import OverdueReminder
from mailsvc.jobs.runs import purge_runs
from mailsvc.mailboxes.junk import purge_junk
from mailsvc.signatures.crl import refresh_crls
from mailsvc.signatures.policy import load_signature_policy
from mailsvc.signatures.sources import all_crl_sources

log = logging.getLogger(__name__)

# The mailbox-check records (issue 6, another module) have their own purge; called if present.
CHECKS_PURGE = "mailsvc.checks.records:purge_checks_job"


async def crl_refresh_job(ctx: JobContext) -> str:
    """Fetch every CRL (policy's crl_sources and `mailsvc trust crl add`) into HOME/crl."""
    settings = ctx.settings
    policy = load_signature_policy(policies_dir(settings) / "signature.yaml")
    results = await asyncio.to_thread(
        refresh_crls,
        all_crl_sources(policy.crl_sources, settings.home),
        settings.home / "crl",
        home=settings.home,
    )
    failed = [r for r in results if not r.ok]
    for result in failed:
        log.warning("crl refresh: %s failed: %s", result.source, result.error)
    summary = f"{len(results) - len(failed)} of {len(results)} CRL sources refreshed"
    if failed:
        summary += "; failed: " + ", ".join(r.source for r in failed)
    return summary


async def retention_purge_job(ctx: JobContext) -> str:
    """Delete old job runs, overdue-reminder records and stale failed-login rows, spam in
    every Junk folder older than retention.junk_days, then run the mailbox-check purge
    when that module is installed."""
    jobs = ctx.settings.jobs
    runs_before = ctx.now - timedelta(days=jobs.run_retention_days)
    failures_before = ctx.now - timedelta(days=jobs.auth_failure_retention_days)

    def purge() -> tuple[int, int, int]:
        with ctx.sessions.begin() as session:
            runs = purge_runs(session, runs_before)
            reminders = session.execute(
                delete(OverdueReminder).where(OverdueReminder.sent_at < runs_before)
            ).rowcount  # type: ignore[attr-defined]
            failures = session.execute(
                delete(AuthFailure).where(
                    AuthFailure.last_failed_at < failures_before,
                    or_(AuthFailure.locked_until.is_(None), AuthFailure.locked_until < ctx.now),
                )
            ).rowcount  # type: ignore[attr-defined]
        return runs, int(reminders or 0), int(failures or 0)

    runs, reminders, failures = await asyncio.to_thread(purge)
    parts = [
        f"{runs} job runs",
        f"{reminders} overdue reminders",
        f"{failures} failed-login rows purged",
    ]
    days = ctx.settings.retention.junk_days
    try:
        junk = await purge_junk(
            ctx.settings,
            await asyncio.to_thread(_mailbox_addresses, ctx),
            ctx.now - timedelta(days=days),
        )
    except DependencyError as exc:
        parts.append(f"Junk not purged ({exc})")
    else:
        parts.append(junk.summary(days))
    try:
        checks_purge = load_function(CHECKS_PURGE)
    except JobUnavailable as exc:
        parts.append(f"mailbox checks: not purged ({exc})")
    else:
        parts.append(f"mailbox checks: {await checks_purge(ctx)}")
    return "; ".join(parts)


def _mailbox_addresses(ctx: JobContext) -> list[str]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Mailbox.address).order_by(Mailbox.address)))

