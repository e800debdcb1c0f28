"""Registration on time (Decree 30 art. 22: incoming documents are registered on the day
they arrive, or at the latest on the next working day; urgent ones at once).

:func:`registration_due` says by when an entry must be registered; :func:`late_registrations`
lists the entries of a period registered after that (or still unregistered past it), for
the clerk's and the leaders' report. Working days and holidays come from the mailbox-check
policy (``policies/checking.yaml``), so both reports share one calendar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc.checks.policy import CheckingPolicy
from mailsvc.register.models import RegisterDocument
from mailsvc.register.statuses import DocumentStatus
from mailsvc.register.urgency import Urgency

#: "At once" for urgent documents (Khẩn, Thượng khẩn, Hỏa tốc).
URGENT_WITHIN = timedelta(hours=1)


@dataclass(frozen=True)
class LateRegistration:
    document_id: int
    register_code: str
    received_at: datetime
    registered_at: datetime | None  # None: still not registered
    due: datetime
    urgency: Urgency
    number_notation: str
    sender: str
    incoming_number: int | None
    year: int

    @property
    def late_by(self) -> timedelta | None:
        return self.registered_at - self.due if self.registered_at else None


def registration_due(received_at: datetime, urgency: Urgency, policy: CheckingPolicy) -> datetime:
    """The latest time ``received_at``'s document may be registered (aware, UTC-comparable).

    Urgent: within :data:`URGENT_WITHIN`. Otherwise: the end of the next working day after
    the day of arrival (local time of the policy's zone)."""
    if urgency is not Urgency.NORMAL:
        return received_at + URGENT_WITHIN
    zone = policy.zone
    day = received_at.astimezone(zone).date()
    holidays = policy.holiday_dates()
    next_day = _next_working_day(day, policy, holidays)
    return datetime.combine(next_day + timedelta(days=1), time(0, 0), zone)


def _next_working_day(day: date, policy: CheckingPolicy, holidays: frozenset[date]) -> date:
    candidate = day + timedelta(days=1)
    for _ in range(60):  # Tết is the longest break; a policy with no working day ends here
        if policy.is_working_day(candidate, holidays):
            return candidate
        candidate += timedelta(days=1)
    return candidate


def late_registrations(
    session: Session,
    policy: CheckingPolicy,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    register_ids: Sequence[int] = (),
) -> list[LateRegistration]:
    """Entries received in [since, until) registered after their due time, or not yet
    registered although due before ``now``. Refused and recalled entries are not counted:
    they are not registered (refusals are answered at once by the pipeline)."""
    query = (
        select(RegisterDocument)
        .where(RegisterDocument.received_at >= since, RegisterDocument.received_at < until)
        .where(RegisterDocument.status != DocumentStatus.REFUSED.value)
        .order_by(RegisterDocument.received_at, RegisterDocument.id)
    )
    if register_ids:
        query = query.where(RegisterDocument.register_id.in_(register_ids))
    out: list[LateRegistration] = []
    for doc in session.scalars(query):
        urgency = Urgency(doc.urgency)
        due = registration_due(doc.received_at, urgency, policy)
        registered = doc.registered_at
        if registered is None:
            if doc.status in (DocumentStatus.RECALLED.value, DocumentStatus.DELETED.value):
                continue
            if now <= due:
                continue
        elif registered <= due:
            continue
        out.append(
            LateRegistration(
                document_id=doc.id,
                register_code=doc.register.code,
                received_at=doc.received_at,
                registered_at=registered,
                due=due,
                urgency=urgency,
                number_notation=doc.number_notation,
                sender=doc.sender,
                incoming_number=doc.incoming_number,
                year=doc.year,
            )
        )
    return out
