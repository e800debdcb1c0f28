"""Next year's calendar: from 1 December, warn while the government's announced working-day
swaps for next year are not in policies/checking.yaml (the `holidays` package knows the
public holidays, not the swaps). Warned in the log and /healthz every day, and by mail to
the admin mailboxes on 1 December and every Monday after, until the year is listed."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from mailsvc.accounts import ADMIN_ROLE
from mailsvc.app import policies_dir
from mailsvc.checks.policy import load_checking_policy
from mailsvc.db.models import Mailbox
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.mail import compose, job_templates, render
from mailsvc.time import VIETNAM, vn_date

log = logging.getLogger(__name__)


async def holiday_swaps_job(ctx: JobContext) -> str:
    """Warn when next year's swaps are missing (from 1 December)."""
    policy_path = policies_dir(ctx.settings) / "checking.yaml"
    policy = load_checking_policy(policy_path)
    today = ctx.now.astimezone(VIETNAM).date()
    year = policy.missing_swaps_year(today)
    if year is None:
        return "holiday swaps: nothing missing"
    log.warning(
        "holiday swaps for %d are not in %s: list the announced days off and make-up "
        "Saturdays (or `%d: []`), else every missed check window of those days alerts",
        year,
        policy_path,
        year,
    )
    if not (today.day == 1 or today.weekday() == 0):
        return f"holiday swaps for {year} missing: warned in the log"

    def admins() -> list[str]:
        with ctx.sessions() as session:
            return list(
                session.scalars(
                    select(Mailbox.address).where(
                        Mailbox.role == ADMIN_ROLE,
                        Mailbox.enabled.is_(True),
                        Mailbox.removed.is_(False),
                    )
                )
            )

    recipients = await asyncio.to_thread(admins)
    if ctx.mailer is None or not recipients:
        return f"holiday swaps for {year} missing: warned in the log (no admin mailbox to mail)"
    env = job_templates(ctx.settings)
    subject = f"Chưa cập nhật lịch nghỉ hoán đổi năm {year}"
    for admin in recipients:
        body = render(
            env,
            "holiday_swaps_missing.txt.j2",
            {"year": year, "policy": str(policy_path), "today": vn_date(today), "recipient": admin},
        )
        await ctx.mailer.send(
            compose(ctx.settings, admin, subject, body, when=ctx.now), admin, kind="holiday-swaps"
        )
    return f"holiday swaps for {year} missing: mailed {len(recipients)} admin(s)"
