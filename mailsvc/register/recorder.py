"""RegisterRecorder: the acceptance transaction's hook that fills the incoming register.

What is a document. A message delivered (action ``deliver``) that arrived from outside
(``inbound`` or ``fetched``; a ``submission`` only when it crosses from one agency to
another) and that carries a document: an attachment with a document file type (PDF,
office/ODF formats, RTF, archives, .p7m), or signed content (an S/MIME / PGP signature
on the message), or text the metadata stage judged an official document. Plain chatter
without such an attachment is not registered and gets no register headers, nor is a
status message of the exchange (receipt, recall request: ``mailsvc.notify.exchange``).

Which register. Each recipient's mailbox belongs to an agency: the agency's default
incoming register (code = the agency's code); a mailbox without agency uses its domain's
register. Recipients of one message in the same register share one entry.

What the delivered copy carries (ASCII header fields):
  X-Mailsvc-Register: <register code>; status=<status>[; number=<n>/<year>]
  X-Mailsvc-Register-Number: <n>/<year>               (numbered documents only)
  X-Mailsvc-Signature: <valid|reference_only|invalid>; reason=<code>
  X-Mailsvc-Urgency: <normal|urgent|very_urgent|immediate>
and the IMAP flag \\Flagged when the document is urgent.

Refusals. ``on_refuse`` records a refused document (status ``refused``, no number,
attachment hashes only, no content) when the refusal was decided by one of
``refusal_stages`` (default: the signature stage). Refusals for classified content,
viruses, spam or authentication are never entered here: their content must not be kept.
"""

from __future__ import annotations

import email.utils
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc.db.models import Agency, Mailbox, MessageRecord
from mailsvc.delivery import Annotations, message_key
from mailsvc.documents.extract import Analysis
from mailsvc.documents.metadata import DocumentMetadata, urgency_from_headers, urgency_from_subject
from mailsvc.interfaces import Directory
from mailsvc.message import Direction, InboundMessage
from mailsvc.notify.exchange import message_status
from mailsvc.outcome import Entry
from mailsvc.register.attachments import ATTACHMENTS, attachments_in, nfc
from mailsvc.register.attachments import attachments_task as attachments_task  # re-export
from mailsvc.register.registers import RegisterRef, recipient_register
from mailsvc.register.registration import (
    VIETNAM,
    AttachmentInput,
    DeliveryInput,
    DocumentInput,
    Registration,
    register_document,
)
from mailsvc.register.urgency import Urgency, urgency_of
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    DocumentSignatureReport,
)
from mailsvc.store.blobs import BlobStore
from mailsvc.verdict import Action, Verdict

log = logging.getLogger(__name__)

MESSAGE_DOCUMENT = "(message)"  # DocumentSignatureReport.document for the message itself
FLAGGED = "\\Flagged"
PREPARED_MAX = (
    256  # messages prepared and not yet accepted (bounded: a skipped accept leaks nothing)
)


def attachments_of(msg: InboundMessage, verdict: Verdict | None = None) -> list[AttachmentInput]:
    """The message's files (data included), with roles main / annex / signature: from
    the worker's analysis when the verdict carries it, else from a parse here."""
    if msg.is_plain_text:
        return []
    analysis = verdict.analysis if verdict is not None else None
    if isinstance(analysis, Analysis) and ATTACHMENTS in analysis.results:
        return list(analysis.results[ATTACHMENTS])
    return attachments_in(msg.parsed)


def _pick_report(
    reports: Sequence[DocumentSignatureReport], main: AttachmentInput | None
) -> DocumentSignatureReport | None:
    """The signature report that gives the entry its legal value. With a main file: the
    report made from exactly its bytes (``DocumentSignatureReport.applies_to``), never one
    that only carries its name (``x.pdf.p7m`` names its report after the enclosed
    ``x.pdf``, and a second, unsigned ``x.pdf`` may sit beside it); none found, None.
    Without a main file (a document in the mail body): the message's own signature, and
    only one whose signed entity is the whole message (``whole_message``); a signed part
    beside unsigned ones vouches for nothing outside it."""
    if main is not None:
        return next((r for r in reports if r.applies_to(main.sha256)), None)
    return next((r for r in reports if r.whole_message), None)


# Fields a reading may take from the mail's subject when the document does not show them.
_SUBJECT_FIELDS = ("number_notation", "doc_type", "abstract")


def _content(
    metadata: DocumentMetadata | None, main: AttachmentInput | None, outcome: DocumentOutcome
) -> DocumentMetadata | None:
    """The reading whose number, date, type, abstract, signer and text the entry takes:
    only one made from the main file (by SHA-256), the file the outcome was judged on.
    A valid entry takes nothing from the unsigned mail either (fields the reading found
    only in the subject): what its validated document does not show stays empty for the
    clerk to fill in from the document itself."""
    if metadata is None or (main is not None and metadata.sha256 != main.sha256):
        return None
    if outcome is DocumentOutcome.VALID:
        subject_only = {n for n, where in metadata.sources if where == "subject"}
        subject_only &= set(_SUBJECT_FIELDS)
        if subject_only:
            metadata = replace(
                metadata,
                number_notation=""
                if "number_notation" in subject_only
                else metadata.number_notation,
                doc_type="" if "doc_type" in subject_only else metadata.doc_type,
                abstract="" if "abstract" in subject_only else metadata.abstract,
                sources=tuple(s for s in metadata.sources if s[0] not in subject_only),
            )
    return metadata


def _signer(report: DocumentSignatureReport | None, metadata: DocumentMetadata | None) -> str:
    if report is not None:
        passed = [s for s in report.signatures if s.passed and s.signer_name]
        personal = [s for s in passed if s.kind is CertificateKind.PERSONAL]
        chosen = personal or passed
        if chosen:
            return chosen[0].signer_name
    return metadata.signer if metadata is not None else ""


def _mail_date(msg: InboundMessage) -> datetime | None:
    """The message's Date header (when it was sent), in UTC; None when absent or invalid."""
    try:
        value = msg.headers.get("Date")
        if not value:
            return None
        sent = email.utils.parsedate_to_datetime(str(value))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if sent.tzinfo is None:  # "-0000": the zone is unknown; RFC 5322 means UTC
        sent = sent.replace(tzinfo=UTC)
    return sent.astimezone(UTC)


class RegisterRecorder:
    """Acceptance recorder for the incoming register (see the module docstring)."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        directory: Directory | None = None,
        zone: tzinfo = VIETNAM,
        refusal_stages: Sequence[str] = ("signatures",),
        roles: Sequence[str] = ("clerk", "official", "leader"),
    ) -> None:
        self.blobs = blobs
        self.directory = directory
        self.zone = zone
        self.refusal_stages = frozenset(refusal_stages)
        self.roles = frozenset(roles)
        self._prepared: OrderedDict[tuple[str, str], list[AttachmentInput]] = OrderedDict()
        self._prepared_lock = threading.Lock()

    def prepare(self, msg: InboundMessage, verdict: Verdict) -> None:
        """Optional, before the acceptance transaction (in a worker thread): store the
        attachments' blobs (fsynced) so that ``on_accept`` finds them in place and holds
        the database's write lock for less time. Safe to skip; safe to repeat."""
        if verdict.action is not Action.DELIVER:
            return
        found = attachments_of(msg, verdict)
        for attachment in found:
            if attachment.data is not None:
                self.blobs.put(attachment.data, attachment.sha256)
        with self._prepared_lock:
            self._prepared[(msg.queue_id, msg.sha256)] = found
            while len(self._prepared) > PREPARED_MAX:
                self._prepared.popitem(last=False)

    def _attachments(self, msg: InboundMessage, verdict: Verdict) -> list[AttachmentInput]:
        with self._prepared_lock:
            found = self._prepared.pop((msg.queue_id, msg.sha256), None)
        return found if found is not None else attachments_of(msg, verdict)

    # -- Recorder protocol -------------------------------------------------------------
    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations:
        notes = Annotations()
        attachments = self._attachments(msg, verdict)
        if message_status(msg, verdict) is not None:
            return notes  # a status message (receipt, recall ...) is not a document
        reports: list[DocumentSignatureReport] = verdict.payloads(DocumentSignatureReport)
        metadata = self._metadata(verdict)
        if not self._is_document(attachments, reports, metadata):
            return notes
        groups = self._groups(session, msg, [(r.recipient, r) for r in records])
        results: list[Registration] = []
        for register, members in groups:
            doc = self._document(
                session, msg, attachments, reports, metadata, members, refused=False
            )
            results.append(
                register_document(session, register, doc, blobs=self.blobs, zone=self.zone)
            )
        for result in results:
            log.info(
                "%s: register %s: %s%s%s",
                msg.queue_id,
                result.register_code,
                result.status.value,
                f" number {result.number_text}" if result.incoming_number else "",
                "" if result.fresh else " (linked to the first entry)",
            )
            notes.merge(self.annotations(result))
        return notes

    def on_refuse(self, session: Session, msg: InboundMessage, verdict: Verdict) -> None:
        deciding = verdict.deciding
        if deciding is None or deciding.stage not in self.refusal_stages:
            return
        if message_status(msg, verdict) is not None:
            return
        attachments = [
            AttachmentInput(a.filename, a.content_type, a.sha256, a.size, a.role, None)
            for a in attachments_of(msg, verdict)
        ]
        reports: list[DocumentSignatureReport] = verdict.payloads(DocumentSignatureReport)
        metadata = self._metadata(verdict)
        if not self._is_document(attachments, reports, metadata):
            return
        groups = self._groups(session, msg, [(r, None) for r in msg.rcpt_tos])
        for register, members in groups:
            doc = self._document(
                session,
                msg,
                attachments,
                reports,
                metadata,
                members,
                refused=True,
                refusal_reason=f"{deciding.reason}: {deciding.detail}".strip(": "),
            )
            result = register_document(session, register, doc, blobs=None, zone=self.zone)
            log.info(
                "%s: register %s: refused document recorded (entry %d)",
                msg.queue_id,
                result.register_code,
                result.document_id,
            )

    # -- pieces ------------------------------------------------------------------------
    @staticmethod
    def annotations(result: Registration) -> Annotations:
        notes = Annotations()
        register_field = f"{result.register_code}; status={result.status.value}"
        if result.incoming_number:
            register_field += f"; number={result.number_text}"
            notes.headers.append(("X-Mailsvc-Register-Number", result.number_text))
        notes.headers.insert(0, ("X-Mailsvc-Register", register_field))
        notes.entries.append(
            Entry(
                register=result.register_code,
                status=result.status.value,
                number=result.incoming_number or None,
                number_text=result.number_text if result.incoming_number else "",
            )
        )
        notes.headers.append(("X-Mailsvc-Signature", result.signature_outcome.value))
        notes.headers.append(("X-Mailsvc-Urgency", result.urgency.value))
        if result.urgency.is_urgent:
            notes.flags.add(FLAGGED)
        return notes

    @staticmethod
    def _metadata(verdict: Verdict) -> DocumentMetadata | None:
        found: list[DocumentMetadata] = verdict.payloads(DocumentMetadata)
        return found[0] if found else None

    @staticmethod
    def _is_document(
        attachments: Sequence[AttachmentInput],
        reports: Sequence[DocumentSignatureReport],
        metadata: DocumentMetadata | None,
    ) -> bool:
        if any(a.role == "main" for a in attachments):
            return True
        if any(r.signed for r in reports):
            return True
        return metadata is not None and metadata.is_official

    def _wanted(
        self, session: Session, msg: InboundMessage, role: str | None, register: RegisterRef
    ) -> bool:
        if role is not None and role not in self.roles:
            return False
        if msg.direction in (Direction.INBOUND, Direction.FETCHED):
            return True
        # A submission is incoming only for another agency's (or domain's) register.
        sender = (msg.authenticated_as or msg.mail_from).lower()
        if register.agency_id is None:
            return sender.rpartition("@")[2] != register.domain
        own = session.scalars(select(Mailbox).where(Mailbox.address == sender)).one_or_none()
        return own is None or own.agency_id != register.agency_id

    def _groups(
        self,
        session: Session,
        msg: InboundMessage,
        recipients: Sequence[tuple[str, MessageRecord | None]],
    ) -> list[tuple[RegisterRef, list[tuple[str, MessageRecord | None]]]]:
        by_register: dict[int, tuple[RegisterRef, list[tuple[str, MessageRecord | None]]]] = {}
        for recipient, record in recipients:
            register, role = recipient_register(session, recipient)
            if not self._wanted(session, msg, role, register):
                continue
            by_register.setdefault(register.id, (register, []))[1].append((recipient, record))
        # A fixed lock order (register id) keeps concurrent deliveries from deadlocking.
        return [by_register[key] for key in sorted(by_register)]

    def _agency(self, session: Session, msg: InboundMessage) -> tuple[str, str]:
        address = (msg.from_address or msg.mail_from).lower()
        domain = address.rpartition("@")[2]
        if not domain:
            return "", ""
        if self.directory is not None:
            # From the directory's snapshot, known addresses first (as the table fallback).
            by_address = getattr(self.directory, "agency_for_address", None)
            info = by_address(address) if by_address else self.directory.agency_for_domain(domain)
            return (info.code, info.name) if info is not None else ("", "")
        for agency in session.scalars(select(Agency).order_by(Agency.id)):
            if address in (agency.known_addresses or []) or domain in (agency.domains or []):
                return agency.code, agency.name
        return "", ""

    def _document(
        self,
        session: Session,
        msg: InboundMessage,
        attachments: Sequence[AttachmentInput],
        reports: Sequence[DocumentSignatureReport],
        metadata: DocumentMetadata | None,
        members: Sequence[tuple[str, MessageRecord | None]],
        *,
        refused: bool,
        refusal_reason: str = "",
    ) -> DocumentInput:
        main = next((a for a in attachments if a.role == "main"), None)
        report = _pick_report(reports, main)
        if report is not None:
            outcome, reason = report.outcome, report.reason
        else:
            outcome, reason = DocumentOutcome.REFERENCE_ONLY, "not-verified"
        if refused:
            outcome = DocumentOutcome.INVALID if report is None else report.outcome
        content = _content(metadata, main, outcome)
        subject = nfc(msg.subject).strip()
        code, name = "", ""
        if metadata is not None:
            code, name = metadata.agency_code, metadata.agency_name
        if not name and content is not None:
            name = content.issuing_agency
        if not code and report is not None and report.sender_agency:
            code = report.sender_agency
        if not code or not name:
            found_code, found_name = self._agency(session, msg)
            code, name = code or found_code, name or found_name
        if metadata is not None and metadata.urgency:
            urgency = urgency_of(metadata.urgency)
        else:
            words = [urgency_from_subject(subject)]
            words.append(urgency_from_headers(list(msg.headers.raw_items()))[0])
            urgency = max((urgency_of(w) for w in words), key=_URGENCY_ORDER.index)
        first_recipient = members[0][0] if members else ""
        return DocumentInput(
            received_at=msg.received_at,
            sender=(msg.from_address or msg.mail_from).lower(),
            signature_outcome=outcome,
            signature_reason=reason,
            refused=refused,
            refusal_reason=refusal_reason,
            recipient=first_recipient,
            message_key=message_key(msg),
            message_id=msg.message_id,
            queue_id=msg.queue_id,
            subject=subject,
            agency_code=code,
            agency_name=name,
            number_notation=content.number_notation if content else "",
            issued_date=content.issued_date if content else None,
            doc_type=content.doc_type if content else "",
            abstract=_abstract(content, subject, outcome),
            urgency=urgency,
            signer=_signer(report, content),
            deadline=content.deadline if content else None,
            text=content.text if content and not refused else "",
            attachments=tuple(attachments),
            page_count=content.pages if content else 0,
            language=content.language if content else "",
            mail_date=_mail_date(msg),
            deliveries=tuple(
                DeliveryInput(
                    recipient=recipient,
                    queue_id=msg.queue_id,
                    message_record_id=record.id if record is not None else None,
                )
                for recipient, record in members
            ),
        )


def _abstract(content: DocumentMetadata | None, subject: str, outcome: DocumentOutcome) -> str:
    """The document's own abstract; else, for an entry without legal value, the mail's
    subject (a valid entry shows nothing the signer did not sign)."""
    if content is not None and content.abstract:
        return content.abstract
    return "" if outcome is DocumentOutcome.VALID else subject


_URGENCY_ORDER = [Urgency.NORMAL, Urgency.URGENT, Urgency.VERY_URGENT, Urgency.IMMEDIATE]
