"""The nine patterns of published documents (metadata_patterns.py), one test per case."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mailsvc.documents.extract import TextExtractor
from mailsvc.documents.metadata import extract_metadata
from mailsvc.message import InboundMessage
from mailsvc.pipeline.classification import ClassificationStage
from mailsvc.policy.classification import load_classification_policy
from mailsvc.verdict import Status
from tests.documents.metadata_patterns import (
    CASES,
    FIELDS,
    HELD_OUT,
    PATTERNS,
    PatternCase,
    observed,
)
from tests.documents.samples import PDF_TYPE, attach, make_pdf, message

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "classification.yaml"

ALL = CASES + HELD_OUT


def test_every_pattern_has_several_variants() -> None:
    for category in PATTERNS:
        assert len([c for c in CASES if c.category == category]) >= 3, category
        assert len([c for c in HELD_OUT if c.category == category]) >= 2, category
    assert {c.category for c in ALL} == set(PATTERNS)
    assert len({c.name for c in ALL}) == len(ALL)
    assert all(c.held_out for c in HELD_OUT) and not any(c.held_out for c in CASES)


@pytest.mark.parametrize("case", ALL, ids=[f"{c.category}/{c.name}" for c in ALL])
def test_pattern_case(case: PatternCase) -> None:
    got = observed(case)
    wrong = {f: (got[f], case.expected[f]) for f in FIELDS if got[f] != case.expected[f]}
    assert not wrong


# ---------------------------------------------------------------- the rules' limits


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Số: 1961/QĐUBND", "1961/QĐ-UBND"),
        ("Số: 12/TTrUBND", "12/TTr-UBND"),  # TT and TTr: only TTr leaves an issuer code
        ("Số 305TB/HU", "305-TB/HU"),
        ("Số: 15/HĐND", "15/HĐND"),  # the council, not "HĐ-ND"
        ("Số: 88/BCĐTW", "88/BCĐTW"),  # Ban chỉ đạo, not a Báo cáo
        ("Số: 40/TTCP", "40/TTCP"),
        ("Số: 123/UBND", "123/UBND"),  # no type code at all: left as printed
        ("Số: 7/QĐND", "7/QĐND"),  # issuer part too short to be sure
    ],
)
def test_lost_hyphen_repaired_only_when_unambiguous(line: str, expected: str) -> None:
    text = f"UBND TỈNH X\n{line}\nHà Nội, ngày 01 tháng 02 năm 2020\nQUYẾT ĐỊNH\nVề việc A\n"
    assert extract_metadata(text).number_notation == expected


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Đắk\nNông, ngày 05 tháng 12 năm 2018", "Đắk Nông"),  # the place itself broken
        ("với Cộng hòa Liên bang\nĐức\nHà Nội, ngày 05 tháng 12 năm 2018", "Hà Nội"),
        ("Thị xã Sơn Tây, ngày 05 tháng 12 năm 2018", "Thị xã Sơn Tây"),
        ("TP. Hồ Chí Minh, ngày 05 tháng 12 năm 2018", "TP. Hồ Chí Minh"),
        ("Cư M'gar, ngày 05 tháng 12 năm 2018", "Cư M'gar"),
        ("đã họp. Hà Nội, ngày 05 tháng 12 năm 2018", "Hà Nội"),
    ],
)
def test_place_forms(text: str, place: str) -> None:
    doc = f"BỘ NỘI VỤ\nSố: 1/BNV-VP\n{text}\nV/v thử\nKính gửi: A\n"
    meta = extract_metadata(doc)
    assert meta.issued_place == place
    assert meta.issued_date == date(2018, 12, 5)


def test_long_ordinary_mail_is_not_unglued_into_a_document() -> None:
    """A long one-paragraph mail with no header patterns stays a mail."""
    text = (
        "Chào anh Nam, em gửi lại anh tài liệu HỘI NGHỊ TỔNG KẾT của phòng như đã trao đổi. "
        "Về việc họp tuần sau, anh xem giúp em lịch. " * 8
    ) + "Thân, Hà"
    meta = extract_metadata(text, "Tài liệu hội nghị")
    assert not meta.is_official
    assert meta.abstract == ""  # "Về việc" opens no abstract without a number or a date
    assert meta.signer == ""


def test_glued_document_with_no_motto_is_read_by_its_number() -> None:
    text = (
        "SỞ TÀI CHÍNH TỈNH LONG AN Số: 77/STC-NS Long An, ngày 03 tháng 3 năm 2023 V/v "
        "hướng dẫn quyết toán ngân sách năm 2022 Kính gửi: Các sở, ban, ngành tỉnh. Sở Tài "
        "chính hướng dẫn như sau, đề nghị báo cáo trước ngày 31/3/2023. Nơi nhận: - Như "
        "trên; - Lưu: VT, NS. GIÁM ĐỐC Trương Văn Nơi"
    )
    meta = extract_metadata(text)
    assert meta.number_notation == "77/STC-NS"
    assert meta.issued_place == "Long An"
    assert meta.abstract == "V/v hướng dẫn quyết toán ngân sách năm 2022"
    assert meta.deadline == date(2023, 3, 31)
    assert (meta.signer, meta.signer_title) == ("Trương Văn Nơi", "GIÁM ĐỐC")


def test_ve_viec_in_the_body_is_no_abstract() -> None:
    text = (
        "UBND TỈNH X\nSỞ Y\nSố: 3/SY-VP\nHà Nội, ngày 05 tháng 12 năm 2018\n"
        "Kính gửi: Các phòng\nVề việc này, Sở đề nghị các phòng báo cáo.\n"
    )
    meta = extract_metadata(text)
    assert meta.abstract == ""
    assert meta.doc_type == "Công văn"  # from the notation, as before


def test_draft_is_still_an_official_document_without_number() -> None:
    case = next(c for c in CASES if c.name == "ttr-vpcp-draft")
    meta = extract_metadata(case.text)
    assert meta.number_notation == "" and meta.issued_date is None
    assert meta.is_official  # heading and agency: the register still takes it
    assert "DỰ THẢO" not in meta.author


def test_signed_marker_never_makes_a_title() -> None:
    base = "BỘ NỘI VỤ\nSố: 1/BNV-VP\nHà Nội, ngày 05 tháng 12 năm 2018\nV/v thử\nKính gửi: A\n"
    meta = extract_metadata(base + "Nội dung.\n(Đã ký)\nNguyễn Văn Tư\n")
    assert (meta.signer, meta.signer_title) == ("Nguyễn Văn Tư", "")
    meta = extract_metadata(base + "Nội dung, đã ký kết hợp đồng với Công ty A.\n")
    assert meta.signer == ""
    meta = extract_metadata(base + "GIÁM ĐỐC\nNguyễn Văn Tư (Đã ký và đóng dấu)\n")
    assert (meta.signer, meta.signer_title) == ("Nguyễn Văn Tư", "GIÁM ĐỐC")
    meta = extract_metadata(base + "Nội dung.\nTrần Thị Năm [Đã ký số]\n")
    assert (meta.signer, meta.signer_title) == ("Trần Thị Năm", "")


async def test_published_patterns_are_not_classified() -> None:
    """None of the published-document texts carries a marking: the classification stage,
    with the extra categories on, passes each one as a mail body and as a PDF."""
    policy = load_classification_policy(POLICY_FILE)
    extra = policy.categories["khieu-nai-to-cao"].model_copy(update={"enabled": True})
    categories = {**policy.categories, "khieu-nai-to-cao": extra}
    policy = policy.model_copy(update={"categories": categories})
    stage = ClassificationStage(policy, TextExtractor(executor=None), executor=None)
    for case in ALL:
        msg = message(subject="Gửi văn bản", body=case.text)
        attach(msg, make_pdf(case.text), f"{case.name}.pdf", PDF_TYPE)
        inbound = InboundMessage(
            queue_id="Q1",
            mail_from="vanthu@ubnd.example.vn",
            rcpt_tos=("vanthu@stttt.example.vn",),
            raw=msg.as_bytes(),
            received_at=datetime.now(UTC),
        )
        (finding,) = await stage.inspect(inbound)
        assert (finding.status, finding.reason) == (Status.PASS, "no-marking"), case.name
