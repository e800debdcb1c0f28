"""The outgoing register's services: entering a sent document, moving its delivery lines
as the queue and the other agencies report back, and the stable JSON view.

Nothing here commits: the acceptance transaction (a submission), the outbound worker's
transaction (sent / failed) and the CLI's transaction (recall, approve) do.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailsvc.db.base import utcnow
from mailsvc.errors import MailsvcError, NotFoundError
from mailsvc.interfaces import Directory
from mailsvc.outgoing.models import OutgoingDelivery, OutgoingDocument, OutgoingHistory
from mailsvc.register.numbering import register_year
from mailsvc.time import VIETNAM, iso_local

SCHEMA_VERSION = 1

# Delivery line statuses, in the order a document normally goes through them.
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
RECEIVED = "received"  # 01
REFUSED = "refused"  # 02
REGISTERED = "registered"  # 03
ASSIGNED = "assigned"  # 04
IN_PROGRESS = "in_progress"  # 05
DONE = "done"  # 06
RECALL_REQUESTED = "recall_requested"  # 13 sent by us
RECALLED = "recalled"  # 15
RECALL_REFUSED = "recall_refused"  # 16

LABELS = {
    QUEUED: "Đang chờ gửi",
    SENT: "Đã gửi",
    FAILED: "Không gửi được",
    RECEIVED: "Đã đến",
    REFUSED: "Từ chối tiếp nhận",
    REGISTERED: "Đã tiếp nhận",
    ASSIGNED: "Đã phân công",
    IN_PROGRESS: "Đang xử lý",
    DONE: "Đã hoàn thành",
    RECALL_REQUESTED: "Đề nghị thu hồi",
    RECALLED: "Đã thu hồi",
    RECALL_REFUSED: "Từ chối thu hồi",
}
# Status codes of the exchange's status messages → delivery line status.
BY_CODE = {
    "01": RECEIVED,
    "02": REFUSED,
    "03": REGISTERED,
    "04": ASSIGNED,
    "05": IN_PROGRESS,
    "06": DONE,
    "15": RECALLED,
    "16": RECALL_REFUSED,
}
# Statuses that count as an answer from the other agency.
ANSWERED = frozenset(BY_CODE.values())
# Lines waiting for an answer (``outgoing list --unanswered`` once old enough).
WAITING = frozenset({QUEUED, SENT})


class OutgoingError(MailsvcError):
    """An outgoing-register action that cannot be done (wrong state, nothing to recall)."""


@dataclass(frozen=True)
class RecipientInput:
    recipient: str
    outbound_id: int | None = None


@dataclass(frozen=True)
class OutgoingInput:
    """Plain values of one sent document (from the acceptance or the issuing step)."""

    sender: str
    created_at: datetime
    message_id: str
    message_key: str
    queue_id: str
    subject: str
    blob_sha256: str
    recipients: tuple[RecipientInput, ...]
    number_notation: str = ""
    issued_date: date | None = None
    doc_type: str = ""
    abstract: str = ""
    signer: str = ""
    urgency: str = "normal"
    main_filename: str = ""
    main_sha256: str = ""
    kind: str = "direct"
    state: str = "sent"
    outgoing_number: int | None = None
    approved_by: str = ""


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "").strip()


def record_document(
    session: Session,
    doc: OutgoingInput,
    *,
    directory: Directory | None = None,
    actor: str = "",
    zone: tzinfo = VIETNAM,
) -> OutgoingDocument:
    """Enter a document and one delivery line per recipient (flushed, not committed)."""
    row = OutgoingDocument(
        year=register_year(doc.created_at, zone),
        outgoing_number=doc.outgoing_number,
        kind=doc.kind,
        state=doc.state,
        created_at=doc.created_at,
        sent_at=doc.created_at if doc.state == "sent" else None,
        sender=doc.sender.lower(),
        approved_by=doc.approved_by,
        message_id=doc.message_id[:998],
        message_key=doc.message_key,
        queue_id=doc.queue_id,
        subject=_nfc(doc.subject),
        number_notation=_nfc(doc.number_notation)[:128],
        issued_date=doc.issued_date,
        doc_type=_nfc(doc.doc_type)[:64],
        abstract=_nfc(doc.abstract or doc.subject),
        signer=_nfc(doc.signer)[:256],
        urgency=doc.urgency,
        main_filename=_nfc(doc.main_filename)[:256],
        main_sha256=doc.main_sha256,
        blob_sha256=doc.blob_sha256,
        recall_reason="",
    )
    session.add(row)
    session.flush()
    add_recipients(session, row, doc.recipients, directory=directory, actor=actor or doc.sender)
    return row


def add_recipients(
    session: Session,
    document: OutgoingDocument,
    recipients: Sequence[RecipientInput],
    *,
    directory: Directory | None,
    actor: str,
) -> None:
    now = utcnow()
    for item in recipients:
        code, name = "", ""
        if directory is not None:
            info = directory.agency_for_domain(item.recipient.rpartition("@")[2])
            if info is not None:
                code, name = info.code, info.name
        session.add(
            OutgoingDelivery(
                document_id=document.id,
                recipient=item.recipient.lower(),
                agency_code=code,
                agency_name=name,
                status=QUEUED,
                outbound_id=item.outbound_id,
                their_number="",
                updated_at=now,
                note="",
            )
        )
        session.add(
            OutgoingHistory(
                document_id=document.id,
                recipient=item.recipient.lower(),
                at=now,
                actor=actor,
                from_status="",
                to_status=QUEUED,
                note="",
            )
        )
    session.flush()


def move_line(
    session: Session,
    line: OutgoingDelivery,
    status: str,
    *,
    actor: str,
    note: str = "",
    at: datetime | None = None,
) -> bool:
    """Change one delivery line's status, with a history entry. False when unchanged."""
    if line.status == status:
        return False
    at = at or utcnow()
    session.add(
        OutgoingHistory(
            document_id=line.document_id,
            recipient=line.recipient,
            at=at,
            actor=actor,
            from_status=line.status,
            to_status=status,
            note=note[:2000],
        )
    )
    line.status = status
    line.updated_at = at
    if status == SENT:
        line.sent_at = at
    if status in ANSWERED and line.answered_at is None:
        line.answered_at = at
    if note:
        line.note = note[:2000]
    return True


def settle_outbound(session: Session, outcomes: Sequence[tuple[int, str, str]]) -> None:
    """The outbound worker's report (Mailer.on_settled): rows sent or given up."""
    ids = [row_id for row_id, _, _ in outcomes]
    if not ids:
        return
    lines = session.scalars(
        select(OutgoingDelivery).where(OutgoingDelivery.outbound_id.in_(ids))
    ).all()
    by_id = {line.outbound_id: line for line in lines}
    for row_id, state, note in outcomes:
        line = by_id.get(row_id)
        if line is None or line.status not in WAITING:
            continue
        move_line(session, line, SENT if state == "sent" else FAILED, actor="mailsvc", note=note)


def find_document(session: Session, ref: str) -> OutgoingDocument:
    """By id, or by outgoing number ``N/YEAR``."""
    ref = ref.strip()
    query = select(OutgoingDocument).options(
        selectinload(OutgoingDocument.deliveries), selectinload(OutgoingDocument.history)
    )
    if "/" in ref:
        number, _, year = ref.partition("/")
        if not number.isdigit() or not year.isdigit():
            raise NotFoundError(f"{ref!r}: expected an id or NUMBER/YEAR")
        query = query.where(
            OutgoingDocument.outgoing_number == int(number), OutgoingDocument.year == int(year)
        )
    elif ref.isdigit():
        query = query.where(OutgoingDocument.id == int(ref))
    else:
        raise NotFoundError(f"{ref!r}: expected an id or NUMBER/YEAR")
    found = session.scalars(query).one_or_none()
    if found is None:
        raise NotFoundError(f"no outgoing document {ref}")
    return found


@dataclass(frozen=True)
class OutgoingFilter:
    since: date | None = None
    until: date | None = None
    year: int | None = None
    unanswered_after: timedelta | None = None  # only documents with a line waiting so long
    state: str | None = None
    limit: int | None = None


def list_documents(
    session: Session, flt: OutgoingFilter, zone: tzinfo = VIETNAM, now: datetime | None = None
) -> list[OutgoingDocument]:
    query = (
        select(OutgoingDocument)
        .options(selectinload(OutgoingDocument.deliveries), selectinload(OutgoingDocument.history))
        .order_by(OutgoingDocument.created_at, OutgoingDocument.id)
    )
    if flt.since:
        query = query.where(
            OutgoingDocument.created_at >= datetime.combine(flt.since, datetime.min.time(), zone)
        )
    if flt.until:
        query = query.where(
            OutgoingDocument.created_at
            < datetime.combine(flt.until + timedelta(days=1), datetime.min.time(), zone)
        )
    if flt.year:
        query = query.where(OutgoingDocument.year == flt.year)
    if flt.state:
        query = query.where(OutgoingDocument.state == flt.state)
    documents = list(session.scalars(query).all())
    if flt.unanswered_after is not None:
        now = now or utcnow()
        documents = [d for d in documents if unanswered_lines(d, now, flt.unanswered_after)]
    if flt.limit:
        documents = documents[: flt.limit]
    return documents


def unanswered_lines(
    document: OutgoingDocument, now: datetime, after: timedelta
) -> list[OutgoingDelivery]:
    """Lines still waiting for the other agency's first status message after ``after``."""
    if document.state in ("draft", "recalled"):
        return []
    start = document.sent_at or document.created_at
    if now - start < after:
        return []
    return [line for line in document.deliveries if line.status in WAITING]


def document_view(
    document: OutgoingDocument,
    zone: tzinfo = VIETNAM,
    *,
    now: datetime | None = None,
    unanswered_after: timedelta | None = None,
) -> dict[str, Any]:
    """The stable JSON view (``mailsvc outgoing list|show --json``)."""
    now = now or utcnow()
    overdue = (
        {line.id for line in unanswered_lines(document, now, unanswered_after)}
        if unanswered_after is not None
        else set()
    )
    return {
        "schema": SCHEMA_VERSION,
        "id": document.id,
        "outgoing_number": document.outgoing_number,
        "year": document.year,
        "kind": document.kind,
        "state": document.state,
        "created_at": iso_local(document.created_at),
        "sent_at": iso_local(document.sent_at) if document.sent_at else None,
        "sender": document.sender,
        "approved_by": document.approved_by,
        "message_id": document.message_id,
        "subject": document.subject,
        "number_notation": document.number_notation,
        "issued_date": document.issued_date.isoformat() if document.issued_date else None,
        "doc_type": document.doc_type,
        "abstract": document.abstract,
        "signer": document.signer,
        "urgency": document.urgency,
        "main_filename": document.main_filename,
        "main_sha256": document.main_sha256,
        "recall_reason": document.recall_reason,
        "deliveries": [
            {
                "recipient": line.recipient,
                "agency_code": line.agency_code,
                "agency_name": line.agency_name,
                "status": line.status,
                "status_label": LABELS.get(line.status, line.status),
                "their_number": line.their_number,
                "sent_at": iso_local(line.sent_at) if line.sent_at else None,
                "answered_at": iso_local(line.answered_at) if line.answered_at else None,
                "updated_at": iso_local(line.updated_at),
                "note": line.note,
                "unanswered": line.id in overdue,
            }
            for line in document.deliveries
        ],
        "history": [
            {
                "at": iso_local(h.at),
                "recipient": h.recipient,
                "actor": h.actor,
                "from_status": h.from_status,
                "to_status": h.to_status,
                "note": h.note,
            }
            for h in document.history
        ],
    }
