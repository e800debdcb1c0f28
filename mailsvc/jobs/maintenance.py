"""Housekeeping jobs: the CRL cache and the retention purge (records, and spam in Junk)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select

from mailsvc.adapters.clamd import ClamdError
from mailsvc.adapters.clamd_daemon import client_from_settings
from mailsvc.adapters.freshclam import (
    UpdateResult,
    database_dir,
    run_freshclam,
    signature_time,
)
from mailsvc.app import policies_dir
from mailsvc.config import Settings
from mailsvc.db.models import AuthFailure, Mailbox
from mailsvc.errors import DependencyError, MailsvcError
from mailsvc.jobs.catalog import JobUnavailable, load_function
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.mail import compose
from mailsvc.jobs.models import OverdueReminder
from mailsvc.jobs.runs import purge_runs
from mailsvc.mailboxes.junk import purge_junk
from mailsvc.signatures.crl import refresh_crls
from mailsvc.signatures.policy import load_signature_policy
from mailsvc.signatures.sources import all_crl_sources
from mailsvc.time import VIETNAM

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


async def clamav_update_job(ctx: JobContext) -> str:
    """freshclam into the managed clamd's database (when ``clamav.update = "auto"``), then
    the age of the signatures clamd has loaded; older than ``max_signature_age_days``: a
    warning in the log and, once a day, mail to the admin mailboxes. A failed update fails
    the run (job metrics count it)."""
    settings = ctx.settings
    parts: list[str] = []
    update: UpdateResult | None = None
    if settings.clamav.mode == "managed" and settings.clamav.update == "auto":
        update = await run_freshclam(settings)
        parts.append(update.detail)
        if not update.ok:
            log.warning("clamav-update: %s", update.detail)
    age = await loaded_signature_age(settings)
    limit = settings.clamav.max_signature_age_days
    if age is None:
        parts.append("signature age unknown (clamd not answering)")
    else:
        days = age.total_seconds() / 86400
        parts.append(f"signatures {days:.1f} days old (limit {limit:g})")
        if days > limit:
            log.warning("virus signatures are %.1f days old (limit %g)", days, limit)
            parts.append(await _alert_stale_signatures(ctx, days))
    summary = "; ".join(parts)
    if update is not None and not update.ok:
        raise MailsvcError(summary)
    return summary


async def loaded_signature_age(settings: Settings) -> timedelta | None:
    """Age of the signatures the configured clamd has loaded (None: clamd not answering)."""
    client = client_from_settings(settings)
    if client is None:
        return None
    try:
        version = await client.version()
    except ClamdError:
        return None
    built = signature_time(version, database_dir(settings))
    return None if built is None else datetime.now(UTC) - built


async def _alert_stale_signatures(ctx: JobContext, days: float) -> str:
    marker = ctx.settings.home / "clamav" / "stale-alert-sent"
    today = ctx.now.astimezone(VIETNAM).date().isoformat()
    if marker.exists() and marker.read_text(encoding="ascii").strip() == today:
        return "admins already told today"

    def admins() -> list[str]:
        with ctx.sessions() as session:
            return list(
                session.scalars(
                    select(Mailbox.address).where(
                        Mailbox.role == "admin",
                        Mailbox.enabled.is_(True),
                        Mailbox.removed.is_(False),
                    )
                )
            )

    recipients = await asyncio.to_thread(admins)
    if ctx.mailer is None or not recipients:
        return "no admin mailbox to tell"
    subject = f"Mẫu nhận diện mã độc đã cũ {days:.0f} ngày"
    body = (
        f"Mẫu nhận diện mã độc (ClamAV) của máy chủ {ctx.settings.server.hostname} đã cũ "
        f"{days:.1f} ngày, quá giới hạn {ctx.settings.clamav.max_signature_age_days:g} ngày.\n"
        "Đề nghị kiểm tra việc cập nhật (freshclam, hoặc máy chủ cập nhật nội bộ "
        "clamav.update_mirror) và nhật ký clamav/freshclam.log.\n"
    )
    for admin in recipients:
        message = compose(ctx.settings, admin, subject, body, when=ctx.now)
        await ctx.mailer.send(message, admin, kind="alert-signatures")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(today, encoding="ascii")
    return f"mailed {len(recipients)} admin(s)"
