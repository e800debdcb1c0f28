"""Plain builders for register tests (no mailsvc code is replaced)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, date, datetime
from typing import Any

from mailsvc.register.registration import AttachmentInput, DeliveryInput, DocumentInput
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome

_counter = itertools.count(1)


def pdf_attachment(content: bytes, name: str = "QD-35.pdf", role: str = "main") -> AttachmentInput:
    return AttachmentInput(
        filename=name,
        content_type="application/pdf",
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        role=role,
        data=content,
    )


def document(**overrides: Any) -> DocumentInput:
    n = next(_counter)
    values: dict[str, Any] = {
        "received_at": datetime(2026, 3, 2, 1, 15, tzinfo=UTC),
        "sender": "vanthu@stc.daknong.gov.vn",
        "signature_outcome": DocumentOutcome.VALID,
        "signature_reason": "signed",
        "recipient": "vanthu@stttt.daknong.gov.vn",
        "message_key": hashlib.sha256(f"message-{n}".encode()).hexdigest(),
        "message_id": f"<{n}@stc.daknong.gov.vn>",
        "queue_id": f"Q{n:08d}",
        "subject": "V/v triển khai chữ ký số",
        "agency_code": "000.00.32.H56",
        "agency_name": "Sở Tài chính",
        "number_notation": f"{n}/STC-VP",
        "issued_date": date(2026, 2, 27),
        "doc_type": "Công văn",
        "abstract": "V/v triển khai chữ ký số",
        "urgency": Urgency.NORMAL,
        "signer": "Nguyễn Văn An",
        "attachments": (pdf_attachment(f"%PDF-1.7 document {n}".encode()),),
        "deliveries": (DeliveryInput(recipient="vanthu@stttt.daknong.gov.vn"),),
    }
    values.update(overrides)
    return DocumentInput(**values)
