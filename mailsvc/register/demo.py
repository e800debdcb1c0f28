"""A few register entries for a demo home (``mailsvc init --demo``), so the workspace's
pages are not empty: documents of several types, agencies and urgencies, one with a
readable PDF, in every usual state (reference only, registered, assigned and overdue,
in progress, done). Written once: nothing is added when the register has entries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.register import workflow
from mailsvc.register.export import find_font
from mailsvc.register.models import RegisterDocument
from mailsvc.register.registers import register_for_recipient
from mailsvc.register.registration import AttachmentInput, DocumentInput, register_document
from mailsvc.register.statuses import DocumentStatus
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM


@dataclass(frozen=True)
class DemoDocument:
    agency: str
    sender: str
    number: str
    doc_type: str
    abstract: str
    signer: str
    days_ago: int
    urgency: Urgency = Urgency.NORMAL
    registered: bool = True


DOCUMENTS = (
    DemoDocument(
        "UBND tỉnh Đắk Nông",
        "vanthu@ubnd.daknong.gov.vn",
        "1520/QĐ-UBND",
        "Quyết định",
        "Ban hành Kế hoạch chuyển đổi số năm 2027 của tỉnh Đắk Nông",
        "Hồ Văn Mười",
        20,
    ),
    DemoDocument(
        "Sở Tài chính",
        "vanthu@stc.daknong.gov.vn",
        "2817/STC-QLNS",
        "Công văn",
        "V/v hướng dẫn lập dự toán ngân sách năm 2027",
        "Nguyễn Thị Hồng",
        12,
        Urgency.URGENT,
    ),
    DemoDocument(
        "Sở Nội vụ",
        "vanthu@snv.daknong.gov.vn",
        "45/KH-SNV",
        "Kế hoạch",
        "Kế hoạch kiểm tra công tác văn thư, lưu trữ năm 2027",
        "Trần Văn Bình",
        8,
    ),
    DemoDocument(
        "Văn phòng UBND tỉnh",
        "vanthu@vpubnd.daknong.gov.vn",
        "301/TB-VPUBND",
        "Thông báo",
        "Thông báo kết luận của Chủ tịch UBND tỉnh tại cuộc họp giao ban tháng 11",
        "Lê Quang Dũng",
        5,
        Urgency.VERY_URGENT,
    ),
    DemoDocument(
        "Bộ Thông tin và Truyền thông",
        "vanthu@mic.gov.vn",
        "4567/BTTTT-CĐSQG",
        "Công văn",
        "V/v triển khai ký số văn bản điện tử trên thiết bị di động",
        "Phạm Đức Long",
        2,
    ),
    DemoDocument(
        "UBND huyện Đắk Mil",
        "vanthu@dakmil.daknong.gov.vn",
        "",
        "Công văn",
        "V/v đề nghị hỗ trợ kinh phí tổ chức hội nghị",
        "",
        1,
        registered=False,
    ),
)


def _pdf(item: DemoDocument, issued: date) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", "", str(find_font("DejaVuSans.ttf")))
    pdf.add_font("DejaVu", "B", str(find_font("DejaVuSans-Bold.ttf")))
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(90, 6, item.agency.upper(), align="C")
    pdf.cell(0, 6, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 11)
    pdf.cell(90, 6, f"Số: {item.number}", align="C")
    pdf.cell(0, 6, "Độc lập - Tự do - Hạnh phúc", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.cell(
        0,
        6,
        f"Gia Nghĩa, ngày {issued.day} tháng {issued.month} năm {issued.year}",
        align="R",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(6)
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 8, item.doc_type.upper(), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 12)
    pdf.multi_cell(0, 7, item.abstract, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("DejaVu", "", 12)
    pdf.multi_cell(
        0,
        7,
        "Văn bản mẫu của bản trình diễn mailsvc. Nội dung chỉ để thử các trang của không "
        "gian làm việc: tìm kiếm, xem trước, chuyển xử lý và theo dõi tiến độ.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(12)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 7, item.signer, align="R")
    return bytes(pdf.output())


def seed_demo_register(
    session: Session,
    clerk: str,
    official: str,
    blobs: BlobStore,
    now: datetime | None = None,
    *,
    only_if_empty: bool = True,
) -> int:
    """Enter the demo documents into ``clerk``'s register; returns how many (0 when the
    register already had entries and ``only_if_empty``)."""
    register, _ = register_for_recipient(session, clerk)
    existing = session.scalar(
        select(func.count())
        .select_from(RegisterDocument)
        .where(RegisterDocument.register_id == register.id)
    )
    if existing and only_if_empty:
        return 0
    now = now or utcnow()
    today = now.astimezone(VIETNAM).date()
    ids: list[int] = []
    for item in DOCUMENTS:
        received = now - timedelta(days=item.days_ago, hours=2)
        issued = (received - timedelta(days=1)).astimezone(VIETNAM).date()
        data = _pdf(item, issued)
        slug = item.number.replace("/", "-") or "cong-van"
        result = register_document(
            session,
            register,
            DocumentInput(
                received_at=received,
                sender=item.sender,
                # Demo files carry no signature: reference only, registered by the clerk.
                signature_outcome=DocumentOutcome.REFERENCE_ONLY,
                signature_reason="unsigned",
                recipient=clerk,
                message_id=f"<demo.{hashlib.sha256(data).hexdigest()[:16]}@mailsvc>",
                subject=item.abstract,
                agency_name=item.agency,
                number_notation=item.number,
                issued_date=issued,
                doc_type=item.doc_type,
                abstract=item.abstract,
                urgency=item.urgency,
                signer=item.signer,
                attachments=(
                    AttachmentInput(
                        filename=f"{slug}.pdf",
                        content_type="application/pdf",
                        sha256=hashlib.sha256(data).hexdigest(),
                        size=len(data),
                        role="main",
                        data=data,
                    ),
                ),
                note="Văn bản mẫu (trình diễn)",
            ),
            blobs=blobs,
            actor="demo",
        )
        ids.append(result.document_id)
        document = session.get(RegisterDocument, result.document_id)
        if item.registered and document is not None:
            workflow.set_status(
                session,
                document,
                DocumentStatus.REGISTERED,
                actor=clerk,
                reason="Văn bản mẫu: văn thư vào sổ",
            )
    documents = [session.get(RegisterDocument, i) for i in ids]
    decision, budget, plan, notice = (d for d in documents[:4] if d is not None)
    workflow.assign(
        session,
        budget,
        official,
        actor=clerk,
        reason="Đề nghị chủ trì tham mưu, báo cáo.",
        deadline=today - timedelta(days=2),
    )
    workflow.assign(
        session,
        plan,
        official,
        actor=clerk,
        reason="Nghiên cứu, triển khai.",
        deadline=today + timedelta(days=5),
    )
    workflow.set_status(
        session,
        plan,
        DocumentStatus.IN_PROGRESS,
        actor=official,
        reason="Đang xây dựng dự thảo kế hoạch của Sở.",
    )
    workflow.assign(session, decision, official, actor=clerk, reason="Tổ chức thực hiện.")
    workflow.set_status(
        session,
        decision,
        DocumentStatus.DONE,
        actor=official,
        reason="Đã triển khai đến các phòng.",
    )
    workflow.assign(
        session,
        notice,
        official,
        actor=clerk,
        reason="Theo dõi, đôn đốc thực hiện kết luận.",
        deadline=today + timedelta(days=3),
    )
    return len(ids)
