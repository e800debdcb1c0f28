"""Entering documents into a register: numbering, de-duplication, attachments, history.

:func:`register_document` takes a plain :class:`DocumentInput` (built by the recorder
from a message and its verdict, or by tests and the bench directly) and writes it into
one register inside the caller's transaction; it never commits.

Rules:
  * signature outcome ``valid``: status ``registered`` with the next incoming number;
  * ``reference_only``: status ``arrived``, no number (chỉ có giá trị tham khảo);
  * refused (``invalid`` or refused by the pipeline): status ``refused``, no number;
  * the same message (Message-ID + content) or the same document from the same sender
    (same main attachment SHA-256, or same number and notation from the same issuing
    agency) links to the first entry and takes no new number. A valid copy of a document
    first received as reference-only numbers that first entry instead (history says so).
    A refused entry is never the "first entry" of a later, acceptable copy.
All registrations in a register are serialised by a lock on its row, so the duplicate
check and the numbering see every earlier registration.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailsvc.db.base import table_of, utcnow
from mailsvc.register import search
from mailsvc.register.attachments import AttachmentInput
from mailsvc.register.models import (
    Attachment,
    DocumentAttachment,
    DocumentDelivery,
    DocumentHistory,
    Register,
    RegisterDocument,
)
from mailsvc.register.numbering import lock_register, next_number, register_year
from mailsvc.register.registers import RegisterRef
from mailsvc.register.statuses import DocumentStatus
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM

SYSTEM_ACTOR = "mailsvc"


@dataclass(frozen=True)
class DeliveryInput:
    """A delivered copy (message record) that carried the document."""

    recipient: str
    queue_id: str = ""
    message_record_id: int | None = None


@dataclass(frozen=True)
class DocumentInput:
    received_at: datetime
    sender: str
    signature_outcome: DocumentOutcome
    signature_reason: str = ""
    refused: bool = False
    refusal_reason: str = ""
    recipient: str = ""
    message_key: str = ""
    message_id: str = ""
    queue_id: str = ""
    subject: str = ""
    agency_code: str = ""
    agency_name: str = ""
    number_notation: str = ""
    issued_date: date | None = None
    doc_type: str = ""
    abstract: str = ""
    urgency: Urgency = Urgency.NORMAL
    signer: str = ""
    deadline: date | None = None
    attachments: tuple[AttachmentInput, ...] = ()
    deliveries: tuple[DeliveryInput, ...] = ()
    note: str = ""
    text: str = ""  # the main document's text, for the search index only
    page_count: int = 0  # pages of the main document (0: unknown or no pages)
    mail_date: datetime | None = None  # the message's Date header (time sent), aware
    language: str = ""  # "vi", "en", ... of the document's text

    @property
    def attachment_count(self) -> int:
        """Files the document carries, detached signature files not counted."""
        return sum(1 for a in self.attachments if a.role != "signature")

    @property
    def main_sha256(self) -> str:
        for attachment in self.attachments:
            if attachment.role == "main":
                return attachment.sha256
        return ""

    @property
    def ref_key(self) -> str:
        return reference_key(self.agency_code or self.agency_name, self.number_notation)


@dataclass(frozen=True)
class Registration:
    """What happened to one document in one register."""

    document_id: int
    register_code: str
    incoming_number: int | None
    year: int
    status: DocumentStatus
    signature_outcome: DocumentOutcome
    urgency: Urgency
    fresh: bool  # a new entry (False: linked to the first entry)
    numbered_now: bool = False  # a number was given by this registration
    notes: tuple[str, ...] = field(default=())

    @property
    def number_text(self) -> str:
        return f"{self.incoming_number}/{self.year}" if self.incoming_number else ""


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "").strip()


def reference_key(agency: str, number_notation: str) -> str:
    """Dedup key for "number and notation from the issuing agency" ("" when incomplete)."""
    agency_part = " ".join(_nfc(agency).casefold().split())
    number_part = "".join(_nfc(number_notation).casefold().split())
    if not agency_part or not number_part:
        return ""
    return hashlib.sha256(f"{agency_part}\0{number_part}".encode()).hexdigest()


def history_values(
    *,
    actor: str,
    to_status: DocumentStatus,
    from_status: DocumentStatus | None,
    reason: str,
    assigned_to: str = "",
    at: datetime | None = None,
) -> dict[str, Any]:
    """The columns of one history row (but its document)."""
    return {
        "at": at or utcnow(),
        "actor": actor,
        "from_status": from_status.value if from_status else None,
        "to_status": to_status.value,
        "reason": _nfc(reason),
        "assigned_to": _nfc(assigned_to),
    }


def add_history(
    session: Session,
    document: RegisterDocument,
    *,
    actor: str,
    to_status: DocumentStatus,
    from_status: DocumentStatus | None,
    reason: str,
    assigned_to: str = "",
    at: datetime | None = None,
) -> DocumentHistory:
    entry = DocumentHistory(
        document=document,
        **history_values(
            actor=actor,
            to_status=to_status,
            from_status=from_status,
            reason=reason,
            assigned_to=assigned_to,
            at=at,
        ),
    )
    session.add(entry)
    return entry


def number_document(
    session: Session, document: RegisterDocument, zone: tzinfo, at: datetime | None = None
) -> int:
    """Give ``document`` the next number of its register (for the year of ``at``)."""
    at = at or utcnow()
    year = register_year(at, zone)
    document.incoming_number = next_number(session, document.register_id, year)
    document.year = year
    document.registered_at = at
    return document.incoming_number


_DOCUMENTS = table_of(RegisterDocument)
_ATTACHMENTS = table_of(Attachment)
_HISTORY = table_of(DocumentHistory)
_LINKS = table_of(DocumentAttachment)
_DELIVERIES = table_of(DocumentDelivery)
_INSERT_DOCUMENT = insert(_DOCUMENTS).returning(_DOCUMENTS.c.id)


@functools.cache
def _first_query(by_key: bool, by_main: bool, by_ref: bool, refused: bool) -> Select[Any]:
    """The id of the first entry of the same document in a register, as a Core statement
    with parameters (built once per shape: building and caching an ORM statement for
    every document cost more CPU than the query)."""
    c = _DOCUMENTS.c
    keys = []
    if by_key:
        keys.append(c.message_key == bindparam("message_key"))
    same_doc = []
    if by_main:
        same_doc.append(c.main_sha256 == bindparam("main_sha256"))
    if by_ref:
        same_doc.append(c.ref_key == bindparam("ref_key"))
    if same_doc:
        keys.append(and_(c.sender == bindparam("sender"), or_(*same_doc)))
    status = c.status == DocumentStatus.REFUSED.value
    # The entry of the same file before one that only shares the number and notation.
    order = [case((c.main_sha256 == bindparam("main_sha256"), 0), else_=1)] if by_main else []
    return (
        select(c.id)
        .where(c.register_id == bindparam("register_id"), or_(*keys))
        .where(status if refused else ~status)
        .order_by(*order, c.id)
        .limit(1)
    )


def _find_first(
    session: Session, register: Register | RegisterRef, doc: DocumentInput
) -> RegisterDocument | None:
    by_main = bool(doc.main_sha256) and bool(doc.sender)
    by_ref = bool(doc.ref_key) and bool(doc.sender)
    if not doc.message_key and not by_main and not by_ref:
        return None
    query = _first_query(bool(doc.message_key), by_main, by_ref, doc.refused)
    session.flush()  # what the ORM's autoflush did for the ORM query this replaced
    found = (
        session.connection()
        .execute(
            query,
            {
                "register_id": register.id,
                "message_key": doc.message_key,
                "main_sha256": doc.main_sha256,
                "ref_key": doc.ref_key,
                "sender": doc.sender,
            },
        )
        .scalar_one_or_none()
    )
    return session.get(RegisterDocument, found) if found is not None else None


@functools.cache
def _attachment_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (sha256) DO UPDATE ... RETURNING id, with parameters, built
    once per database kind."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = _ATTACHMENTS
    statement = dialect_insert(table).values(
        sha256=bindparam("sha256"),
        size=bindparam("size"),
        stored=bindparam("stored"),
        created_at=bindparam("created_at"),
    )
    return statement.on_conflict_do_update(
        index_elements=["sha256"],
        set_={"stored": table.c.stored | statement.excluded.stored},
    ).returning(table.c.id)


def _attachment_id(session: Session, item: AttachmentInput, stored: bool) -> int:
    """The id of the attachment row for ``item.sha256`` (created if missing, in one
    statement; ``stored`` only ever turns on)."""
    connection = session.connection()
    upsert = _attachment_upsert(connection.dialect.name)
    values = {"sha256": item.sha256, "size": item.size, "stored": stored, "created_at": utcnow()}
    return int(connection.execute(upsert, values).scalar_one())


def _save_attachments(
    session: Session, attachments: tuple[AttachmentInput, ...], blobs: BlobStore | None
) -> dict[str, int]:
    """Blobs (fsynced) and attachment rows, by SHA-256 -> row id. Done before the
    register lock: content-addressed rows need no serialisation."""
    ids: dict[str, int] = {}
    for item in attachments:
        stored = item.data is not None and blobs is not None
        if stored:
            assert blobs is not None and item.data is not None
            blobs.put(item.data, item.sha256)
        ids[item.sha256] = _attachment_id(session, item, stored)
    return ids


def _attachment_links(
    attachments: tuple[AttachmentInput, ...],
    ids: dict[str, int],
    linked: set[tuple[str, str]],
    position: int,
) -> list[dict[str, Any]]:
    """Columns of the attachment links not ``linked`` yet (sha256, file name), numbered
    from ``position`` (but their document)."""
    rows = []
    for item in attachments:
        filename = _nfc(item.filename)[:512]
        if (item.sha256, filename) in linked:
            continue
        linked.add((item.sha256, filename))
        rows.append(
            {
                "attachment_id": ids[item.sha256],
                "filename": filename,
                "content_type": item.content_type[:255],
                "role": item.role,
                "position": position,
            }
        )
        position += 1
    return rows


def _deliveries(doc: DocumentInput, kind: str) -> list[dict[str, Any]]:
    """Columns of the delivery rows of ``doc`` (but their document)."""
    rows = []
    for delivery in doc.deliveries:
        rows.append(
            {
                "message_record_id": delivery.message_record_id,
                "queue_id": delivery.queue_id,
                "recipient": delivery.recipient,
                "kind": kind,
                "at": doc.received_at,
            }
        )
        kind = "copy" if kind == "first" else kind
    return rows


def _link_attachments(
    session: Session,
    document: RegisterDocument,
    attachments: tuple[AttachmentInput, ...],
    ids: dict[str, int],
) -> None:
    """Link ``attachments`` to an entry that already has links (ORM: its collection stays
    current for the rest of the transaction)."""
    linked = {(link.attachment.sha256, link.filename) for link in document.attachments}
    for row in _attachment_links(attachments, ids, linked, len(document.attachments)):
        session.add(DocumentAttachment(document=document, **row))


def _link_deliveries(
    session: Session, document: RegisterDocument, doc: DocumentInput, kind: str
) -> None:
    for row in _deliveries(doc, kind):
        session.add(DocumentDelivery(document=document, **row))


def _result(
    register: Register | RegisterRef, document: RegisterDocument, *, fresh: bool, numbered_now: bool
) -> Registration:
    return Registration(
        document_id=document.id,
        register_code=register.code,
        incoming_number=document.incoming_number,
        year=document.year,
        status=DocumentStatus(document.status),
        signature_outcome=DocumentOutcome(document.signature_outcome),
        urgency=Urgency(document.urgency),
        fresh=fresh,
        numbered_now=numbered_now,
    )


def register_document(
    session: Session,
    register: Register | RegisterRef,
    doc: DocumentInput,
    *,
    blobs: BlobStore | None = None,
    zone: tzinfo = VIETNAM,
    actor: str = SYSTEM_ACTOR,
) -> Registration:
    """Enter ``doc`` into ``register`` (or link it to its first entry). Never commits."""
    ids = _save_attachments(session, doc.attachments, blobs)
    lock_register(session, register.id)
    first = _find_first(session, register, doc)
    if first is not None and _valid_with_other_content(first, doc):
        # Numbers and notations are predictable: a reference-only entry of that number
        # may be a forgery sent first. The valid document is entered on its own, with its
        # own content; the earlier entry stays reference only and says so.
        add_history(
            session,
            first,
            actor=actor,
            from_status=DocumentStatus(first.status),
            to_status=DocumentStatus(first.status),
            reason=(
                f"a legally valid document with the same number and notation but other "
                f"content arrived (queue id {doc.queue_id}): entered separately"
            ),
            at=doc.received_at,
        )
        first = None
    if first is not None:
        return _link_duplicate(session, register, first, doc, ids=ids, zone=zone, actor=actor)

    valid = doc.signature_outcome is DocumentOutcome.VALID and not doc.refused
    year = register_year(doc.received_at, zone)
    number = next_number(session, register.id, year) if valid else None
    if doc.refused:
        status = DocumentStatus.REFUSED
    elif valid:
        status = DocumentStatus.REGISTERED
    else:
        status = DocumentStatus.ARRIVED
    values: dict[str, Any] = dict(
        register_id=register.id,
        incoming_number=number,
        year=year,
        received_at=doc.received_at,
        registered_at=doc.received_at if valid else None,
        agency_code=_nfc(doc.agency_code)[:64],
        agency_name=_nfc(doc.agency_name)[:512],
        sender=doc.sender[:320],
        recipient=doc.recipient[:320],
        message_record_id=doc.deliveries[0].message_record_id if doc.deliveries else None,
        queue_id=doc.queue_id[:32],
        message_id=doc.message_id[:998],
        subject=_nfc(doc.subject),
        number_notation=_nfc(doc.number_notation)[:128],
        issued_date=doc.issued_date,
        doc_type=_nfc(doc.doc_type)[:64],
        abstract=_nfc(doc.abstract),
        urgency=doc.urgency.value,
        signer=_nfc(doc.signer)[:256],
        page_count=max(0, doc.page_count),
        attachment_count=doc.attachment_count,
        mail_date=doc.mail_date,
        language=doc.language[:16],
        signature_outcome=doc.signature_outcome.value,
        signature_reason=doc.signature_reason[:64],
        status=status.value,
        deadline=doc.deadline,
        note=_nfc(doc.note),
        message_key=doc.message_key,
        main_sha256=doc.main_sha256,
        ref_key=doc.ref_key,
        duplicates=0,
        updated_at=utcnow(),
    )
    # Core inserts: the entry, its history, links and deliveries are new rows that nothing
    # else in this transaction holds as objects, and the ORM's unit of work cost more CPU
    # than the database (once per registered document, in the SMTP process's transaction).
    connection = session.connection()
    document_id = int(connection.execute(_INSERT_DOCUMENT, values).scalar_one())
    arrival = "received by mail"
    if doc.signature_outcome is DocumentOutcome.REFERENCE_ONLY and not doc.refused:
        arrival += f"; reference only ({doc.signature_reason or 'not legally valid'})"
    history = [
        history_values(
            actor=actor,
            from_status=None,
            to_status=DocumentStatus.ARRIVED,
            reason=arrival,
            at=doc.received_at,
        )
    ]
    if status is not DocumentStatus.ARRIVED:
        reason = (
            doc.refusal_reason or f"refused: {doc.signature_reason or 'policy'}"
            if doc.refused
            else "legally valid digital signature: registered automatically"
        )
        history.append(
            history_values(
                actor=actor,
                from_status=DocumentStatus.ARRIVED,
                to_status=status,
                reason=reason,
                at=doc.received_at,
            )
        )
    links = _attachment_links(doc.attachments, ids, set(), 0)
    deliveries = _deliveries(doc, "first")
    for table, rows in ((_HISTORY, history), (_LINKS, links), (_DELIVERIES, deliveries)):
        if rows:
            connection.execute(insert(table), [{**row, "document_id": document_id} for row in rows])
    # a detached copy of the row for the search index and the result (never added)
    document = RegisterDocument(id=document_id, **values)
    search.index_document(session, document, body=doc.text, new=True)
    return _result(register, document, fresh=True, numbered_now=valid)


def _valid_with_other_content(first: RegisterDocument, doc: DocumentInput) -> bool:
    """``doc`` is legally valid, ``first`` a reference-only entry whose main document is
    not the same file (found by number and notation only)."""
    return (
        not doc.refused
        and doc.signature_outcome is DocumentOutcome.VALID
        and first.incoming_number is None
        and first.status == DocumentStatus.ARRIVED.value
        and first.message_key != doc.message_key
        and first.main_sha256 != doc.main_sha256
    )


def _link_duplicate(
    session: Session,
    register: Register | RegisterRef,
    first: RegisterDocument,
    doc: DocumentInput,
    *,
    ids: dict[str, int],
    zone: tzinfo,
    actor: str,
) -> Registration:
    numbered = False
    upgrade = (
        not doc.refused
        and doc.signature_outcome is DocumentOutcome.VALID
        and first.incoming_number is None
        and first.status == DocumentStatus.ARRIVED.value
    )
    if upgrade:
        # The first entry was reference-only; this copy is legally valid: number it.
        number_document(session, first, zone, at=doc.received_at)
        first.signature_outcome = DocumentOutcome.VALID.value
        first.signature_reason = doc.signature_reason[:64]
        first.signer = _nfc(doc.signer)[:256] or first.signer
        first.status = DocumentStatus.REGISTERED.value
        numbered = True
        add_history(
            session,
            first,
            actor=actor,
            from_status=DocumentStatus.ARRIVED,
            to_status=DocumentStatus.REGISTERED,
            reason=f"a legally valid copy arrived (queue id {doc.queue_id}): registered",
            at=doc.received_at,
        )
        _link_attachments(session, first, doc.attachments, ids)
        _link_deliveries(session, first, doc, "valid-copy")
    else:
        first.duplicates += 1
        _link_deliveries(session, first, doc, "duplicate")
    first.updated_at = utcnow()
    session.flush()
    return _result(register, first, fresh=False, numbered_now=numbered)
