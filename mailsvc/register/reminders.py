"""Overdue reminders (nhắc văn bản quá hạn xử lý): a daily mail about register entries
past their deadline and not yet done, refused or recalled.

Who is reminded of an entry: its assignee when ``assigned_to`` names a mailbox, else the
clerks of the register's agency (or mail domain), and always the agency's leaders. Each
person gets one mail listing all their overdue entries. An entry is reminded at most
once a day: its (entry, day) row in ``overdue_reminder`` is written before sending, in
one transaction that fails if another run got there first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.db.models import Mailbox
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.mail import compose, job_templates, render
from mailsvc.jobs.models import OverdueReminder
from mailsvc.outgoing.reminders import unanswered_reminders
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.statuses import OPEN, DocumentStatus
from mailsvc.time import VIETNAM, iso_local

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OverdueEntry:
    document_id: int
    number: str  # "15/2026", or "" when unnumbered
    notation: str
    agency: str
    abstract: str
    deadline: date
    days_overdue: int
    status: str  # Vietnamese label
    assignee: str


@dataclass(frozen=True)
class Person:
    address: str
    name: str
    role: str


def _people(session: Session, register: Register) -> tuple[list[Person], list[Person]]:
    """(clerks, leaders) of the register's agency, or of its mail domain."""
    query = select(Mailbox).where(Mailbox.enabled.is_(True), Mailbox.removed.is_(False))
    if register.agency_id is not None:
        query = query.where(Mailbox.agency_id == register.agency_id)
    elif register.domain:
        query = query.where(Mailbox.address.like(f"%@{register.domain}"))
    else:
        return [], []
    mailboxes = list(session.scalars(query.order_by(Mailbox.address)))
    clerks = [Person(m.address, m.full_name, m.role) for m in mailboxes if m.role == "clerk"]
    leaders = [Person(m.address, m.full_name, m.role) for m in mailboxes if m.role == "leader"]
    return clerks, leaders


def plan_reminders(
    session: Session, today: date
) -> tuple[dict[Person, list[OverdueEntry]], list[int], int]:
    """Who gets which overdue entries today; the entry ids to claim; entries with nobody."""
    reminded = select(OverdueReminder.document_id).where(OverdueReminder.day == today)
    documents = list(
        session.scalars(
            select(RegisterDocument)
            .where(
                RegisterDocument.deadline.is_not(None),
                RegisterDocument.deadline < today,
                RegisterDocument.status.in_([s.value for s in OPEN]),
                RegisterDocument.id.not_in(reminded),
            )
            .order_by(RegisterDocument.deadline, RegisterDocument.id)
        )
    )
    mailboxes = {
        m.address: m
        for m in session.scalars(
            select(Mailbox).where(Mailbox.enabled.is_(True), Mailbox.removed.is_(False))
        )
    }
    people: dict[int, tuple[list[Person], list[Person]]] = {}
    plan: dict[Person, list[OverdueEntry]] = defaultdict(list)
    claimed: list[int] = []
    nobody = 0
    for doc in documents:
        assert doc.deadline is not None
        if doc.register_id not in people:
            people[doc.register_id] = _people(session, doc.register)
        clerks, leaders = people[doc.register_id]
        assignee = mailboxes.get(doc.assigned_to.strip().lower())
        first = (
            [Person(assignee.address, assignee.full_name, assignee.role)] if assignee else clerks
        )
        recipients = list(dict.fromkeys([*first, *leaders]))
        if not recipients:
            nobody += 1
            log.warning("overdue entry %d: nobody to remind (no clerk or leader)", doc.id)
            continue
        entry = OverdueEntry(
            document_id=doc.id,
            number=f"{doc.incoming_number}/{doc.year}" if doc.incoming_number else "",
            notation=doc.number_notation,
            agency=doc.agency_name or doc.agency_code or doc.sender,
            abstract=doc.abstract or doc.subject,
            deadline=doc.deadline,
            days_overdue=(today - doc.deadline).days,
            status=DocumentStatus(doc.status).label,
            assignee=doc.assigned_to,
        )
        for person in recipients:
            plan[person].append(entry)
        claimed.append(doc.id)
    return dict(plan), claimed, nobody


def claim_reminders(
    session: Session, today: date, plan: dict[Person, list[OverdueEntry]], ids: list[int]
) -> None:
    """Write today's reminder rows; IntegrityError if another run wrote one first."""
    recipients: dict[int, list[str]] = defaultdict(list)
    for person, entries in plan.items():
        for entry in entries:
            recipients[entry.document_id].append(person.address)
    now = utcnow()
    session.add_all(
        OverdueReminder(document_id=i, day=today, recipients=", ".join(recipients[i]), sent_at=now)
        for i in ids
    )
    session.flush()


def reminder_values(person: Person, entries: list[OverdueEntry], today: date) -> dict[str, object]:
    return {
        "recipient": f"Đồng chí {person.name}" if person.name else person.address,
        "leader": person.role == "leader",
        "today": today.isoformat(),
        "count": len(entries),
        "documents": [
            {
                "number": e.number or "(chưa vào sổ)",
                "notation": e.notation or "(không rõ số, ký hiệu)",
                "agency": e.agency,
                "abstract": e.abstract,
                "deadline": e.deadline.isoformat(),
                "days_overdue": e.days_overdue,
                "status": e.status,
                "assignee": e.assignee or "chưa phân công",
            }
            for e in entries
        ],
    }


async def overdue_reminders_job(ctx: JobContext) -> str:
    """Mail each assignee (or clerk) and leader the entries overdue today, once a day."""
    today = ctx.now.astimezone(VIETNAM).date()

    def plan_and_claim() -> tuple[dict[Person, list[OverdueEntry]], int, int] | None:
        try:
            with ctx.sessions.begin() as session:
                plan, ids, nobody = plan_reminders(session, today)
                if ctx.mailer is not None:
                    claim_reminders(session, today, plan, ids)
        except IntegrityError:  # a concurrent run claimed some of these entries first
            return None
        return plan, len(ids), nobody

    planned = await asyncio.to_thread(plan_and_claim)
    if planned is None:
        return f"{today.isoformat()}: another run is sending today's reminders"
    plan, entries, nobody = planned
    if ctx.mailer is None:
        summary = f"{today.isoformat()}: {entries} overdue entries not reminded (no mailer)"
        unanswered = await unanswered_reminders(ctx)
        return f"{summary}; {unanswered}" if unanswered else summary
    env = job_templates(ctx.settings)
    sent, failed = 0, 0
    for person, items in sorted(plan.items(), key=lambda p: p[0].address):
        subject = f"[Nhắc việc] {len(items)} văn bản đến đã quá hạn xử lý ({today.isoformat()})"
        values = {**reminder_values(person, items, today), "made_at": iso_local(ctx.now)}
        body = render(env, "overdue_reminder.txt.j2", values)
        message = compose(ctx.settings, person.address, subject, body, when=ctx.now)
        try:
            await ctx.mailer.send(message, person.address, kind="overdue-reminder")
            sent += 1
        except Exception:  # boundary: one person's mail must not stop the others
            log.exception("overdue reminder to %s failed", person.address)
            failed += 1
    summary = f"{today.isoformat()}: {entries} overdue entries, {sent} reminders sent"
    if failed:
        summary += f", {failed} failed"
    if nobody:
        summary += f"; {nobody} entries with nobody to remind"
    unanswered = await unanswered_reminders(ctx)
    if unanswered:
        summary += f"; {unanswered}"
    return summary
