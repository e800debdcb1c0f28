"""The ``message_signature`` rows: written from the verdict's typed signature reports in
the acceptance transaction, read back by the workspace and the mailbox checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from mailsvc.db.models import MessageRecord
from mailsvc.delivery import Annotations
from mailsvc.message import InboundMessage
from mailsvc.signatures.models import MessageSignature
from mailsvc.signatures.report import DocumentSignatureReport
from mailsvc.verdict import Verdict

FINGERPRINT_MAX = 128


def normal_fingerprint(value: str) -> str:
    """A fingerprint as the column holds it: lower-case hex without colons or spaces."""
    return value.replace(":", "").replace(" ", "").strip().lower()[:FINGERPRINT_MAX]


def signature_rows(
    message_record_id: int, reports: Iterable[DocumentSignatureReport]
) -> list[dict[str, Any]]:
    """The rows for one message row: every signature of every report, in order."""
    rows: list[dict[str, Any]] = []
    for report in reports:
        for s in report.signatures:
            rows.append(
                {
                    "message_record_id": message_record_id,
                    "position": len(rows),
                    "document": report.document,
                    "format": s.format.value,
                    "indication": s.indication.value,
                    "subindication": s.subindication or "",
                    "signer": s.signer_name,
                    "organisation": s.organisation,
                    "kind": s.kind.value,
                    "serial": s.serial,
                    "fingerprint": normal_fingerprint(s.fingerprint),
                }
            )
    return rows


class SignatureRecorder:
    """Recorder (mailsvc.delivery): the signatures of a delivered message, one row per
    signature and message row, in the acceptance transaction."""

    def prepare(self, msg: InboundMessage, verdict: Verdict) -> None:
        return None

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations:
        reports = verdict.payloads(DocumentSignatureReport)
        if any(r.signatures for r in reports):
            rows = [row for record in records for row in signature_rows(record.id, reports)]
            session.execute(insert(_SIGNATURES), rows)  # Core: no ORM bulk machinery
        return Annotations()

    def on_refuse(self, session: Session, msg: InboundMessage, verdict: Verdict) -> None:
        return None


_SIGNATURES = cast(Table, MessageSignature.__table__)


def signatures_of(session: Session, message_record_id: int) -> list[MessageSignature]:
    """The signatures recorded for one message row, in verdict order."""
    return list(
        session.scalars(
            select(MessageSignature)
            .where(MessageSignature.message_record_id == message_record_id)
            .order_by(MessageSignature.position)
        )
    )

