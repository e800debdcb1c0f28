"""Status messages other agencies send back about our documents (receipt 01/03, refusal
02, assignment 04, progress 05, done 06, recall done 15 / refused 16), as our
``status.json`` or as an edXML status part (``notify/exchange.py``): matched to the
outgoing register's delivery lines by the original Message-ID, or, for edXML, by the
number it names (and only the line of the agency its From/OrganId names, when both are
known), never registered as incoming documents (the register skips status messages).

A status message only moves the lines of recipients at a domain it is proven to come
from (a DKIM/DMARC or SPF pass for that domain, as for recalls): nobody can mark our
document "received" by forging another agency's receipt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from mailsvc.db.models import MessageRecord
from mailsvc.delivery import Annotations
from mailsvc.interfaces import Directory
from mailsvc.message import InboundMessage
from mailsvc.notify.exchange import StatusReport, message_status
from mailsvc.notify.recall import recall_origins
from mailsvc.outgoing.models import OutgoingDocument
from mailsvc.outgoing.register import (
    BY_CODE,
    FAILED,
    QUEUED,
    RECALL_REFUSED,
    RECALL_REQUESTED,
    RECALLED,
    SENT,
    move_line,
)
from mailsvc.verdict import Verdict

log = logging.getLogger(__name__)

# The history note of a line marked sent by the other side's answer (read by officials).
ANSWERED_FIRST = "Bên nhận đã phản hồi trước khi hệ thống ghi nhận gửi thành công"

# "7/2026" or "7" (the year from PromulgationDate): an issued document's outgoing number
_ISSUED_NUMBER = re.compile(r"^(\d{1,9})(?:/(\d{4}))?$")

# Once recalled, a line only hears about the recall; a refusal to recall restores nothing.
FINAL = frozenset({RECALLED})


class OutgoingStatusRecorder:
    """Acceptance recorder: a status message arriving for one of our sent documents."""

    def __init__(self, directory: Directory | None = None) -> None:
        self.directory = directory

    def prepare(self, msg: InboundMessage, verdict: Verdict) -> None:
        return None

    def _same_agency(self, a: str, b: str) -> bool:
        if a == b:
            return True
        if self.directory is None:
            return False
        one, other = self.directory.agency_for_domain(a), self.directory.agency_for_domain(b)
        return one is not None and other is not None and one.code == other.code

    def _documents(self, session: Session, report: StatusReport) -> list[OutgoingDocument]:
        """Our sent documents a status is about: by the original Message-ID (status.json,
        or an edXML status in reply to our mail), else by the number an edXML status
        names (the outgoing number "7/2026" of an issued document, or the document's own
        số, ký hiệu)."""
        query = select(OutgoingDocument).options(selectinload(OutgoingDocument.deliveries))
        if report.message_id:
            found = session.scalars(
                query.where(OutgoingDocument.message_id == report.message_id)
            ).all()
            if found or report.source != "edxml":
                return list(found)
        number = report.number_notation
        if report.source != "edxml" or not number:
            return []
        conditions = [OutgoingDocument.number_notation == number]
        issued = _ISSUED_NUMBER.match(number)
        if issued:
            year = int(issued.group(2) or report.promulgation_date[:4] or 0)
            conditions.append(
                and_(
                    OutgoingDocument.outgoing_number == int(issued.group(1)),
                    OutgoingDocument.year == year,
                )
            )
        return list(
            session.scalars(
                query.where(or_(*conditions), OutgoingDocument.state != "draft").order_by(
                    OutgoingDocument.id
                )
            ).all()
        )

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations:
        notes = Annotations()
        report = message_status(msg, verdict)
        if report is None or report.status_code not in BY_CODE:
            return notes
        documents = self._documents(session, report)
        if not documents:
            return notes
        origins = recall_origins(msg, verdict)
        status = BY_CODE[report.status_code]
        actor = f"mail:{msg.from_address or msg.mail_from or '<>'}"
        for document in documents:
            moved = 0
            for line in document.deliveries:
                domain = line.recipient.rpartition("@")[2]
                if not any(self._same_agency(domain, origin) for origin in origins):
                    continue
                if (
                    report.sender_code
                    and line.agency_code
                    and (line.agency_code != report.sender_code)
                ):
                    continue  # edXML names the answering agency: only its line moves
                if line.status in FINAL:
                    continue
                if status == RECALL_REFUSED and line.status != RECALL_REQUESTED:
                    continue
                if report.incoming_number:
                    line.their_number = report.incoming_number[:64]
                if line.status == QUEUED:
                    # The answer came before our queue recorded the other server's 250 (its
                    # receipt is queued as it accepts): it has the document, so it was sent.
                    move_line(session, line, SENT, actor="mailsvc", note=ANSWERED_FIRST)
                if move_line(session, line, status, actor=actor, note=report.reason):
                    moved += 1
            if moved == 0:
                log.warning(
                    "%s: status %s for outgoing document %d ignored: not from a recipient "
                    "(proven origins: %s)",
                    msg.queue_id,
                    report.status_code,
                    document.id,
                    ", ".join(sorted(origins)) or "none",
                )
                continue
            if status == RECALLED and all(
                d.status in (RECALLED, FAILED) for d in document.deliveries
            ):
                document.state = "recalled"
            notes.headers.append(("X-Mailsvc-Outgoing", f"document={document.id}; status={status}"))
            log.info(
                "%s: outgoing document %d: %d line(s) now %s",
                msg.queue_id,
                document.id,
                moved,
                status,
            )
        return notes

    def on_refuse(self, session: Session, msg: InboundMessage, verdict: Verdict) -> None:
        return None
