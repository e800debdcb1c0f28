"""Compliance with the mailbox-check policy, per mailbox per day (domain §9).

For each tracked mailbox and each calendar day (in the policy's zone):

- on a working day, each check window is ``met`` (a check inside it), ``missed`` (it has
  ended, as of ``now``, without one) or ``pending`` (it has not ended yet);
- a working day needs ``min_checks_per_day`` checks: ``met``, ``missed`` (the day is over
  with fewer) or ``pending``;
- every priority message (a sender or signing certificate listed in the policy) that
  arrived that day must be followed by a check of the receiving mailbox within
  ``priority.max_delay_minutes``: ``on-time``, ``late`` or ``pending``. This holds on every
  day, working or not: the delay runs from the arrival.

A day is ``compliant``, ``non-compliant`` (anything missed or late), ``pending`` (nothing
missed yet, something still open) or ``non-working`` (weekend or holiday with no late
priority message; never counted against the clerk).

Checks and arrivals are read with two plain SELECTs; the rest is computed in memory.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from mailsvc.checks.models import MailboxCheck
from mailsvc.checks.policy import CheckingPolicy
from mailsvc.db.models import Mailbox, MessageRecord
from mailsvc.signatures.models import MessageSignature
from mailsvc.signatures.report import DocumentSignatureReport
from mailsvc.time import VIETNAM, iso_local
from mailsvc.verdict import Verdict

WindowStatus = Literal["met", "missed", "pending"]
PriorityStatus = Literal["on-time", "late", "pending"]
MinChecksStatus = Literal["met", "missed", "pending", "not-required"]
DayStatus = Literal["compliant", "non-compliant", "pending", "non-working"]


class WindowResult(NamedTuple):  # a tuple: a year of 200 mailboxes makes 200,000 of them
    name: str
    label: str  # "07:30-08:30"
    start: datetime
    end: datetime
    status: WindowStatus
    checked_at: datetime | None  # the first check inside the window


@dataclass(frozen=True)
class PriorityResult:
    record_id: int
    queue_id: str
    message_id: str
    sender: str
    mailbox: str
    arrived_at: datetime
    deadline: datetime
    checked_at: datetime | None  # the first check at or after the arrival (as of ``now``)
    status: PriorityStatus

    @property
    def delay_minutes(self) -> float | None:
        if self.checked_at is None:
            return None
        return round((self.checked_at - self.arrived_at).total_seconds() / 60, 1)


@dataclass(frozen=True)
class DayCompliance:
    mailbox: str
    day: date
    working_day: bool
    holiday: bool
    checks: tuple[datetime, ...]  # ascending, in the policy's zone
    windows: tuple[WindowResult, ...]  # empty on a non-working day
    min_checks: int
    min_checks_status: MinChecksStatus
    priority: tuple[PriorityResult, ...]
    status: DayStatus

    @property
    def compliant(self) -> bool | None:
        """True or False once decided; None while something is still pending."""
        if self.status == "pending":
            return None
        return self.status != "non-compliant"

    def windows_with(self, status: WindowStatus) -> list[str]:
        return [w.label for w in self.windows if w.status == status]

    def to_json(self) -> dict[str, Any]:
        """The documented schema (docs/checks-compliance.md); times ISO 8601 +07:00."""
        return {
            "mailbox": self.mailbox,
            "date": self.day.isoformat(),
            "working_day": self.working_day,
            "holiday": self.holiday,
            "status": self.status,
            "compliant": self.compliant,
            "checks": len(self.checks),
            "min_checks": self.min_checks,
            "min_checks_status": self.min_checks_status,
            "check_times": [_iso(c) for c in self.checks],
            "windows": [
                {
                    "name": w.name,
                    "window": w.label,
                    "status": w.status,
                    "checked_at": _iso(w.checked_at) if w.checked_at else None,
                }
                for w in self.windows
            ],
            "windows_met": self.windows_with("met"),
            "windows_missed": self.windows_with("missed"),
            "windows_pending": self.windows_with("pending"),
            "priority_delays_minutes": [p.delay_minutes for p in self.priority],
            "priority_messages": [
                {
                    "message_id": p.message_id,
                    "queue_id": p.queue_id,
                    "sender": p.sender,
                    "arrived_at": _iso(p.arrived_at),
                    "deadline": _iso(p.deadline),
                    "checked_at": _iso(p.checked_at) if p.checked_at else None,
                    "delay_minutes": p.delay_minutes,
                    "status": p.status,
                }
                for p in self.priority
            ],
        }


def _iso(moment: datetime) -> str:
    """``iso_local``, cheaper for times already in Vietnam's zone (a year of checks of
    200 mailboxes is half a million of them)."""
    if moment.tzinfo is VIETNAM:
        return moment.isoformat(timespec="seconds")
    return iso_local(moment)


# -- priority messages ---------------------------------------------------------------------


def signer_fingerprints(verdict: Verdict) -> tuple[str, ...]:
    """Fingerprints of the certificates that signed a message's documents (the signatures
    stage's typed reports)."""
    return tuple(
        s.fingerprint
        for report in verdict.payloads(DocumentSignatureReport)
        for s in report.signatures
        if s.fingerprint
    )


def is_priority_message(policy: CheckingPolicy, sender: str, verdict: Verdict) -> bool:
    """From a priority sender's address, or carrying a document signed with a listed
    certificate."""
    return policy.priority.is_priority(sender, signer_fingerprints(verdict))


def _priority_records(
    session: Session,
    policy: CheckingPolicy,
    mailboxes: Sequence[str],
    lo: datetime,
    hi: datetime,
) -> list[tuple[int, str, str, str, str, datetime]]:
    """(id, queue_id, message_id, mail_from, recipient, received_at) of the priority
    messages delivered to ``mailboxes`` in [lo, hi), by arrival."""
    senders, certificates = policy.priority.senders, policy.priority.certificates
    if not (senders or certificates) or not mailboxes:
        return []
    columns = (
        MessageRecord.id,
        MessageRecord.queue_id,
        MessageRecord.message_id,
        MessageRecord.mail_from,
        MessageRecord.recipient,
        MessageRecord.received_at,
    )
    delivered = (
        MessageRecord.recipient.in_(mailboxes),
        MessageRecord.received_at >= lo,
        MessageRecord.received_at < hi,
        MessageRecord.action == "deliver",
    )
    by_sender = func.lower(MessageRecord.mail_from).in_(senders)
    out: list[tuple[int, str, str, str, str, datetime]] = []
    if senders:
        out += [
            (r[0], r[1], r[2], r[3], r[4], r[5])
            for r in session.execute(select(*columns).where(*delivered, by_sender))
        ]
    if certificates:
        signed = select(MessageSignature.message_record_id).where(
            MessageSignature.fingerprint.in_(certificates)
        )
        rows = session.execute(
            select(*columns).where(
                *delivered,
                ~by_sender if senders else true(),
                MessageRecord.id.in_(signed),
            )
        )
        out += [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
    return sorted(out, key=lambda r: (r[5], r[0]))


# -- evaluation ----------------------------------------------------------------------------


def tracked_mailboxes(session: Session, policy: CheckingPolicy) -> list[str]:
    """Enabled mailboxes with a tracked role, plus the addresses the policy lists."""
    rows = session.scalars(
        select(Mailbox.address).where(
            Mailbox.role.in_(policy.tracked_roles),
            Mailbox.enabled.is_(True),
            Mailbox.removed.is_(False),
        )
    ).all()
    return sorted({a.lower() for a in rows} | {a.strip().lower() for a in policy.mailboxes})


def days_between(start: date, end: date) -> Iterable[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def evaluate(
    session: Session,
    policy: CheckingPolicy,
    start: date,
    end: date,
    mailboxes: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[DayCompliance]:
    """Compliance of each mailbox (default: the tracked ones) for each day from ``start``
    to ``end`` inclusive, as of ``now`` (default: the current time). Ordered by mailbox,
    then day. Checks after ``now`` are not seen."""
    now = (now or datetime.now(UTC)).astimezone(policy.zone)
    zone = policy.zone
    boxes = sorted({m.strip().lower() for m in mailboxes} if mailboxes is not None else [])
    if mailboxes is None:
        boxes = tracked_mailboxes(session, policy)
    if not boxes or end < start:
        return []
    lo = datetime.combine(start, time(0), zone)
    hi = datetime.combine(end + timedelta(days=1), time(0), zone)

    # Every check of every mailbox in the range (up to now), in the policy's zone.
    checks: dict[str, list[datetime]] = defaultdict(list)
    by_day: dict[tuple[str, date], list[datetime]] = defaultdict(list)
    if lo <= now:
        rows = session.execute(
            select(MailboxCheck.mailbox, MailboxCheck.at)
            .where(
                MailboxCheck.mailbox.in_(boxes),
                MailboxCheck.at >= lo,
                MailboxCheck.at < hi,
                MailboxCheck.at <= now,
            )
            .order_by(MailboxCheck.mailbox, MailboxCheck.at)
        )
        for mailbox, at in rows:
            local = at.astimezone(zone)
            checks[mailbox].append(local)
            by_day[mailbox, local.date()].append(local)

    # Priority messages, each with the first check at or after its arrival.
    priority: dict[tuple[str, date], list[PriorityResult]] = defaultdict(list)
    max_delay = timedelta(minutes=policy.priority.max_delay_minutes)
    for record_id, queue_id, message_id, sender, rcpt, received in _priority_records(
        session, policy, boxes, lo, min(hi, now)
    ):
        mailbox = rcpt.lower()
        arrived = received.astimezone(zone)
        own = checks.get(mailbox, [])
        i = bisect.bisect_left(own, arrived)
        checked: datetime | None = own[i] if i < len(own) else None
        if checked is None and hi <= now:  # the range ended: look past it
            first = session.scalar(
                select(func.min(MailboxCheck.at)).where(
                    MailboxCheck.mailbox == mailbox,
                    MailboxCheck.at >= arrived,
                    MailboxCheck.at <= now,
                )
            )
            checked = first.astimezone(zone) if first is not None else None
        deadline = arrived + max_delay
        p_status: PriorityStatus
        if checked is not None:
            p_status = "on-time" if checked <= deadline else "late"
        else:
            p_status = "late" if now > deadline else "pending"
        priority[mailbox, arrived.date()].append(
            PriorityResult(
                record_id=record_id,
                queue_id=queue_id,
                message_id=message_id,
                sender=sender,
                mailbox=mailbox,
                arrived_at=arrived,
                deadline=deadline,
                checked_at=checked,
                status=p_status,
            )
        )

    holidays = policy.holiday_dates(range(start.year, end.year + 1))
    labels = [(w, w.label) for w in policy.windows]
    calendar = [
        (
            day,
            policy.is_working_day(day, holidays),
            day not in policy.extra_working_days
            and (day in holidays or f"{day:%m-%d}" in policy.fixed_holidays),
            [(w.name, label, *policy.window_bounds(day, w)) for w, label in labels],
            datetime.combine(day + timedelta(days=1), time(0), zone),
        )
        for day in days_between(start, end)
    ]
    out: list[DayCompliance] = []
    for mailbox in boxes:
        for day, working, holiday, bounds, day_end in calendar:
            day_checks = by_day.get((mailbox, day), [])
            day_priority = tuple(priority.get((mailbox, day), ()))
            windows: list[WindowResult] = []
            min_status: MinChecksStatus = "not-required"
            if working:
                for name, label, w_start, w_end in bounds:
                    i = bisect.bisect_left(day_checks, w_start)
                    hit = day_checks[i] if i < len(day_checks) and day_checks[i] <= w_end else None
                    w_status: WindowStatus = (
                        "met" if hit is not None else "missed" if now >= w_end else "pending"
                    )
                    windows.append(WindowResult(name, label, w_start, w_end, w_status, hit))
                if len(day_checks) >= policy.min_checks_per_day:
                    min_status = "met"
                else:
                    min_status = "missed" if now >= day_end else "pending"
            statuses: set[str] = {w.status for w in windows} | {p.status for p in day_priority}
            statuses.add(min_status)
            status: DayStatus
            if "missed" in statuses or "late" in statuses:
                status = "non-compliant"
            elif "pending" in statuses:
                status = "pending"
            else:
                status = "compliant" if working else "non-working"
            out.append(
                DayCompliance(
                    mailbox=mailbox,
                    day=day,
                    working_day=working,
                    holiday=holiday,
                    checks=tuple(day_checks),
                    windows=tuple(windows),
                    min_checks=policy.min_checks_per_day if working else 0,
                    min_checks_status=min_status,
                    priority=day_priority,
                    status=status,
                )
            )
    return out
