"""Record virus detections and tell when one source sends several in a short window.

Functions take an open SQLAlchemy session and never commit: the caller that opened
the session owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.quarantine.models import VirusDetection


def record_detection(
    session: Session,
    *,
    queue_id: str,
    sha256: str,
    mail_from: str,
    client_ip: str,
    recipients: Sequence[str],
    signature: str,
    size: int = 0,
    detected_at: datetime | None = None,
) -> VirusDetection:
    """Add one detection to the session (flushed, not committed) and return it."""
    row = VirusDetection(
        queue_id=queue_id,
        sha256=sha256,
        size=size,
        mail_from=mail_from.lower(),
        client_ip=client_ip,
        recipients=[r.lower() for r in recipients],
        signature=signature,
        detected_at=detected_at or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def count_detections(
    session: Session,
    *,
    since: datetime,
    client_ip: str | None = None,
    sender: str | None = None,
) -> int:
    """Detections since ``since`` from one client address and/or one envelope sender."""
    if client_ip is None and sender is None:
        raise ValueError("count_detections needs client_ip or sender")
    query = (
        select(func.count()).select_from(VirusDetection).where(VirusDetection.detected_at >= since)
    )
    if client_ip is not None:
        query = query.where(VirusDetection.client_ip == client_ip)
    if sender is not None:
        query = query.where(VirusDetection.mail_from == sender.lower())
    return int(session.scalar(query) or 0)


def detect_outbreak(
    session: Session,
    *,
    window: timedelta,
    threshold: int,
    client_ip: str | None = None,
    sender: str | None = None,
    now: datetime | None = None,
) -> bool:
    """True when at least ``threshold`` detections came from the source within ``window``.

    Give ``client_ip``, ``sender`` or both (both: detections matching both). Call it
    right after :func:`record_detection`; to alert once per outbreak rather than for
    every later detection, alert when :func:`count_detections` equals ``threshold``.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    since = (now or utcnow()) - window
    return count_detections(session, since=since, client_ip=client_ip, sender=sender) >= threshold


def recent_detections(
    session: Session, *, since: datetime, limit: int = 100
) -> list[VirusDetection]:
    """The newest detections since ``since`` (for an admin alert or report)."""
    query = (
        select(VirusDetection)
        .where(VirusDetection.detected_at >= since)
        .order_by(VirusDetection.detected_at.desc(), VirusDetection.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
