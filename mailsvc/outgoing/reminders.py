"""Documents we sent that no recipient has answered (no status message 01/02/03 ...)
after ``outgoing.unanswered_hours``: reported by the daily overdue job to the official
who sent each one (one mail per official, every document listed)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from mailsvc.jobs.context import JobContext
from mailsvc.jobs.mail import compose, job_templates, render
from mailsvc.outgoing.register import OutgoingFilter, list_documents, unanswered_lines
from mailsvc.time import iso_local

log = logging.getLogger(__name__)


def plan(ctx: JobContext) -> dict[str, list[dict[str, Any]]]:
    after = timedelta(hours=ctx.settings.outgoing.unanswered_hours)
    by_sender: dict[str, list[dict[str, Any]]] = {}
    with ctx.sessions() as session:
        for document in list_documents(
            session, OutgoingFilter(unanswered_after=after), now=ctx.now
        ):
            lines = unanswered_lines(document, ctx.now, after)
            by_sender.setdefault(document.sender, []).append(
                {
                    "notation": document.number_notation or "(không có)",
                    "abstract": document.abstract or document.subject,
                    "sent_at": iso_local(document.sent_at or document.created_at),
                    "recipients": ", ".join(
                        f"{line.agency_name} <{line.recipient}>"
                        if line.agency_name
                        else line.recipient
                        for line in lines
                    ),
                }
            )
    return by_sender


async def unanswered_reminders(ctx: JobContext) -> str:
    """Mail each official their unanswered documents; "" when there are none."""
    planned = await asyncio.to_thread(plan, ctx)
    if not planned:
        return ""
    count = sum(len(v) for v in planned.values())
    if ctx.mailer is None:
        return f"{count} unanswered outgoing documents not reminded (no mailer)"
    env = job_templates(ctx.settings)
    sent = 0
    for sender, documents in sorted(planned.items()):
        values = {
            "recipient": sender,
            "made_at": iso_local(ctx.now),
            "count": len(documents),
            "hours": f"{ctx.settings.outgoing.unanswered_hours:g}",
            "documents": documents,
        }
        subject = f"[Nhắc việc] {len(documents)} văn bản đi chưa được nơi nhận xác nhận"
        message = compose(
            ctx.settings,
            sender,
            subject,
            render(env, "outgoing_unanswered.txt.j2", values),
            when=ctx.now,
        )
        try:
            await ctx.mailer.send(message, sender, kind="outgoing-unanswered")
            sent += 1
        except Exception:  # boundary: one official's mail must not stop the others
            log.exception("unanswered reminder to %s failed", sender)
    return f"{count} unanswered outgoing documents, {sent} reminders sent"
