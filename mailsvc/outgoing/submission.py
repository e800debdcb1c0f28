"""Mail from our officials to other servers: into the outbound queue and the outgoing
register, inside the acceptance transaction (before the SMTP 250).

The queued copy is the message as submitted with our ``Received`` field on top (no
``X-Mailsvc-*`` fields: those are for our own mailboxes). Every recipient gets its own
queue row, all carrying the message key so the worker sends one transaction per
domain. A document (a document attachment, a signature, or text the metadata stage
recognises as an official document) is entered in the outgoing register with one
delivery line per recipient; a status message (receipt, recall ...) is not.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy.orm import Session

from mailsvc import headers as trace
from mailsvc.db.models import MessageRecord
from mailsvc.delivery import message_key
from mailsvc.documents.metadata import DocumentMetadata, urgency_from_subject
from mailsvc.interfaces import Directory
from mailsvc.message import InboundMessage
from mailsvc.notify.exchange import message_status
from mailsvc.outbound import queue
from mailsvc.outbound.models import SUBMISSION
from mailsvc.outgoing.issuing import draft_recipients
from mailsvc.outgoing.register import OutgoingInput, RecipientInput, record_document
from mailsvc.register.recorder import attachments_of
from mailsvc.register.urgency import urgency_of
from mailsvc.signatures.report import CertificateKind, DocumentSignatureReport
from mailsvc.verdict import Verdict

log = logging.getLogger(__name__)


class SubmissionQueue:
    """``mailsvc.delivery.Submissions`` for the running server."""

    def __init__(
        self,
        is_local_domain: Callable[[str], bool],
        *,
        hostname: str,
        directory: Directory | None = None,
        wake: Callable[[], None] | None = None,
        dispatch: str = "",
    ) -> None:
        self.is_local_domain = is_local_domain
        self.dispatch = dispatch.lower()
        self.hostname = hostname
        self.directory = directory
        self.wake = wake

    def is_remote(self, recipient: str) -> bool:
        """At another server, or the dispatch address (a draft: nothing is sent)."""
        if self.dispatch and recipient.lower() == self.dispatch:
            return True
        return not self.is_local_domain(recipient.rpartition("@")[2].lower())

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> None:
        key = message_key(msg)
        if self.dispatch and any(r.recipient == self.dispatch for r in records):
            self._draft(session, msg, verdict, [r.recipient for r in records], key)
            return
        received = trace.received(
            helo=msg.client_helo,
            client_ip=msg.client_ip,
            hostname=self.hostname,
            protocol="ESMTPSA" if msg.tls else "ESMTPA",
            queue_id=msg.queue_id,
            recipient=records[0].recipient if len(records) == 1 else "",
            when=msg.received_at,
        )
        data = trace.prepend(msg.raw, [received])
        rows = [
            queue.enqueue(
                session,
                data,
                record.recipient,
                kind=SUBMISSION,
                about=msg.message_id,
                sender=msg.mail_from,
                message_key=key,
            )
            for record in records
        ]
        log.info("%s: %d recipient(s) at other servers queued", msg.queue_id, len(rows))
        document = outgoing_input(
            msg, verdict, [RecipientInput(r.recipient, r.id) for r in rows], key
        )
        if document is not None:
            entry = record_document(session, document, directory=self.directory)
            log.info("%s: outgoing register entry %d", msg.queue_id, entry.id)

    def _draft(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        envelope: Sequence[str],
        key: str,
    ) -> None:
        """A draft for the clerk to issue: registered as such, nothing queued (the other
        envelope recipients at other servers become the draft's recipients)."""
        recipients = draft_recipients(
            msg,
            envelope,
            dispatch=self.dispatch,
            is_local_domain=self.is_local_domain,
            directory=self.directory,
        )
        base = outgoing_input(msg, verdict, [], key, force=True)
        assert base is not None
        document = replace(
            base,
            kind="issued",
            state="draft",
            recipients=tuple(RecipientInput(r) for r in recipients),
        )
        entry = record_document(session, document, directory=self.directory)
        log.info(
            "%s: draft %d for issuing, %d recipient(s) named",
            msg.queue_id,
            entry.id,
            len(recipients),
        )

    def after_commit(self) -> None:
        if self.wake is not None:
            self.wake()


def outgoing_input(
    msg: InboundMessage,
    verdict: Verdict,
    recipients: Sequence[RecipientInput],
    key: str,
    *,
    force: bool = False,
) -> OutgoingInput | None:
    """The register entry for a sent message, or None when it is not a document (unless
    ``force``: a draft for issuing is entered whatever it looks like)."""
    if message_status(msg, verdict) is not None and not force:
        return None
    attachments = attachments_of(msg, verdict)
    reports: list[DocumentSignatureReport] = verdict.payloads(DocumentSignatureReport)
    found: list[DocumentMetadata] = verdict.payloads(DocumentMetadata)
    metadata = found[0] if found else None
    main = next((a for a in attachments if a.role == "main"), None)
    is_document = (
        main is not None
        or any(r.signed for r in reports)
        or (metadata is not None and metadata.is_official)
    )
    if not is_document and not force:
        return None
    subject = unicodedata.normalize("NFC", str(msg.headers.get("Subject", "") or "")).strip()
    signer = metadata.signer if metadata is not None else ""
    for report in reports:
        personal = [
            s
            for s in report.signatures
            if s.passed and s.signer_name and s.kind is CertificateKind.PERSONAL
        ]
        if personal:
            signer = personal[0].signer_name
            break
    urgency = urgency_of(metadata.urgency if metadata and metadata.urgency else "")
    if not (metadata and metadata.urgency):
        urgency = urgency_of(urgency_from_subject(subject))
    return OutgoingInput(
        sender=(msg.from_address or msg.mail_from).lower(),
        created_at=msg.received_at,
        message_id=msg.message_id,
        message_key=key,
        queue_id=msg.queue_id,
        subject=subject,
        blob_sha256=msg.sha256,
        recipients=tuple(recipients),
        number_notation=metadata.number_notation if metadata else "",
        issued_date=metadata.issued_date if metadata else None,
        doc_type=metadata.doc_type if metadata else "",
        abstract=(metadata.abstract if metadata else "") or subject,
        signer=signer,
        urgency=urgency.value,
        main_filename=main.filename if main else "",
        main_sha256=main.sha256 if main else "",
    )
