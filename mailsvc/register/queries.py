"""Reading the register: filters, lookup by id or number, and the stable JSON view.

The JSON view (:func:`document_view`) is the documented schema of ``mailsvc register
list|show --json`` (docs/register.md): English snake_case keys, stable codes for
``status``, ``urgency`` and ``signature_outcome``, times ISO 8601 in the register's
zone (+07:00), dates ``YYYY-MM-DD``, unknown text "" and unknown dates/numbers null.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailsvc.errors import NotFoundError
from mailsvc.register.models import DocumentAttachment, RegisterDocument
from mailsvc.register.registers import get_register
from mailsvc.register.registration import VIETNAM
from mailsvc.register.statuses import OPEN, DocumentStatus
from mailsvc.register.urgency import Urgency

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DocumentFilter:
    register_code: str | None = None
    since: date | None = None  # local date, inclusive
    until: date | None = None  # local date, inclusive
    agency: str | None = None  # agency code, or part of its name (any case, any accents form)
    statuses: tuple[DocumentStatus, ...] = ()
    urgencies: tuple[Urgency, ...] = ()
    overdue: bool = False
    numbered_only: bool = False
    year: int | None = None
    limit: int | None = None


def local_today(zone: tzinfo = VIETNAM) -> date:
    return datetime.now(zone).date()


def start_of(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def is_overdue(document: RegisterDocument, today: date) -> bool:
    return (
        document.deadline is not None
        and document.deadline < today
        and DocumentStatus(document.status) in OPEN
    )


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def list_documents(
    session: Session, flt: DocumentFilter, zone: tzinfo = VIETNAM, today: date | None = None
) -> list[RegisterDocument]:
    today = today or local_today(zone)
    query = select(RegisterDocument).options(
        selectinload(RegisterDocument.attachments).joinedload(DocumentAttachment.attachment),
        selectinload(RegisterDocument.history),
        selectinload(RegisterDocument.deliveries),
        selectinload(RegisterDocument.register),
    )
    if flt.register_code:
        register = get_register(session, flt.register_code)
        query = query.where(RegisterDocument.register_id == register.id)
    if flt.since:
        query = query.where(RegisterDocument.received_at >= start_of(flt.since, zone))
    if flt.until:
        query = query.where(
            RegisterDocument.received_at < start_of(flt.until + timedelta(days=1), zone)
        )
    if flt.statuses:
        query = query.where(RegisterDocument.status.in_([s.value for s in flt.statuses]))
    if flt.urgencies:
        query = query.where(RegisterDocument.urgency.in_([u.value for u in flt.urgencies]))
    if flt.overdue:
        query = query.where(
            RegisterDocument.deadline.is_not(None),
            RegisterDocument.deadline < today,
            RegisterDocument.status.in_([s.value for s in OPEN]),
        )
    if flt.numbered_only:
        query = query.where(RegisterDocument.incoming_number.is_not(None))
    if flt.year is not None:
        query = query.where(RegisterDocument.year == flt.year)
    query = query.order_by(
        RegisterDocument.register_id,
        RegisterDocument.year,
        RegisterDocument.incoming_number.is_(None),
        RegisterDocument.incoming_number,
        RegisterDocument.received_at,
        RegisterDocument.id,
    )
    if flt.agency is None and flt.limit is not None:
        query = query.limit(flt.limit)
    rows = list(session.scalars(query).unique())
    if flt.agency is not None:
        wanted = _fold(flt.agency)
        rows = [
            r
            for r in rows
            if _fold(r.agency_code) == wanted or (wanted and wanted in _fold(r.agency_name))
        ]
        if flt.limit is not None:
            rows = rows[: flt.limit]
    return rows


_NUMBER_REF = re.compile(r"^\s*(\d+)\s*/\s*(\d{4})\s*$")


def find_document(session: Session, ref: str, register_code: str | None = None) -> RegisterDocument:
    """By internal id (``42``) or by incoming number and year (``15/2026``; give the
    register code when several registers exist)."""
    match = _NUMBER_REF.match(ref)
    if match:
        query = select(RegisterDocument).where(
            RegisterDocument.incoming_number == int(match.group(1)),
            RegisterDocument.year == int(match.group(2)),
        )
        if register_code:
            query = query.where(
                RegisterDocument.register_id == get_register(session, register_code).id
            )
        found = list(session.scalars(query))
        if len(found) > 1:
            codes = ", ".join(sorted(d.register.code for d in found))
            raise NotFoundError(
                f"number {ref.strip()} exists in several registers ({codes}); give --register"
            )
        if found:
            return found[0]
        raise NotFoundError(f"no document with incoming number {ref.strip()}")
    if ref.strip().isdigit():
        document = session.get(RegisterDocument, int(ref.strip()))
        if document is not None:
            return document
    raise NotFoundError(f"no document {ref!r} (give an id, or NUMBER/YEAR such as 15/2026)")


def show_time(value: datetime | None, zone: tzinfo) -> str | None:
    if value is None:
        return None
    return value.astimezone(zone).isoformat(timespec="seconds")


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def document_view(
    document: RegisterDocument, zone: tzinfo = VIETNAM, today: date | None = None
) -> dict[str, Any]:
    """The stable JSON schema of one register entry (docs/register.md)."""
    today = today or local_today(zone)
    status = DocumentStatus(document.status)
    urgency = Urgency(document.urgency)
    return {
        "id": document.id,
        "register": document.register.code,
        "incoming_number": document.incoming_number,
        "year": document.year,
        "received_at": show_time(document.received_at, zone),
        "registered_at": show_time(document.registered_at, zone),
        "agency_code": document.agency_code,
        "agency_name": document.agency_name,
        "sender": document.sender,
        "recipient": document.recipient,
        "number_notation": document.number_notation,
        "issued_date": _day(document.issued_date),
        "doc_type": document.doc_type,
        "abstract": document.abstract,
        "urgency": urgency.value,
        "urgency_label": urgency.label,
        "signer": document.signer,
        "page_count": document.page_count,
        "attachment_count": document.attachment_count,
        "mail_date": show_time(document.mail_date, zone),
        "language": document.language,
        "signature_outcome": document.signature_outcome,
        "signature_reason": document.signature_reason,
        "status": status.value,
        "status_label": status.label,
        "status_exchange_code": status.exchange_code,
        "deadline": _day(document.deadline),
        "overdue": is_overdue(document, today),
        "assigned_to": document.assigned_to,
        "subject": document.subject,
        "message_id": document.message_id,
        "queue_id": document.queue_id,
        "duplicates": document.duplicates,
        "note": document.note,
        "attachments": [
            {
                "filename": link.filename,
                "content_type": link.content_type,
                "role": link.role,
                "sha256": link.attachment.sha256,
                "size": link.attachment.size,
                "stored": link.attachment.stored,
            }
            for link in document.attachments
        ],
        "history": [
            {
                "at": show_time(entry.at, zone),
                "actor": entry.actor,
                "from_status": entry.from_status,
                "to_status": entry.to_status,
                "reason": entry.reason,
                "assigned_to": entry.assigned_to,
            }
            for entry in document.history
        ],
        "deliveries": [
            {
                "recipient": d.recipient,
                "queue_id": d.queue_id,
                "kind": d.kind,
                "at": show_time(d.at, zone),
            }
            for d in document.deliveries
        ],
    }
