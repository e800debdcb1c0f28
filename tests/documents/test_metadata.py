"""Metadata of official documents: the labelled corpus (field-level accuracy) and table tests."""

from __future__ import annotations

import json
import random
import time
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mailsvc.documents.metadata import (
    DocumentMetadata,
    extract_metadata,
    fold_tones,
    urgency_from_headers,
    urgency_from_subject,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "metadata"
FIELDS = (
    "issuing_agency",
    "parent_agency",
    "number_notation",
    "issued_date",
    "doc_type",
    "abstract",
    "urgency",
    "signer",
    "deadline",
    "attachments",
    "is_official",
)
MIN_ACCURACY = 0.95


def _labels() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    return data


def _observed(name: str, item: dict[str, Any]) -> dict[str, Any]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    meta = extract_metadata(text, item["subject"], item["headers"], item["attachments"])
    got = meta.to_dict()
    got["is_official"] = meta.is_official
    return got


def test_corpus_is_large_and_varied() -> None:
    labels = _labels()
    assert len(labels) >= 30
    assert sorted(p.name for p in CORPUS.glob("*.txt")) == sorted(labels)
    types = {item["expected"]["doc_type"] for item in labels.values()}
    for wanted in ("Công văn", "Quyết định", "Tờ trình", "Báo cáo", "Kế hoạch", "Thông báo",
                   "Giấy mời", "Nghị quyết"):  # fmt: skip
        assert wanted in types, wanted
    party = [n for n, i in labels.items() if "-" in i["expected"]["number_notation"].split("/")[0]]
    assert len(party) >= 10  # Party style "464-QĐ/TU"
    urgent = {i["expected"]["urgency"] for i in labels.values()}
    assert {"", "Khẩn", "Thượng khẩn", "Hỏa tốc"} <= urgent


def test_corpus_field_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    labels = _labels()
    correct = dict.fromkeys(FIELDS, 0)
    misses: list[str] = []
    for name, item in labels.items():
        got = _observed(name, item)
        for field in FIELDS:
            if got[field] == item["expected"][field]:
                correct[field] += 1
            else:
                misses.append(
                    f"{name}: {field} = {got[field]!r}, expected {item['expected'][field]!r}"
                )
    total = len(labels)
    with capsys.disabled():
        print(f"\nmetadata field accuracy over {total} labelled documents")
        for field in FIELDS:
            print(f"  {field:16} {correct[field]:3}/{total}  {correct[field] / total:7.2%}")
        for miss in misses:
            print("  miss:", miss)
    for field in FIELDS:
        assert correct[field] / total >= MIN_ACCURACY, (field, misses)


@pytest.mark.parametrize("name", sorted(_labels()))
def test_corpus_document(name: str) -> None:
    """Each labelled document on its own, so a regression names the file."""
    item = _labels()[name]
    got = _observed(name, item)
    wrong = {f: got[f] for f in FIELDS if got[f] != item["expected"][f]}
    assert not wrong


STATE_CV = """UBND TỈNH ĐẮK NÔNG
SỞ TÀI CHÍNH
Số: 123/STC-NS
V/v báo cáo tình hình thực hiện dự toán
Đắk Nông, ngày 5 tháng 3 năm 2019
Kính gửi: Các đơn vị dự toán cấp tỉnh
Đề nghị các đơn vị báo cáo về Sở Tài chính trước ngày 15/3 để tổng hợp.
Nơi nhận:
- Như trên;
- Lưu: VT.
GIÁM ĐỐC
Trần Minh Đức
"""


def test_state_cong_van_fields() -> None:
    meta = extract_metadata(STATE_CV)
    assert meta.issuing_agency == "SỞ TÀI CHÍNH"
    assert meta.parent_agency == "UBND TỈNH ĐẮK NÔNG"
    assert meta.author == "SỞ TÀI CHÍNH - UBND TỈNH ĐẮK NÔNG"
    assert meta.number_notation == "123/STC-NS"
    assert meta.issued_date == date(2019, 3, 5)
    assert meta.issued_place == "Đắk Nông"
    assert meta.doc_type == "Công văn"
    assert meta.abstract == "V/v báo cáo tình hình thực hiện dự toán"
    assert meta.signer == "Trần Minh Đức"
    assert meta.signer_title == "GIÁM ĐỐC"
    assert meta.deadline == date(2019, 3, 15)  # year taken from the date of issue
    assert meta.is_official
    assert meta.source("number_notation") == "header"
    assert meta.source("deadline") == "body"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Số: 35/2018/QĐ-UBND", "35/2018/QĐ-UBND"),
        ("Số 464-QĐ/TU", "464-QĐ/TU"),
        ("Số 917-TTr/VPTU", "917-TTr/VPTU"),
        ("Số: 123/UBND-VX", "123/UBND-VX"),
        ("Số:\n35/2018/QĐ-\nUBND", "35/2018/QĐ-UBND"),  # broken by the PDF extractor
        ("Số:   12 / KH - UBND", "12/KH-UBND"),
        ("Số 15–HD/BTGTU", "15-HD/BTGTU"),  # en dash
        ("Số: /QĐ-UBND", ""),  # number left blank for the clerk
    ],
)
def test_number_notation_forms(line: str, expected: str) -> None:
    text = f"UBND TỈNH X\n{line}\nHà Nội, ngày 01 tháng 02 năm 2020\nQUYẾT ĐỊNH\nVề việc A\n"
    assert extract_metadata(text).number_notation == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Đắk Nông, ngày 05 tháng 12 năm 2018", date(2018, 12, 5)),
        ("Đắk\nNông, ngày 05\ntháng 12 năm 2018", date(2018, 12, 5)),
        ("Hà Nội, ngày 5/12/2018", date(2018, 12, 5)),
        ("TP. Hồ Chí Minh, ngày 05-12-2018", date(2018, 12, 5)),
        ("Hà Nội, ngày    tháng    năm 2020", None),  # date left blank
        ("Hà Nội, ngày 31 tháng 02 năm 2020", None),  # impossible date
    ],
)
def test_issued_date_forms(line: str, expected: date | None) -> None:
    text = f"BỘ NỘI VỤ\nSố: 1/BNV-VP\n{line}\nV/v thử\nKính gửi: A\n"
    text += "Căn cứ Luật ngày 19 tháng 6 năm 2015;\n"
    assert extract_metadata(text).issued_date == expected


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("KHẨN", "Khẩn"),
        ("THƯỢNG KHẨN", "Thượng khẩn"),
        ("HỎA TỐC", "Hỏa tốc"),
        ("HOẢ TỐC", "Hỏa tốc"),  # old-style tone mark
        ("Độ khẩn: Thượng khẩn", "Thượng khẩn"),
        ("", ""),
    ],
)
def test_urgency_stamp(stamp: str, expected: str) -> None:
    text = (
        f"UBND TỈNH X\nSở Y\nSố: 2/SY-VP\n{stamp}\nV/v khẩn trương triển khai\n"
        "Kính gửi: A\nĐề nghị khẩn trương thực hiện; tình trạng khẩn cấp.\n"
    )
    assert extract_metadata(text).urgency == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[HỎA TỐC] Công điện về bão số 9", "Hỏa tốc"),
        ("Hoả tốc: V/v phòng chống lũ", "Hỏa tốc"),
        ("Fwd: KHẨN - V/v báo cáo", "Khẩn"),
        ("Re: Thượng khẩn: lịch họp", "Thượng khẩn"),
        ("V/v khẩn trương triển khai ký số", ""),
        ("Luật Tình trạng khẩn cấp", ""),
        ("", ""),
    ],
)
def test_urgency_from_subject(subject: str, expected: str) -> None:
    assert urgency_from_subject(subject) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Priority": "1 (Highest)"}, "Khẩn"),
        ({"X-Priority": "2"}, "Khẩn"),
        ({"X-Priority": "3 (Normal)"}, ""),
        ({"Priority": "urgent"}, "Khẩn"),
        ({"Priority": "non-urgent"}, ""),
        ({"Importance": "High"}, "Khẩn"),
        ({"Importance": "normal"}, ""),
        ({}, ""),
    ],
)
def test_urgency_from_headers(headers: dict[str, str], expected: str) -> None:
    assert urgency_from_headers(headers)[0] == expected
    meta = extract_metadata(STATE_CV, "", headers)
    assert meta.urgency == expected
    if expected:
        assert meta.source("urgency").startswith("mail-header:")


def test_strictest_urgency_wins() -> None:
    text = STATE_CV.replace("V/v báo", "THƯỢNG KHẨN\nV/v báo")
    meta = extract_metadata(text, "[KHẨN] báo cáo", {"X-Priority": "1"})
    assert meta.urgency == "Thượng khẩn"
    assert meta.source("urgency") == "header"
    assert extract_metadata(text, "HỎA TỐC báo cáo").urgency == "Hỏa tốc"


def test_fold_tones_keeps_length_and_real_words() -> None:
    for old, new in [("Hoả tốc", "Hỏa tốc"), ("TỈNH UỶ", "TỈNH ỦY"), ("hoà", "hòa")]:
        assert fold_tones(old) == new
    for word in ("quý", "Huỳnh", "hoàng", "Thuý"[:2]):
        assert fold_tones(word) == word
    sample = "Thanh Hoá, Tỉnh uỷ, thuỷ lợi, quý, Huỳnh, khoẻ"
    assert len(fold_tones(sample)) == len(sample)


def test_nfd_input_is_normalised() -> None:
    meta = extract_metadata(unicodedata.normalize("NFD", STATE_CV))
    assert meta.signer == "Trần Minh Đức"
    assert unicodedata.is_normalized("NFC", meta.abstract)
    assert meta.issuing_agency == "SỞ TÀI CHÍNH"


def test_signature_block_variants() -> None:
    base = STATE_CV.split("Nơi nhận:")[0]
    cases = {
        "Nơi nhận:\n- Như trên;\nTM. ỦY BAN NHÂN DÂN\nKT. CHỦ TỊCH\nPHÓ CHỦ TỊCH\n"
        "(Đã ký)\nLê Văn Tám\n": (
            "Lê Văn Tám",
            "TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH PHÓ CHỦ TỊCH",
        ),
        "Nơi nhận:          TL. GIÁM ĐỐC\n- Như trên;        CHÁNH VĂN PHÒNG\n- Lưu: VT.\n\n"
        "                   Ngô Thị Hoa\n": ("Ngô Thị Hoa", "TL. GIÁM ĐỐC CHÁNH VĂN PHÒNG"),
        "Nơi nhận: KT. GIÁM ĐỐC\n- Như trên; PHÓ GIÁM ĐỐC\n- Lưu: VT, TH. Đỗ Văn Nam\n": (
            "Đỗ Văn Nam",
            "KT. GIÁM ĐỐC PHÓ GIÁM ĐỐC",
        ),
        "Nơi nhận:\n- Lưu VT.\nT/M BAN THƯỜNG VỤ\nPHÓ BÍ THƯ\nNGUYỄN VĂN BA\n": (
            "Nguyễn Văn Ba",
            "T/M BAN THƯỜNG VỤ PHÓ BÍ THƯ",
        ),
    }
    for block, (signer, title) in cases.items():
        meta = extract_metadata(base + block)
        assert (meta.signer, meta.signer_title) == (signer, title), block


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("gửi về Sở trước ngày 20/3/2019.", date(2019, 3, 20)),
        ("hoàn thành trước 17 giờ ngày 20/3/2019.", date(2019, 3, 20)),
        ("báo cáo chậm nhất ngày 20 tháng 3 năm 2019.", date(2019, 3, 20)),
        ("Hạn xử lý: 22/3/2019.", date(2019, 3, 22)),
        ("thời hạn hoàn thành: ngày 25/3/2019.", date(2019, 3, 25)),
        ("hạn gửi báo cáo tự kiểm tra: 31/3/2019.", date(2019, 3, 31)),
        ("văn bản ban hành trước ngày 01/01/2018 hết hiệu lực.", None),  # before issue
        ("Thời gian: 8 giờ ngày 20/3/2019.", None),  # a meeting, not a deadline
    ],
)
def test_deadline_forms(sentence: str, expected: date | None) -> None:
    text = STATE_CV.replace(
        "Đề nghị các đơn vị báo cáo về Sở Tài chính trước ngày 15/3 để tổng hợp.", sentence
    )
    assert extract_metadata(text).deadline == expected


def test_earliest_deadline_is_kept() -> None:
    text = STATE_CV.replace(
        "trước ngày 15/3", "trước ngày 30/6/2019, báo cáo năm trước ngày 15/12/2019;"
    )
    assert extract_metadata(text).deadline == date(2019, 6, 30)


def test_abstract_from_subject_when_text_has_none() -> None:
    meta = extract_metadata("Kính gửi anh chị,\nxin gửi tài liệu.", "Fwd: V/v  góp ý   dự thảo")
    assert meta.abstract == "V/v góp ý dự thảo"
    assert meta.source("abstract") == "subject"
    assert not meta.is_official


def test_number_from_subject_when_text_has_none() -> None:
    meta = extract_metadata("", "Gửi Quyết định 35/2018/QĐ-UBND ban hành Quy chế")
    assert meta.number_notation == "35/2018/QĐ-UBND"
    assert meta.doc_type == "Quyết định"
    assert meta.source("number_notation") == "subject"


def test_ordinary_mail_is_not_official() -> None:
    meta = extract_metadata(
        "Chào anh,\nEm gửi anh tài liệu họp. Anh nhớ đổi mật khẩu nhé.\nThân,\nHà",
        "Tài liệu họp",
    )
    assert not meta.is_official
    assert meta == DocumentMetadata(sources=())


def test_to_dict_is_json() -> None:
    meta = extract_metadata(STATE_CV, attachments=["a.pdf", "a.pdf.p7s"])
    data = json.loads(json.dumps(meta.to_dict(), ensure_ascii=False))
    assert data["issued_date"] == "2019-03-05"
    assert data["attachments"] == ["a.pdf", "a.pdf.p7s"]
    assert data["sources"]["attachments"] == "caller"


def test_garbage_never_raises_and_stays_fast() -> None:
    rng = random.Random(5)
    alphabet = "Số:/-ngàytháng năm0123456789QĐUBND\n\t |*V/vKHẨNTM.KT.Nơi nhận:ĐỘC LẬPáàảãạđ"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3000)))
        extract_metadata(text, text[:80], {"X-Priority": text[:3]})
    big = (STATE_CV + "Nội dung dài. " * 50) * 400  # ~500 KB of text
    started = time.perf_counter()
    meta = extract_metadata(big)
    assert time.perf_counter() - started < 2.0
    assert meta.number_notation == "123/STC-NS"


@pytest.mark.parametrize(
    "text",
    [
        "CHỦ TỊCH " * 50_000,
        "Số: 1/" * 60_000,
        "ngày 1 tháng 1 năm 2020, " * 20_000,
        "Hà Nội, ngày 1 tháng 1 năm 2020\n" * 20_000,
        "trước ngày 1/1/2030 " * 30_000,
        "A\n" * 200_000,
        "Nơi nhận:\n" + "TM. ỦY BAN\n" * 50_000,
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT " * 20_000,
    ],
    ids=["upper", "numbers", "dates", "date-lines", "deadlines", "lines", "titles", "mottos"],
)
def test_hostile_text_is_bounded(text: str) -> None:
    """Half a megabyte of repeated patterns: no quadratic scan, whatever the layout."""
    started = time.perf_counter()
    extract_metadata(text, text[:1000])
    assert time.perf_counter() - started < 3.0
