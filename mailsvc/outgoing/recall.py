"""Recalling a document we sent (thu hồi, seed 002 Điều 10): status message 13 to every
recipient it reached, tracked line by line until each confirms (15) or refuses (16).

A line still waiting in our own queue is not recalled by mail: its queue row is
deleted and the line is recalled at once (nothing left our server). Nothing here
commits: the CLI's transaction holds the decision, the audit entry and the queued
status messages together.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc import audit
from mailsvc.db.base import utcnow
from mailsvc.notify.exchange import RECALL_REQUESTED as CODE_13
from mailsvc.notify.notices import NoticeComposer, StatusNotice
from mailsvc.outbound.models import QUEUED, OutboundMessage
from mailsvc.outbound.queue import enqueue
from mailsvc.outgoing.models import OutgoingDocument
from mailsvc.outgoing.register import (
    FAILED,
    RECALL_REQUESTED,
    RECALLED,
    REFUSED,
    OutgoingError,
    move_line,
)

RECALL_KIND = "recall-13"


def recall_document(
    session: Session,
    document: OutgoingDocument,
    *,
    composer: NoticeComposer,
    actor: str,
    reason: str,
) -> list[OutboundMessage]:
    """Queue the recall to every recipient; returns the queued status messages."""
    reason = reason.strip()
    if not reason:
        raise OutgoingError("a reason is required to recall a document")
    if document.state in ("draft", "recalled"):
        raise OutgoingError(f"outgoing document {document.id} is {document.state}")
    now = utcnow()
    rows: list[OutboundMessage] = []
    for line in document.deliveries:
        if line.status in (FAILED, RECALLED, REFUSED, RECALL_REQUESTED):
            continue
        pending = (
            session.scalars(
                select(OutboundMessage).where(
                    OutboundMessage.id == line.outbound_id, OutboundMessage.state == QUEUED
                )
            ).one_or_none()
            if line.outbound_id is not None
            else None
        )
        if pending is not None:  # never left our server: take it out of the queue
            pending.state = "deleted"
            pending.finished_at = now
            pending.last_error = f"recalled by {actor}: {reason}"
            move_line(session, line, RECALLED, actor=actor, note=reason)
            continue
        notice = StatusNotice(
            recipient=line.recipient,
            status_code=CODE_13,
            message_id=document.message_id,
            subject=document.subject,
            time=now,
            number_notation=document.number_notation,
            reason=reason,
        )
        rows.append(
            enqueue(
                session,
                composer.status_message(notice),
                line.recipient,
                kind=RECALL_KIND,
                about=document.message_id,
            )
        )
        move_line(session, line, RECALL_REQUESTED, actor=actor, note=reason)
    if not rows and not any(d.status == RECALLED for d in document.deliveries):
        raise OutgoingError(f"outgoing document {document.id}: no recipient left to recall from")
    document.recall_reason = reason
    done = all(d.status in (RECALLED, FAILED) for d in document.deliveries)
    document.state = "recalled" if done else "recall_requested"
    audit.record(
        session,
        actor,
        "outgoing.recall",
        f"outgoing {document.id}",
        {
            "message_id": document.message_id,
            "reason": reason,
            "recipients": [r.recipient for r in rows],
        },
    )
    session.flush()
    return rows
