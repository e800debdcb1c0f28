"""The outgoing register (sổ văn bản đi) in its official columns, through the incoming
register's exporters (CSV for Excel, printable HTML, PDF)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailsvc.outgoing.models import OutgoingDocument
from mailsvc.outgoing.register import LABELS
from mailsvc.time import VIETNAM

COLUMNS: tuple[tuple[str, str], ...] = (
    ("number", "Số đi"),
    ("sent_at", "Ngày gửi"),
    ("number_notation", "Số, ký hiệu văn bản"),
    ("issued_date", "Ngày tháng văn bản"),
    ("title", "Tên loại và trích yếu nội dung"),
    ("signer", "Người ký"),
    ("recipients", "Nơi nhận văn bản"),
    ("statuses", "Tình trạng"),
    ("note", "Ghi chú"),
)
HEADINGS = tuple(h for _, h in COLUMNS)
PDF_WIDTHS = (16, 24, 34, 22, 63, 30, 40, 30, 18)


@dataclass(frozen=True)
class OutgoingRow:
    number: str
    sent_at: str
    number_notation: str
    issued_date: str
    title: str
    signer: str
    recipients: str
    statuses: str
    note: str

    def cells(self) -> list[str]:
        return [getattr(self, name) for name, _ in COLUMNS]


def row_of(document: OutgoingDocument) -> OutgoingRow:
    moment = document.sent_at or document.created_at
    local = moment.astimezone(VIETNAM)
    title = " - ".join(x for x in (document.doc_type, document.abstract or document.subject) if x)
    lines = document.deliveries
    return OutgoingRow(
        number=f"{document.outgoing_number}/{document.year}" if document.outgoing_number else "",
        sent_at=local.strftime("%d/%m/%Y %H:%M"),
        number_notation=document.number_notation,
        issued_date=document.issued_date.strftime("%d/%m/%Y") if document.issued_date else "",
        title=title,
        signer=document.signer,
        recipients="\n".join(line.agency_name or line.recipient for line in lines),
        statuses="\n".join(LABELS.get(line.status, line.status) for line in lines),
        note="Đã thu hồi" if document.state == "recalled" else "",
    )


def rows_of(documents: Sequence[OutgoingDocument]) -> list[OutgoingRow]:
    return [row_of(d) for d in documents]
