"""Domain rule §10: <given name><initials of family and middle names>.<unit>, no diacritics."""

from __future__ import annotations

import unicodedata

import pytest

from mailsvc.accounts import ascii_fold, conventional_local_part

NAMES = [
    ("Nguyễn Văn An", "stttt", "annv.stttt"),
    ("Trần Thị Đào", "stttt", "daott.stttt"),
    ("Đỗ Đức Đạt", "vpubnd", "datdd.vpubnd"),
    ("Phạm Ưng", "", "ungp"),
    ("Lê Thị Ưng Hoà", "sgtvt", "hoaltu.sgtvt"),
    ("Đặng Thị Ánh Tuyết", "syt", "tuyetdta.syt"),
    ("Hoàng Quốc Việt", "stc", "viethq.stc"),
    ("Bùi Xuân Phương", "stnmt", "phuongbx.stnmt"),
    ("Võ Nguyên Giáp", "sct", "giapvn.sct"),
    ("Ngô  Bảo   Châu", "STTTT", "chaunb.stttt"),
    ("NGUYỄN THỊ MINH KHAI", "snv", "khaintm.snv"),
    ("Lý Thường Kiệt", "Sở Nội vụ", "kietlt.sonoivu"),
    ("Huỳnh Tấn Phát", "sxd", "phatht.sxd"),
    ("Trương Mỹ Ý", "skhdt", "ytm.skhdt"),
    ("Dương Văn Minh", "sldtbxh", "minhdv.sldtbxh"),
]


@pytest.mark.parametrize(("name", "unit", "expected"), NAMES)
def test_conventional_name(name: str, unit: str, expected: str) -> None:
    assert conventional_local_part(name, unit) == expected


@pytest.mark.parametrize(("name", "unit", "expected"), NAMES)
def test_decomposed_input_gives_the_same_name(name: str, unit: str, expected: str) -> None:
    assert conventional_local_part(unicodedata.normalize("NFD", name), unit) == expected


def test_ascii_fold_handles_d_with_stroke_and_horn() -> None:
    assert ascii_fold("Đường Ưu Ơn đồng") == "Duong Uu On dong"
