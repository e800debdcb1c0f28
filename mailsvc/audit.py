"""Append-only, hash-chained audit log of administrative actions.

Each entry's hash is SHA-256 over the canonical JSON of its content and the previous
entry's hash. A one-row head table (``audit_head``) keeps the number of entries and the
last hash, so deleting the newest entries is detected too. Writers serialise on the head
row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` locks the file).

Services call :func:`record`; they never commit (the caller does, with the change itself,
so an action and its audit entry are stored together or not at all).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailsvc.db.base import Base, utcnow
from mailsvc.db.models import AuditEntry

GENESIS = "0" * 64
HEAD_ID = 1


class AuditHead(Base):
    """The chain's head: entry count and last hash (one row, id 1)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def _canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _plain(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as they come back from a JSON column (tuples become lists, etc.)."""
    plain: dict[str, Any] = json.loads(json.dumps(dict(details), default=str))
    return plain


def entry_hash(
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    doc = {
        "at": _canonical_time(at),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    data = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _lock_head(session: Session) -> AuditHead:
    head = session.scalars(
        select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
    ).one_or_none()
    if head is None:
        # The migration creates the row; this covers a database whose head was lost.
        head = AuditHead(id=HEAD_ID, count=0, last_hash=GENESIS, updated_at=utcnow())
        session.add(head)
        session.flush()
    return head


def record(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry (flushed, not committed). Never put secrets in ``details``."""
    head = _lock_head(session)
    at = utcnow()
    plain = _plain(details or {})
    digest = entry_hash(
        at=at, actor=actor, action=action, target=target, details=plain, prev_hash=head.last_hash
    )
    entry = AuditEntry(
        at=at,
        actor=actor,
        action=action,
        target=target,
        details=plain,
        prev_hash=head.last_hash,
        hash=digest,
    )
    session.add(entry)
    head.count += 1
    head.last_hash = digest
    head.updated_at = at
    session.flush()
    return entry


def verify(session: Session) -> list[str]:
    """Walk the chain; return one line per problem (empty list: the log is intact)."""
    problems: list[str] = []
    expected_prev = GENESIS
    count = 0
    last_hash = GENESIS
    rows = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    )
    for entry in rows:
        count += 1
        recomputed = entry_hash(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            details=entry.details,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            problems.append(f"entry #{entry.id}: content does not match its hash (altered)")
        if entry.prev_hash != expected_prev:
            problems.append(
                f"entry #{entry.id}: does not follow the previous entry "
                "(an entry before it was deleted, inserted or altered)"
            )
        expected_prev = entry.hash
        last_hash = entry.hash
    head = session.get(AuditHead, HEAD_ID)
    if head is None:
        if count:
            problems.append("audit head is missing (it was deleted)")
        return problems
    if head.count != count:
        what = (
            f"{head.count - count} deleted"
            if head.count > count
            else f"{count - head.count} added outside the audit log"
        )
        problems.append(f"the log holds {count} entries but {head.count} were recorded ({what})")
    elif head.last_hash != last_hash:
        problems.append("the newest entry is not the one last recorded (altered or replaced)")
    return problems


def head_hash(session: Session) -> tuple[int, str]:
    """(entry count, last hash): write these down elsewhere to anchor the chain."""
    head = session.get(AuditHead, HEAD_ID)
    return (0, GENESIS) if head is None else (head.count, head.last_hash)


def list_entries(
    session: Session,
    *,
    limit: int = 100,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
) -> list[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action.startswith(action))
    if target:
        query = query.where(AuditEntry.target == target)
    return list(session.scalars(query))
