"""Recall (thu hồi, domain §8) and the status notices that follow the clerk's decisions.

A sender recalls a document it sent with a status message (``status_code`` "13" and
the original ``message_id`` in its JSON part). ``RecallRecorder``, inside the
acceptance transaction of that message, checks that it comes from the document's
sender (the sending domain authenticated: DMARC pass for the From: domain, SPF pass
for the envelope domain, or a logged-in submission), moves the register entry to
``recall_requested`` (history and audit entry) and queues a notice to the mailboxes
that received the document. The clerk then decides with the register CLI:

- ``mailsvc register set-status N recalled --reason ...``: the entry becomes
  ``recalled``, the delivered copies are moved to the "Thu hồi" folder, and the sender
  gets status 15 (recall done);
- ``mailsvc register refuse-recall N --reason ...``: the entry returns to its status
  before the request and the sender gets status 16 (recall refused).

``StatusNotifier`` queues those notices (and 02/03/04/05/06 for other status changes) in
the CLI's own transaction: the decision and its notice commit together, and the
server's outbound worker delivers them. Notices go only to a sender the acceptance rule
would answer (authenticated, not null, not ourselves): a forged sender never gets mail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.db.models import MessageRecord
from mailsvc.delivery import Annotations
from mailsvc.message import Direction, InboundMessage
from mailsvc.notify.exchange import (
    RECALL_REFUSED,
    RECALL_REQUESTED,
    StatusReport,
    message_status,
)
from mailsvc.notify.notices import NoticeComposer, StatusNotice, record_may_be_notified
from mailsvc.outbound.mailer import Mailer
from mailsvc.outbound.models import VOID_COPY, OutboundMessage
from mailsvc.outbound.queue import enqueue
from mailsvc.outcome import Accepted
from mailsvc.register import workflow
from mailsvc.register.models import RegisterDocument
from mailsvc.register.statuses import TRANSITIONS, DocumentStatus
from mailsvc.time import iso_local
from mailsvc.verdict import Status, Verdict

log = logging.getLogger(__name__)

# Status changes the sender hears about, with whether the clerk's reason goes along
# (an instruction to a unit is internal; a refusal's reason is for the sender).
NOTIFIED: dict[DocumentStatus, bool] = {
    DocumentStatus.REGISTERED: False,
    DocumentStatus.ASSIGNED: False,
    DocumentStatus.IN_PROGRESS: False,
    DocumentStatus.DONE: False,
    DocumentStatus.REFUSED: True,
    DocumentStatus.RECALLED: True,
}


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def recall_origins(msg: InboundMessage, verdict: Verdict) -> set[str]:
    """Domains the message is proven to come from."""
    passed = {f.reason for f in verdict.findings if f.status is Status.PASS}
    domains: set[str] = set()
    if msg.direction is Direction.SUBMISSION and msg.authenticated_as:
        domains.add(_domain(msg.mail_from or msg.authenticated_as))
    if "dmarc-pass" in passed and msg.from_address:
        domains.add(_domain(msg.from_address))
    if "spf-pass" in passed and msg.mail_from:
        domains.add(_domain(msg.mail_from))
    domains.discard("")
    return domains


def document_origins(session: Session, document: RegisterDocument) -> set[str]:
    domains = {_domain(document.sender)}
    if document.message_record_id is not None:
        record = session.get(MessageRecord, document.message_record_id)
        if record is not None:
            domains.add(_domain(record.mail_from))
    domains.discard("")
    return domains


class RecallRecorder:
    """Acceptance recorder (and follower) for incoming recall requests (status 13)."""

    def __init__(
        self, composer: NoticeComposer, mailer: Mailer | None = None, *, auto_confirm: bool = False
    ) -> None:
        self.composer = composer
        self.mailer = mailer
        # Seed 002 Điều 10.2: voiding a recalled copy is the receiver's duty, so the
        # running server carries the recall out at once (copies voided in every folder,
        # status 15 to the sender); refusing it is an administrator's override.
        self.auto_confirm = auto_confirm
        # Queue ids of accepted messages whose transaction queued mail: only those wake the
        # outbound worker (a plain message must not send it to the database).
        self._queued: set[str] = set()

    # -- Recorder protocol -------------------------------------------------------------
    def prepare(self, msg: InboundMessage, verdict: Verdict) -> None:
        return None

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations:
        notes = Annotations()
        report = message_status(msg, verdict)
        if report is None or report.status_code != RECALL_REQUESTED or not report.message_id:
            return notes  # (an edXML recall not in reply to the mail names no Message-ID)
        origins = recall_origins(msg, verdict)
        documents = session.scalars(
            select(RegisterDocument)
            .where(RegisterDocument.message_id == report.message_id)
            .order_by(RegisterDocument.id)
        ).all()
        if not documents:
            log.info("%s: recall of unknown document %s", msg.queue_id, report.message_id)
        for document in documents:
            if not origins & document_origins(session, document):
                log.warning(
                    "%s: recall of %s ignored: not from the document's sender (%s)",
                    msg.queue_id,
                    report.message_id,
                    ", ".join(sorted(origins)) or "unauthenticated",
                )
                continue
            current = DocumentStatus(document.status)
            if DocumentStatus.RECALL_REQUESTED not in TRANSITIONS[current]:
                log.info(
                    "%s: recall of document %d ignored in status %s",
                    msg.queue_id,
                    document.id,
                    current.value,
                )
                continue
            workflow.request_recall(
                session,
                document,
                actor=f"mail:{msg.from_address or msg.mail_from}",
                reason=report.reason,
            )
            self._tell_clerks(session, document, msg, report)
            self._queued.add(msg.queue_id)
            if self.auto_confirm:
                reason = report.reason or "Thu hồi theo đề nghị của cơ quan gửi"
                workflow.set_status(
                    session,
                    document,
                    DocumentStatus.RECALLED,
                    actor=f"mail:{msg.from_address or msg.mail_from}",
                    reason=reason,
                )
                StatusNotifier(self.composer).status_changed(
                    session,
                    document,
                    DocumentStatus.RECALL_REQUESTED,
                    DocumentStatus.RECALLED,
                    reason,
                )
            number = (
                f"; number={document.incoming_number}/{document.year}"
                if document.incoming_number
                else ""
            )
            notes.headers.append(
                ("X-Mailsvc-Recall", f"document={document.id}{number}; status={document.status}")
            )
            log.info("%s: document %d: %s", msg.queue_id, document.id, document.status)
        return notes

    def on_refuse(self, session: Session, msg: InboundMessage, verdict: Verdict) -> None:
        return None

    # -- Follower protocol: the queued notices are due now -------------------------------
    async def after_accept(self, msg: InboundMessage, verdict: Verdict, accepted: Accepted) -> None:
        if msg.queue_id in self._queued:
            self._queued.discard(msg.queue_id)
            if self.mailer is not None:
                self.mailer.wake()

    async def after_refuse(self, msg: InboundMessage, verdict: Verdict) -> None:
        return None

    def _tell_clerks(
        self,
        session: Session,
        document: RegisterDocument,
        msg: InboundMessage,
        report: StatusReport,
    ) -> None:
        clerks = sorted({d.recipient for d in document.deliveries if d.recipient})
        if not clerks and document.recipient:
            clerks = [document.recipient]
        number = f"{document.incoming_number}/{document.year}" if document.incoming_number else ""
        for clerk in clerks:
            body = self.composer.render(
                "recall_requested.txt.j2",
                {
                    "clerk": clerk,
                    "subject": document.subject,
                    "incoming_number": number,
                    "number_notation": document.number_notation,
                    "sender": msg.from_address or msg.mail_from,
                    "message_id": document.message_id,
                    "time": iso_local(msg.received_at),
                    "reason": report.reason,
                    "document_ref": number or str(document.id),
                    "hostname": self.composer.hostname,
                },
            )
            subject = "[Yêu cầu thu hồi] " + (
                f"Văn bản số đến {number}" if number else f"Văn bản {document.subject}"
            )
            enqueue(
                session,
                self.composer.alert(clerk, subject[:200], body),
                clerk,
                kind="alert-recall-requested",
                about=document.message_id,
            )


class StatusNotifier:
    """Queues the sender's notice for a status change, in the caller's transaction."""

    def __init__(self, composer: NoticeComposer) -> None:
        self.composer = composer

    def status_changed(
        self,
        session: Session,
        document: RegisterDocument,
        before: DocumentStatus,
        after: DocumentStatus,
        reason: str = "",
    ) -> list[OutboundMessage]:
        """After ``workflow.set_status``/``assign``: the notice (and, for ``recalled``,
        the voiding of the delivered copies). Returns the queued rows."""
        rows: list[OutboundMessage] = []
        if after is DocumentStatus.RECALLED:
            rows += self.void_copies(session, document)
        if after in NOTIFIED and (after is not before or after is DocumentStatus.ASSIGNED):
            code = after.exchange_code
            assert code is not None
            notice = self.notice(
                session, document, code, reason if NOTIFIED[after] else "", when=utcnow()
            )
            if notice is not None:
                rows.append(notice)
        return rows

    def recall_refused(
        self, session: Session, document: RegisterDocument, reason: str
    ) -> list[OutboundMessage]:
        """After ``workflow.refuse_recall``: status 16 to the sender."""
        row = self.notice(session, document, RECALL_REFUSED, reason, when=utcnow())
        return [row] if row is not None else []

    def notice(
        self,
        session: Session,
        document: RegisterDocument,
        code: str,
        reason: str,
        *,
        when: datetime,
    ) -> OutboundMessage | None:
        record = (
            session.get(MessageRecord, document.message_record_id)
            if document.message_record_id is not None
            else None
        )
        if record is None or not record_may_be_notified(record, self.composer.postmaster):
            log.info("document %d: no status %s notice (sender not notifiable)", document.id, code)
            return None
        notice = StatusNotice(
            recipient=record.mail_from,
            status_code=code,
            message_id=document.message_id,
            subject=document.subject,
            time=when,
            incoming_number=str(document.incoming_number or ""),
            number_notation=document.number_notation,
            reason=reason,
        )
        return enqueue(
            session,
            self.composer.status_message(notice),
            record.mail_from,
            kind=f"notice-{code}",
            about=document.message_id,
        )

    def void_copies(self, session: Session, document: RegisterDocument) -> list[OutboundMessage]:
        """Move every delivered copy of the document out of its mailbox's INBOX."""
        rows = []
        seen: set[tuple[str, str]] = set()
        for delivery in document.deliveries:
            key = (delivery.recipient, delivery.queue_id)
            if not delivery.recipient or not delivery.queue_id or key in seen:
                continue
            seen.add(key)
            rows.append(
                enqueue(session, b"", delivery.recipient, kind=VOID_COPY, about=delivery.queue_id)
            )
        return rows
