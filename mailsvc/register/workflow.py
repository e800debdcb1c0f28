"""Status changes and assignment, each with who, when and why, a history row and an
audit entry. Services never commit; the CLI command does."""

from __future__ import annotations

from datetime import date, tzinfo

from sqlalchemy.orm import Session

from mailsvc import audit
from mailsvc.db.base import utcnow
from mailsvc.errors import MailsvcError
from mailsvc.register.models import DocumentHistory, RegisterDocument
from mailsvc.register.numbering import lock_register
from mailsvc.register.registration import VIETNAM, add_history, number_document
from mailsvc.register.statuses import DocumentStatus, check_transition

# Changes an auditor will ask about: they must say why.
NEEDS_REASON = frozenset(
    {
        DocumentStatus.REGISTERED,
        DocumentStatus.REFUSED,
        DocumentStatus.RECALL_REQUESTED,
        DocumentStatus.RECALLED,
        DocumentStatus.DELETED,
    }
)


def _target(document: RegisterDocument) -> str:
    number = f" no {document.incoming_number}/{document.year}" if document.incoming_number else ""
    return f"register-document:{document.id}{number}"


def set_status(
    session: Session,
    document: RegisterDocument,
    target: DocumentStatus,
    *,
    actor: str,
    reason: str = "",
    zone: tzinfo = VIETNAM,
) -> DocumentHistory:
    """Move ``document`` to ``target`` if the transition table allows it.

    Registering an unnumbered document (the clerk accepts a reference-only one) gives
    it the next number of the current year. Assignment goes through :func:`assign`.
    """
    current = DocumentStatus(document.status)
    check_transition(current, target)
    if target is DocumentStatus.ASSIGNED:
        raise MailsvcError("use `assign` to hand a document to a unit or person")
    reason = reason.strip()
    if target in NEEDS_REASON and not reason:
        raise MailsvcError(f"a reason is required to change the status to {target.value}")
    details: dict[str, object] = {"from": current.value, "to": target.value, "reason": reason}
    if target is DocumentStatus.REGISTERED and document.incoming_number is None:
        lock_register(session, document.register_id)
        number_document(session, document, zone)
        details["incoming_number"] = document.incoming_number
        details["year"] = document.year
    document.status = target.value
    document.updated_at = utcnow()
    entry = add_history(
        session, document, actor=actor, from_status=current, to_status=target, reason=reason
    )
    audit.record(session, actor, "register.set-status", _target(document), details)
    session.flush()
    return entry


def assign(
    session: Session,
    document: RegisterDocument,
    assignee: str,
    *,
    actor: str,
    reason: str = "",
    deadline: date | None = None,
) -> DocumentHistory:
    """Hand the document to a unit or person (đã chuyển xử lý), optionally with a deadline."""
    assignee = assignee.strip()
    if not assignee:
        raise MailsvcError("say who the document is assigned to (--to)")
    current = DocumentStatus(document.status)
    if document.incoming_number is None and current is DocumentStatus.ARRIVED:
        raise MailsvcError(
            "the document has no incoming number yet; register it first "
            "(set-status ... registered --reason ...)"
        )
    check_transition(current, DocumentStatus.ASSIGNED)
    document.status = DocumentStatus.ASSIGNED.value
    document.assigned_to = assignee[:256]
    if deadline is not None:
        document.deadline = deadline
    document.updated_at = utcnow()
    entry = add_history(
        session,
        document,
        actor=actor,
        from_status=current,
        to_status=DocumentStatus.ASSIGNED,
        reason=reason.strip(),
        assigned_to=assignee,
    )
    audit.record(
        session,
        actor,
        "register.assign",
        _target(document),
        {
            "from": current.value,
            "assigned_to": assignee,
            "deadline": deadline.isoformat() if deadline else None,
            "reason": reason.strip(),
        },
    )
    session.flush()
    return entry


def request_recall(
    session: Session, document: RegisterDocument, *, actor: str, reason: str = ""
) -> DocumentHistory:
    """The sender asked to recall the document (status 13): it waits for the clerk."""
    return set_status(
        session,
        document,
        DocumentStatus.RECALL_REQUESTED,
        actor=actor,
        reason=reason.strip() or "Cơ quan gửi đề nghị thu hồi văn bản",
    )


def refuse_recall(
    session: Session, document: RegisterDocument, *, actor: str, reason: str
) -> DocumentHistory:
    """The clerk refuses a recall request: the document goes back to the status it had
    before the request (status message 16 to the sender)."""
    current = DocumentStatus(document.status)
    if current is not DocumentStatus.RECALL_REQUESTED:
        raise MailsvcError(f"document {document.id} has no recall request (status {current.value})")
    reason = reason.strip()
    if not reason:
        raise MailsvcError("a reason is required to refuse a recall")
    requests = [h for h in document.history if h.to_status == current.value]
    previous = DocumentStatus(requests[-1].from_status or DocumentStatus.ARRIVED.value)
    document.status = previous.value
    document.updated_at = utcnow()
    entry = add_history(
        session, document, actor=actor, from_status=current, to_status=previous, reason=reason
    )
    audit.record(
        session,
        actor,
        "register.refuse-recall",
        _target(document),
        {"from": current.value, "to": previous.value, "reason": reason},
    )
    session.flush()
    return entry
