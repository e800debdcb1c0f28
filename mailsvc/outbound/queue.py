"""Queries on the outbound queue (``outbound_message``). Nothing here commits: the
caller that opened the session does (the Mailer's own transactions, or a CLI command
whose status change and notice commit together)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from mailsvc.config import OutboundSection
from mailsvc.db.base import utcnow
from mailsvc.outbound.models import FAILED, QUEUED, SENT, OutboundMessage

# How long a worker holds a row it is delivering before another may take it.
CLAIM = timedelta(minutes=10)


@dataclass(frozen=True)
class RetryPolicy:
    """Waits between attempts (the last repeats), and when to give up."""

    waits: tuple[timedelta, ...] = (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(minutes=60),
    )
    give_up: timedelta = timedelta(hours=48)
    poll_seconds: float = 5.0

    @classmethod
    def from_settings(cls, section: OutboundSection) -> RetryPolicy:
        return cls(
            waits=tuple(timedelta(minutes=m) for m in section.retry_minutes),
            give_up=timedelta(hours=section.give_up_hours),
            poll_seconds=section.poll_seconds,
        )

    def wait_after(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        return self.waits[min(max(attempts, 1), len(self.waits)) - 1]


def as_bytes(message: EmailMessage | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.as_bytes(policy=SMTP_POLICY)


def row_values(
    message: EmailMessage | bytes,
    recipient: str,
    *,
    kind: str,
    about: str = "",
    sender: str = "",
    message_key: str = "",
) -> dict[str, object]:
    """The column values of a new row, due at once."""
    now = utcnow()
    return {
        "kind": kind[:64],
        "sender": sender,
        "recipient": recipient,
        "about": about[:998],
        "data": as_bytes(message),
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "state": QUEUED,
        "last_error": "",
        "message_key": message_key,
    }


def enqueue(
    session: Session,
    message: EmailMessage | bytes,
    recipient: str,
    *,
    kind: str,
    about: str = "",
    sender: str = "",
    message_key: str = "",
) -> OutboundMessage:
    """Add a row (flushed, not committed); due at once."""
    values = row_values(
        message, recipient, kind=kind, about=about, sender=sender, message_key=message_key
    )
    row = OutboundMessage(**values)
    session.add(row)
    session.flush()
    return row


def add(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Insert ``rows`` (from row_values) with one Core statement on the session's
    connection, without loading them as objects or passing through the ORM's execution
    layer: the receipts' path (one per registered document, in the acceptance transaction),
    where nobody reads the row back."""
    if rows:
        session.connection().execute(_INSERT, list(rows))


class Due(NamedTuple):
    """A due row's columns, as the worker needs them to claim and send it."""

    id: int
    kind: str
    sender: str
    recipient: str
    about: str
    data: bytes
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    message_key: str
    warned_at: datetime | None


_TABLE = cast(Table, OutboundMessage.__table__)
_INSERT = insert(_TABLE)
_DUE = (
    select(*(_TABLE.c[name] for name in Due._fields))
    .where(_TABLE.c.state == QUEUED, _TABLE.c.next_attempt_at <= bindparam("now"))
    .order_by(_TABLE.c.next_attempt_at, _TABLE.c.id)
    .limit(bindparam("limit"))
)


def due_rows(session: Session | Connection, now: datetime, limit: int = 50) -> list[Due]:
    """Rows due at ``now``, oldest first (a Core query: no objects in the session)."""
    result = session.execute(_DUE, {"now": now, "limit": limit})
    return [Due(*row) for row in result]


_NEXT_DUE = select(func.min(_TABLE.c.next_attempt_at)).where(_TABLE.c.state == QUEUED)


def next_due(session: Session | Connection) -> datetime | None:
    """When the next queued row is due (a claimed row: when its claim ends); None: none."""
    value: datetime | None = session.execute(_NEXT_DUE).scalar()
    return value


_CLAIM = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("rid"),
        _TABLE.c.state == QUEUED,
        _TABLE.c.next_attempt_at == bindparam("due"),
    )
    .values(attempts=_TABLE.c.attempts + 1, next_attempt_at=bindparam("until"))
)
_SET_STATE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("rid"))
    .values(state=bindparam("new_state"), finished_at=bindparam("at"), last_error=bindparam("err"))
)
_RETRY = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("rid"))
    .values(next_attempt_at=bindparam("when"), last_error=bindparam("err"))
)


def claim(session: Session | Connection, row: Due, now: datetime) -> bool:
    """Take ``row`` for one attempt (count it, hold it for CLAIM). False when another
    worker took it first. On the session's connection, the statement skips the ORM's
    execution layer (the worker claims a pass's rows one statement each)."""
    result = session.execute(
        _CLAIM, {"rid": row.id, "due": row.next_attempt_at, "until": now + CLAIM}
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def mark_sent(session: Session, row_id: int, now: datetime) -> None:
    session.execute(_SET_STATE, {"rid": row_id, "new_state": SENT, "at": now, "err": ""})


def mark_retry(session: Session, row_id: int, when: datetime, error: str) -> None:
    mark_retries(session, [(row_id, when, error)])


def mark_retries(session: Session | Connection, rows: Sequence[tuple[int, datetime, str]]) -> None:
    """Rows whose attempt failed: each tried again at its time, with its error."""
    session.execute(
        _RETRY, [{"rid": rid, "when": when, "err": error[:2000]} for rid, when, error in rows]
    )


def mark_failed(session: Session, row_id: int, now: datetime, error: str) -> None:
    session.execute(
        _SET_STATE, {"rid": row_id, "new_state": FAILED, "at": now, "err": error[:2000]}
    )


def mark_warned(session: Session, row_id: int, now: datetime) -> None:
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == row_id)
        .values(warned_at=now)
        .execution_options(synchronize_session=False)
    )


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state)
    ).all()
    return {state: int(count) for state, count in rows}
