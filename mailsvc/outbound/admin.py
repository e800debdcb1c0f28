"""Queue administration (what ``mailq``/``postqueue`` give a Postfix admin): listing,
showing, retrying, holding, releasing and deleting rows of the outbound queue. Every
change is an audit entry. Nothing here commits: the CLI command does.

A deleted row is kept with state ``deleted`` (the audit trail points at it); its
outgoing-register line, if any, becomes ``failed`` with the reason. A retried row that
had been given up is queued again with a fresh lifetime (its first attempt is now).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailsvc import audit
from mailsvc.db.base import utcnow
from mailsvc.errors import MailsvcError, NotFoundError
from mailsvc.message import field_text, parse_head
from mailsvc.outbound.models import FAILED, HELD, QUEUED, OutboundMessage
from mailsvc.outgoing.models import OutgoingDelivery
from mailsvc.outgoing.register import FAILED as LINE_FAILED
from mailsvc.outgoing.register import WAITING, move_line
from mailsvc.time import iso_local

DELETED = "deleted"
PENDING = (QUEUED, HELD)


class QueueActionError(MailsvcError):
    """The action does not apply to the row in its state."""


@dataclass(frozen=True)
class QueueStats:
    queued: int
    held: int
    failed: int
    oldest: datetime | None  # the oldest row still queued or held

    def oldest_seconds(self, now: datetime) -> float:
        return 0.0 if self.oldest is None else max(0.0, (now - self.oldest).total_seconds())


def stats(session: Session) -> QueueStats:
    counts = dict(
        session.execute(
            select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(OutboundMessage.created_at)).where(OutboundMessage.state.in_(PENDING))
    )
    if oldest is not None and oldest.tzinfo is None:  # func.min bypasses the column type
        oldest = oldest.replace(tzinfo=UTC)
    return QueueStats(
        int(counts.get(QUEUED, 0)), int(counts.get(HELD, 0)), int(counts.get(FAILED, 0)), oldest
    )


def list_rows(
    session: Session, states: Sequence[str] = PENDING, limit: int | None = None
) -> list[OutboundMessage]:
    query = select(OutboundMessage).order_by(OutboundMessage.created_at, OutboundMessage.id)
    if states:
        query = query.where(OutboundMessage.state.in_(list(states)))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def get_row(session: Session, row_id: int) -> OutboundMessage:
    row = session.get(OutboundMessage, row_id)
    if row is None:
        raise NotFoundError(f"no queued message {row_id}")
    return row


def row_view(row: OutboundMessage, *, detail: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "sender": row.sender or "<>",
        "recipient": row.recipient,
        "about": row.about,
        "size": len(row.data or b""),
        "created_at": iso_local(row.created_at),
        "attempts": row.attempts,
        "next_attempt_at": iso_local(row.next_attempt_at) if row.state == QUEUED else None,
        "last_error": row.last_error,
        "finished_at": iso_local(row.finished_at) if row.finished_at else None,
    }
    if detail:
        head = parse_head(row.data or b"")
        fields = ("From", "To", "Cc", "Subject", "Date", "Message-ID")
        view["headers"] = {name: text for name in fields if (text := field_text(head, name))}
        view["delay_warning_sent"] = row.warned_at is not None
    return view


def _audit(session: Session, actor: str, action: str, row: OutboundMessage, **extra: Any) -> None:
    audit.record(
        session,
        actor,
        f"queue.{action}",
        str(row.id),
        {"kind": row.kind, "recipient": row.recipient, "about": row.about, **extra},
    )


def retry(session: Session, row: OutboundMessage, *, actor: str) -> None:
    """Due now (a queued or held row), or queued again (a failed one)."""
    now = utcnow()
    if row.state not in (QUEUED, HELD, FAILED):
        raise QueueActionError(f"message {row.id} is {row.state}: nothing to retry")
    before = row.state
    if row.state == FAILED:
        row.created_at = now
        row.finished_at = None
        row.warned_at = None
    row.state = QUEUED
    row.next_attempt_at = now
    _audit(session, actor, "retry", row, before=before)


def hold(session: Session, row: OutboundMessage, *, actor: str) -> None:
    if row.state != QUEUED:
        raise QueueActionError(f"message {row.id} is {row.state}: only queued mail can be held")
    row.state = HELD
    _audit(session, actor, "hold", row)


def release(session: Session, row: OutboundMessage, *, actor: str) -> None:
    if row.state != HELD:
        raise QueueActionError(f"message {row.id} is {row.state}, not held")
    row.state = QUEUED
    row.next_attempt_at = utcnow()
    _audit(session, actor, "release", row)


def delete(session: Session, row: OutboundMessage, *, actor: str, reason: str = "") -> None:
    if row.state not in PENDING:
        raise QueueActionError(f"message {row.id} is {row.state}: only pending mail is deleted")
    row.state = DELETED
    row.finished_at = utcnow()
    row.last_error = f"deleted by {actor}" + (f": {reason}" if reason else "")
    for line in session.scalars(
        select(OutgoingDelivery).where(OutgoingDelivery.outbound_id == row.id)
    ):
        if line.status in WAITING:
            move_line(session, line, LINE_FAILED, actor=actor, note=row.last_error)
    _audit(session, actor, "delete", row, reason=reason)
