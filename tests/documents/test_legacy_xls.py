"""Legacy Excel 97-2003 workbooks (.xls): the text of every cell and of the page header.

A .xls is read as the UTF-16 runs of its compound file. Excel packs each string after a
3-byte header (length and flag), so half of a workbook's strings start at an odd byte: read
from even offsets only, those cells were unread. And the sheet's page header, where Excel
users put the MẬT stamp (printed on every page), carries Excel's formatting codes
(``&C&"Times New Roman,Bold"&14MẬT``): the marking was glued to the font size.
"""

from __future__ import annotations

import pytest

from tests.documents.cfb import legacy_xls
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file

XLS_TYPE = ("application", "vnd.ms-excel")
HEADER = '&LUBND HUYỆN&C&"Times New Roman,Bold"&14MẬT&RTrang &P/&N'


def text_of(data: bytes) -> str:
    [(_, _, text)] = read_parts(mail_with_file(data, "bang-luong.xls", XLS_TYPE))
    return text


@pytest.mark.parametrize("padding", ["", "x", "xy"], ids=["even", "odd", "even-again"])
def test_every_cell_is_read_whatever_its_offset(padding: str) -> None:
    """The first string's length shifts every later string by a byte or two."""
    cells = [f"Bảng lương{padding}", "Phòng Tổ chức", "Tổng cộng", "Kế toán trưởng"]
    text = text_of(legacy_xls(cells))
    assert all(cell in text for cell in cells)


def test_the_page_header_is_read_as_excel_prints_it() -> None:
    text = text_of(legacy_xls(["Bảng lương tháng 12"], header=HEADER))
    assert "MẬT" in text.splitlines()
    assert "UBND HUYỆN" in text.splitlines()
