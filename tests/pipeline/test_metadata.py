"""MetadataStage: real messages with PDF/DOCX documents, real TextExtractor, real directory."""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from odf.opendocument import OpenDocumentText
from odf.text import P

from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.directory import DbDirectory, add_agency
from mailsvc.documents.extract import ExtractionLimits, TextExtractor
from mailsvc.documents.metadata import DocumentMetadata
from mailsvc.documents.words import search_words
from mailsvc.message import InboundMessage
from mailsvc.pipeline.metadata import MetadataStage, looks_like_document
from mailsvc.verdict import Status
from tests.documents.metadata_patterns import CASES
from tests.documents.metadata_patterns import FIELDS as PATTERN_FIELDS
from tests.documents.metadata_samples import LAYOUTS, Layout, layout_docx, layout_pdf

CORPUS = Path(__file__).resolve().parent.parent / "data" / "metadata"
SENDER = "vanthu@snv.daknong.example.vn"
AGENCY_CODE = "000.12.31.H17"
PDF = ("application", "pdf")
DOCX = ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document")
FIELDS = ("issuing_agency", "parent_agency", "number_notation", "issued_date", "doc_type",
          "abstract", "urgency", "signer", "deadline")  # fmt: skip


@pytest.fixture
def directory(db_url: str) -> Iterator[DbDirectory]:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        add_agency(
            session,
            actor="test",
            code=AGENCY_CODE,
            name="Sở Nội vụ tỉnh Đắk Nông",
            domains=["snv.daknong.example.vn"],
        )
        session.commit()
    yield DbDirectory(sessions)
    engine.dispose()


@pytest.fixture
def stage(directory: DbDirectory) -> MetadataStage:
    return MetadataStage(TextExtractor(executor=None), directory)


def _message(subject: str, body: str = "Kính gửi văn thư, xin gửi văn bản đính kèm.",
             headers: dict[str, str] | None = None) -> EmailMessage:  # fmt: skip
    msg = EmailMessage(policy=SMTP)
    msg["From"] = SENDER
    msg["To"] = "vanthu@stttt.example.vn"
    msg["Subject"] = subject
    msg["Message-ID"] = "<m1@snv.daknong.example.vn>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def _inbound(msg: EmailMessage) -> InboundMessage:
    return InboundMessage(
        queue_id="Q1",
        mail_from=SENDER,
        rcpt_tos=("vanthu@stttt.example.vn",),
        raw=msg.as_bytes(),
        received_at=datetime.now(UTC),
    )


def _fields(meta: DocumentMetadata) -> dict[str, Any]:
    data = meta.to_dict()
    return {name: data[name] for name in FIELDS}


@pytest.mark.parametrize("kind", ["pdf", "docx"])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
async def test_documents_through_the_extractor(stage: MetadataStage, name: str, kind: str) -> None:
    layout: Layout = LAYOUTS[name]
    msg = _message("Gửi văn bản")
    filename = f"{name}.{kind}"
    data = layout_pdf(layout) if kind == "pdf" else layout_docx(layout)
    msg.add_attachment(data, *(PDF if kind == "pdf" else DOCX), filename=filename)
    (finding,) = await stage.inspect(_inbound(msg))
    assert finding.stage == "metadata"
    assert finding.status is Status.PASS
    assert finding.reason == "document-metadata"
    meta = finding.payload
    assert isinstance(meta, DocumentMetadata)
    assert _fields(meta) == layout.expected
    assert meta.agency_code == AGENCY_CODE
    assert meta.agency_name == "Sở Nội vụ tỉnh Đắk Nông"
    assert meta.attachments == (filename,)
    assert meta.document == "attachment 1"
    assert meta.text and meta.text.isascii() and meta.text == search_words(meta.text)
    assert finding.summary()["evidence"]["agency_code"] == AGENCY_CODE


async def test_signature_file_is_skipped_and_first_document_wins(stage: MetadataStage) -> None:
    msg = _message("V/v kiểm tra hộp thư", headers={"X-Priority": "1 (Highest)"})
    msg.add_attachment(b"0\x82\x01\x00fake-cms", "application", "pkcs7-signature",
                       filename="1875-SNV-VTLT.pdf.p7s")  # fmt: skip
    msg.add_attachment(layout_pdf(LAYOUTS["cv_state"]), *PDF, filename="1875-SNV-VTLT.pdf")
    msg.add_attachment(layout_docx(LAYOUTS["tb_party"]), *DOCX, filename="phu-luc.docx")
    (finding,) = await stage.inspect(_inbound(msg))
    meta = finding.payload
    assert finding.status is Status.PASS
    assert meta.number_notation == "1875/SNV-VTLT"
    assert meta.urgency == "Khẩn"  # from X-Priority; the document itself carries no stamp
    assert meta.source("urgency") == "mail-header:X-Priority"
    assert meta.attachments == ("1875-SNV-VTLT.pdf.p7s", "1875-SNV-VTLT.pdf", "phu-luc.docx")
    assert meta.document == "attachment 2"


async def test_document_in_the_mail_body(stage: MetadataStage) -> None:
    body = (CORPUS / "28_cv_body_plain.txt").read_text(encoding="utf-8")
    msg = _message("[HỎA TỐC] V/v cung cấp mã định danh", body=body)
    (finding,) = await stage.inspect(_inbound(msg))
    meta = finding.payload
    assert finding.status is Status.PASS
    assert meta.document == "body"
    assert meta.number_notation == "1897/UBND-VP"
    assert meta.signer == "Trịnh Thị Lan Anh"
    # the search index's words, folded in the worker where the text was read
    assert meta.text == search_words(body) and "trinh thi lan anh" in meta.text
    assert meta.urgency == "Hỏa tốc"
    assert meta.source("urgency") == "subject"


async def test_body_used_when_attachment_is_not_a_document(stage: MetadataStage) -> None:
    body = (CORPUS / "01_cv_so_tttt.txt").read_text(encoding="utf-8")
    msg = _message("V/v chữ ký số", body=body)
    msg.add_attachment("Danh sách cán bộ\n1. Nguyễn Văn A\n".encode(), *DOCX[:1], "plain",
                       filename="danh-sach.txt")  # fmt: skip
    (finding,) = await stage.inspect(_inbound(msg))
    assert finding.status is Status.PASS
    assert finding.payload.number_notation == "1234/STTTT-CNTT"


async def test_ordinary_mail_is_none_not_fail(stage: MetadataStage) -> None:
    body = (CORPUS / "37_not_official.txt").read_text(encoding="utf-8")
    msg = _message("KHẨN: tài liệu họp chiều nay", body=body)
    (finding,) = await stage.inspect(_inbound(msg))
    assert finding.status is Status.NONE
    assert finding.reason == "not-an-official-document"
    meta = finding.payload
    assert isinstance(meta, DocumentMetadata)
    assert meta.urgency == "Khẩn"  # the clerk still sees the subject's urgency
    assert meta.agency_code == AGENCY_CODE


async def test_unknown_sender_domain_has_no_agency_code(directory: DbDirectory) -> None:
    stage = MetadataStage(TextExtractor(executor=None), directory)
    msg = _message("V/v", body=(CORPUS / "02_cv_vptu_khan.txt").read_text(encoding="utf-8"))
    msg.replace_header("From", "vanthu@tinhuy.quangtri.example.vn")
    (finding,) = await stage.inspect(_inbound(msg))
    assert finding.status is Status.PASS
    assert finding.payload.agency_code == ""
    assert finding.payload.number_notation == "245-CV/VPTU"


async def test_extraction_failure_is_none_with_subject_metadata(directory: DbDirectory) -> None:
    # The extraction's only thread is held until the timeout has fired, so it cannot finish
    # first however fast the machine is (a bare 1 ns timeout raced a fast extraction once).
    held = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(held.wait, 30)
        extractor = TextExtractor(executor=executor, limits=ExtractionLimits(timeout_s=0.05))
        stage = MetadataStage(extractor, directory)
        msg = _message("Thượng khẩn: Quyết định 35/2018/QĐ-UBND")
        msg.add_attachment(layout_pdf(LAYOUTS["qd_party"]), *PDF, filename="qd.pdf")
        try:
            (finding,) = await stage.inspect(_inbound(msg))
        finally:
            held.set()
    assert finding.status is Status.NONE
    assert finding.reason == "extraction-failed"
    meta = finding.payload
    assert meta.urgency == "Thượng khẩn"
    assert meta.number_notation == "35/2018/QĐ-UBND"
    assert meta.agency_code == AGENCY_CODE


async def test_odt_document(stage: MetadataStage) -> None:
    document = OpenDocumentText()
    for line in (CORPUS / "13_hd_btg.txt").read_text(encoding="utf-8").split("\n"):
        document.text.addElement(P(text=line))
    out = io.BytesIO()
    document.write(out)
    msg = _message("Hướng dẫn 15-HD/BTGTU")
    msg.add_attachment(out.getvalue(), "application", "vnd.oasis.opendocument.text",
                       filename="15-HD-BTGTU.odt")  # fmt: skip
    (finding,) = await stage.inspect(_inbound(msg))
    assert finding.status is Status.PASS
    meta = finding.payload
    assert (meta.number_notation, meta.doc_type, meta.signer) == (
        "15-HD/BTGTU",
        "Hướng dẫn",
        "Hồ Thị Thu Hằng",
    )
    assert meta.parent_agency == "ĐẢNG BỘ TỈNH QUẢNG TRỊ"


@pytest.mark.parametrize("name", ["qd-one-line", "tb-party-one-line"])
async def test_document_published_on_one_line_in_the_body(stage: MetadataStage, name: str) -> None:
    """Issue 18, "glued": a document pasted from a database, no line breaks, in the mail body."""
    case = next(c for c in CASES if c.name == name)
    (finding,) = await stage.inspect(_inbound(_message("Gửi văn bản", body=case.text)))
    assert finding.status is Status.PASS
    assert isinstance(finding.payload, DocumentMetadata)
    assert finding.payload.document == "body"
    data = finding.payload.to_dict()
    assert {field: data[field] for field in PATTERN_FIELDS} == case.expected


def test_stage_shape(stage: MetadataStage) -> None:
    assert stage.name == "metadata"
    assert stage.description


async def test_plain_mail_skips_the_document_reader(stage: MetadataStage) -> None:
    """No work a plain mail does not need: a body without a document clue (number and
    notation, a date line, the national motto) is not read as a document; one with a clue
    is (language detection is part of the reading)."""
    chat = "Chào anh, chiều nay họp lúc mấy giờ? Em gửi lại danh sách khách mời. " * 40
    [plain] = await stage.inspect(_inbound(_message("Hỏi lịch họp", chat)))
    assert (plain.status, plain.reason) == (Status.NONE, "not-an-official-document")
    meta = plain.payload
    assert isinstance(meta, DocumentMetadata)
    assert meta.document == "body" and meta.language == "" and not meta.number_notation
    dated = "Đắk Nông, ngày 05 tháng 12 năm 2026\n" + chat
    [read] = await stage.inspect(_inbound(_message("Hỏi lịch họp", dated)))
    assert isinstance(read.payload, DocumentMetadata) and read.payload.language == "vi"


# The clue pattern as first written (one alternation tried at every character; the motto
# in both spellings, "hoà" and "hòa", where it read only "hoà"): the reference the faster
# form (a lookahead, a digit pre-check) must agree with.
_REFERENCE_CLUES = re.compile(
    r"\d+\s*/\s*[0-9A-ZĐ]|ngày\s+\d{1,2}\s+tháng\s+\d{1,2}\s+năm\s+\d{4}"
    r"|cộng\s+h(?:oà|òa)\s+xã\s+hội|\d{1,2}/\d{1,2}/\d{4}",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Số: 15/QĐ-UBND\nKính gửi các sở.", True),
        ("Nghị định 35/2018/NĐ-CP quy định", True),
        ("Hà Nội, ngày 5 tháng 12 năm 2026", True),
        ("HÀ NỘI, NGÀY 5 THÁNG 12 NĂM 2026", True),
        ("CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc", True),
        ("Cộng hòa xã hội chủ nghĩa Việt Nam", True),
        (unicodedata.normalize("NFD", "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA"), True),
        ("Hẹn gặp lúc 05/12/2026 tại phòng họp", True),
        ("Hẹn gặp lúc 9 giờ, phòng 12, tầng 3.", False),
        ("Nội dung văn bản thử nghiệm hiệu năng. " * 200, False),
        ("Cộng tác viên gửi ngày mai", False),
        ("", False),
        ("Kính gửi anh chị. " * 300 + "Số: 15/QĐ-UBND", False),  # past the first 4000
    ],
)
def test_a_body_looks_like_a_document_by_the_same_clues_as_before(
    body: str, expected: bool
) -> None:
    head = unicodedata.normalize("NFC", "\n".join(body[:4000].splitlines()[:60]))
    assert bool(_REFERENCE_CLUES.search(head)) is expected
    assert looks_like_document(body) is expected
