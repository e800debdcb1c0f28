"""Quarterly statistics per agency (thống kê văn bản đi, đến theo quý), mailed to leaders.

For each local agency and the quarter before the run: incoming documents in the
agency's registers by status (and how many of them are still open past their
deadline); outgoing documents (văn bản đi: sent messages that carry an official document,
i.e. the metadata stage recognised one or the signatures stage found a signed document) and,
separately, all mail its mailboxes sent through submission (distinct messages and recipient
copies): an e-mail is not a document. The report goes to the agency's leaders (mailbox role
``leader``), dates as they read them (dd/mm/yyyy).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailsvc.db.models import Agency, Mailbox, MessageRecord
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.mail import compose, job_templates, render
from mailsvc.message import Direction
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.statuses import OPEN, DocumentStatus
from mailsvc.time import VIETNAM, vn_date, vn_datetime

log = logging.getLogger(__name__)

ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
# Signatures-stage reasons that mean "no document was examined".
NOT_A_DOCUMENT = frozenset({"no-documents", "signature-check-unavailable", None})


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int  # 1..4

    @property
    def start(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """The first day after the quarter."""
        if self.number == 4:
            return date(self.year + 1, 1, 1)
        return date(self.year, 3 * self.number + 1, 1)

    @property
    def label(self) -> str:
        return f"quý {ROMAN[self.number]}/{self.year}"


def previous_quarter(moment: datetime, zone: tzinfo = VIETNAM) -> Quarter:
    local = moment.astimezone(zone)
    number = (local.month - 1) // 3 + 1
    return Quarter(local.year - 1, 4) if number == 1 else Quarter(local.year, number - 1)


@dataclass(frozen=True)
class AgencyStatistics:
    agency_code: str
    agency_name: str
    received: dict[DocumentStatus, int]
    overdue: int  # received in the quarter, still open and past the deadline on the report day
    sent_messages: int
    sent_copies: int
    leaders: tuple[str, ...]
    sent_documents: int = 0

    @property
    def received_total(self) -> int:
        return sum(self.received.values())


def _bounds(quarter: Quarter, zone: tzinfo) -> tuple[datetime, datetime]:
    return (
        datetime.combine(quarter.start, time.min, tzinfo=zone),
        datetime.combine(quarter.end, time.min, tzinfo=zone),
    )


def collect_statistics(
    session: Session, quarter: Quarter, today: date, zone: tzinfo = VIETNAM
) -> list[AgencyStatistics]:
    """One entry per local agency, in agency-code order."""
    start, end = _bounds(quarter, zone)
    agencies = list(
        session.scalars(select(Agency).where(Agency.local.is_(True)).order_by(Agency.code))
    )
    received: dict[int, Counter[DocumentStatus]] = {a.id: Counter() for a in agencies}
    rows = session.execute(
        select(Register.agency_id, RegisterDocument.status, func.count())
        .select_from(RegisterDocument)
        .join(Register, Register.id == RegisterDocument.register_id)
        .where(
            Register.agency_id.is_not(None),
            RegisterDocument.received_at >= start,
            RegisterDocument.received_at < end,
        )
        .group_by(Register.agency_id, RegisterDocument.status)
    )
    for agency_id, status, count in rows:
        if agency_id in received:
            received[agency_id][DocumentStatus(status)] += int(count)
    overdue: Counter[int | None] = Counter()
    late = session.execute(
        select(Register.agency_id, func.count())
        .select_from(RegisterDocument)
        .join(Register, Register.id == RegisterDocument.register_id)
        .where(
            Register.agency_id.is_not(None),
            RegisterDocument.received_at >= start,
            RegisterDocument.received_at < end,
            RegisterDocument.deadline.is_not(None),
            RegisterDocument.deadline < today,
            RegisterDocument.status.in_([s.value for s in OPEN]),
        )
        .group_by(Register.agency_id)
    )
    for agency_id, count in late:
        overdue[agency_id] = int(count)

    # Sent mail: submissions by a mailbox of the agency (or an address in its domains).
    mailbox_agency = {
        address.lower(): agency_id
        for address, agency_id in session.execute(
            select(Mailbox.address, Mailbox.agency_id).where(Mailbox.agency_id.is_not(None))
        )
    }
    domain_agency = {d.lower(): a.id for a in agencies for d in a.domains}
    messages: dict[int, set[str]] = {a.id: set() for a in agencies}
    documents: dict[int, set[str]] = {a.id: set() for a in agencies}
    copies: Counter[int] = Counter()
    sent = session.execute(
        select(
            MessageRecord.authenticated_as,
            MessageRecord.mail_from,
            MessageRecord.message_key,
            MessageRecord.verdict,
        ).where(
            MessageRecord.direction == Direction.SUBMISSION.value,
            MessageRecord.received_at >= start,
            MessageRecord.received_at < end,
        )
    )
    for authenticated_as, mail_from, message_key, verdict in sent:
        sender = (authenticated_as or mail_from or "").lower()
        agency_id = mailbox_agency.get(sender) or domain_agency.get(sender.rpartition("@")[2])
        if agency_id in messages:
            messages[agency_id].add(message_key)
            copies[agency_id] += 1
            if carries_document(verdict):
                documents[agency_id].add(message_key)

    leaders: dict[int, list[str]] = {a.id: [] for a in agencies}
    for address, agency_id in session.execute(
        select(Mailbox.address, Mailbox.agency_id)
        .where(
            Mailbox.role == "leader",
            Mailbox.enabled.is_(True),
            Mailbox.removed.is_(False),
            Mailbox.agency_id.is_not(None),
        )
        .order_by(Mailbox.address)
    ):
        if agency_id in leaders:
            leaders[agency_id].append(address)

    return [
        AgencyStatistics(
            agency_code=a.code,
            agency_name=a.name,
            received={s: received[a.id][s] for s in DocumentStatus},
            overdue=overdue[a.id],
            sent_messages=len(messages[a.id]),
            sent_copies=copies[a.id],
            leaders=tuple(leaders[a.id]),
            sent_documents=len(documents[a.id]),
        )
        for a in agencies
    ]


def carries_document(verdict: dict[str, Any] | None) -> bool:
    """Whether a stored verdict says the message carried an official document: the metadata
    stage recognised one, or the signatures stage examined a document. (The stored verdict
    is the only record of sent mail until outgoing documents have their own register.)"""
    for finding in (verdict or {}).get("findings", ()):
        stage, status, reason = finding.get("stage"), finding.get("status"), finding.get("reason")
        if stage == "metadata" and status == "pass":
            return True
        if stage == "signatures" and reason not in NOT_A_DOCUMENT:
            return True
    return False


def report_values(
    stats: AgencyStatistics, quarter: Quarter, made_at: datetime
) -> dict[str, object]:
    """Plain values for templates/jobs/quarterly_statistics.txt.j2."""
    return {
        "agency_code": stats.agency_code,
        "agency_name": stats.agency_name,
        "quarter": quarter.label,
        "start": vn_date(quarter.start),
        "last_day": vn_date(date.fromordinal(quarter.end.toordinal() - 1)),
        "received_total": stats.received_total,
        "received": [
            {"label": status.label, "code": status.vietnamese_code, "count": count}
            for status, count in stats.received.items()
        ],
        "overdue": stats.overdue,
        "sent_documents": stats.sent_documents,
        "sent_messages": stats.sent_messages,
        "sent_copies": stats.sent_copies,
        "made_at": vn_datetime(made_at),
    }


async def quarterly_statistics_job(ctx: JobContext) -> str:
    """Mail last quarter's statistics of every local agency to its leaders."""
    quarter = previous_quarter(ctx.now)
    today = ctx.now.astimezone(VIETNAM).date()

    def collect() -> list[AgencyStatistics]:
        with ctx.sessions() as session:
            return collect_statistics(session, quarter, today)

    agencies = await asyncio.to_thread(collect)
    if ctx.mailer is None:
        return f"{quarter.label}: {len(agencies)} agencies; reports not sent (no mailer)"
    env = job_templates(ctx.settings)
    sent, failed, no_leader = 0, 0, []
    for stats in agencies:
        if not stats.leaders:
            no_leader.append(stats.agency_code)
            log.warning("quarterly statistics: agency %s has no leader mailbox", stats.agency_code)
            continue
        values = report_values(stats, quarter, ctx.now)
        subject = f"Báo cáo thống kê văn bản {quarter.label} - {stats.agency_name}"
        for leader in stats.leaders:
            body = render(env, "quarterly_statistics.txt.j2", {**values, "recipient": leader})
            message = compose(ctx.settings, leader, subject, body, when=ctx.now)
            try:
                await ctx.mailer.send(message, leader, kind="quarterly-statistics")
                sent += 1
            except Exception:  # boundary: one leader's mail must not stop the others
                log.exception("quarterly statistics to %s failed", leader)
                failed += 1
    summary = f"{quarter.label}: {len(agencies)} agencies, {sent} reports sent"
    if failed:
        summary += f", {failed} failed"
    if no_leader:
        summary += f"; no leader: {', '.join(no_leader)}"
    return summary
