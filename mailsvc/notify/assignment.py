"""The copy of a document that goes to whoever it is assigned to (chuyển xử lý).

A clean message from the clerk's (or leader's) mailbox: the instructions (ý kiến chỉ
đạo), the deadline, the register entry's fields, and the document's own files taken from
the blob store, byte for byte. It joins the durable outbound queue in the same
transaction as the assignment, so the two commit together. A unit (đơn vị) as assignee
means every enabled mailbox of that unit. Only people of the document's own agency can be
assignees: a document never goes to another agency's mailbox this way (nor to an
administrator's, which is not a person handling documents).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from mailsvc.accounts import ADMIN_ROLE
from mailsvc.db.models import Mailbox
from mailsvc.outbound import queue
from mailsvc.outbound.models import OutboundMessage
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM

KIND = "assignment"


@dataclass(frozen=True)
class Assignment:
    document_id: int
    assignee: str
    instructions: str
    deadline: date | None
    by_address: str
    by_name: str


def _one_line(value: str) -> str:
    """``value`` for a header: every run of whitespace, line breaks included (CR, LF,
    U+2028...), folded to one space, so no stored value can break or add a header."""
    return " ".join(value.split())


def of_agency(register: Register) -> ColumnElement[bool]:
    """The mailboxes of the register's agency (or, for a register of a mail domain, of that
    domain) that may handle its documents: enabled, not removed, not administrators."""
    if register.agency_id is not None:
        same: ColumnElement[bool] = Mailbox.agency_id == register.agency_id
    else:
        same = func.lower(Mailbox.address).endswith(f"@{register.domain.lower()}", autoescape=True)
    usable = Mailbox.enabled.is_(True) & Mailbox.removed.is_(False)
    return same & usable & (Mailbox.role != ADMIN_ROLE)


def assignee_mailboxes(session: Session, assignee: str, register: Register) -> list[Mailbox]:
    """The mailboxes behind an assignee of a document in ``register``: one address, or
    every mailbox of a unit, among those of ``of_agency(register)`` only."""
    target = assignee.strip().lower()
    who = Mailbox.address == target if "@" in target else func.lower(Mailbox.unit) == target
    return list(
        session.scalars(select(Mailbox).where(who, of_agency(register)).order_by(Mailbox.address))
    )


class AssignmentMailer:
    def __init__(self, templates: Path, blobs: BlobStore, hostname: str) -> None:
        self._env = Environment(
            loader=FileSystemLoader(templates),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self._blobs = blobs
        self._hostname = hostname

    def compose(
        self, document: RegisterDocument, assignment: Assignment, to: Sequence[Mailbox]
    ) -> EmailMessage:
        number = f"{document.incoming_number}/{document.year}" if document.incoming_number else ""
        body = self._env.get_template("assignment.txt.j2").render(
            by_name=assignment.by_name,
            instructions=assignment.instructions,
            deadline=assignment.deadline.strftime("%d/%m/%Y") if assignment.deadline else "",
            incoming_number=number,
            number_notation=document.number_notation,
            agency=document.agency_name or document.agency_code,
            abstract=document.abstract or document.subject,
            issued_date=document.issued_date.strftime("%d/%m/%Y") if document.issued_date else "",
            document_id=document.id,
        )
        msg = EmailMessage()
        msg["From"] = Address(_one_line(assignment.by_name), addr_spec=assignment.by_address)
        msg["To"] = ", ".join(m.address for m in to)
        title = _one_line(document.number_notation) or number
        abstract = _one_line(document.abstract or document.subject)[:150]
        msg["Subject"] = (
            f"Chuyển xử lý: {title} – {abstract}" if title else (f"Chuyển xử lý: {abstract}")
        )
        msg["Date"] = format_datetime(datetime.now(VIETNAM))
        msg["Message-ID"] = make_msgid(domain=self._hostname)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Mailsvc-Assignment"] = str(document.id)
        msg.set_content(body)
        for link in document.attachments:
            if link.role == "signature" or not link.attachment.stored:
                continue
            data = self._blobs.get(link.attachment.sha256)
            ctype = link.content_type or mimetypes.guess_type(link.filename)[0] or ""
            maintype, _, subtype = ctype.partition("/")
            if not subtype:
                maintype, subtype = "application", "octet-stream"
            msg.add_attachment(
                data, maintype=maintype, subtype=subtype, filename=_one_line(link.filename)
            )
        return msg

    def queue(
        self, session: Session, document: RegisterDocument, assignment: Assignment
    ) -> list[OutboundMessage]:
        to = assignee_mailboxes(session, assignment.assignee, document.register)
        if not to:
            return []
        message = self.compose(document, assignment, to)
        return [
            queue.enqueue(
                session,
                message,
                mailbox.address,
                kind=KIND,
                about=f"register-document:{document.id}",
                sender=assignment.by_address,
            )
            for mailbox in to
        ]
