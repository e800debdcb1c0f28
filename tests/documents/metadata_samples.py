"""Official documents laid out as on paper (two-column header and footer), as PDF and DOCX.

Generated at test time: fpdf2 with DejaVu Sans (Debian fonts-dejavu-core) places the agency
column and the national-motto column side by side, as Decree 30/2020 prescribes, so the text
that PDFium extracts has the real artefacts (columns merged on one line, cells interleaved).
DOCX files put the header and the footer in two-column tables, as the agencies' templates do.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import docx
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Pt
from fpdf import FPDF

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@dataclass(frozen=True)
class Layout:
    """One document: header columns, centred heading, body, footer columns, labels."""

    left_header: tuple[str, ...]
    right_header: tuple[str, ...]
    heading: tuple[str, ...]
    body: tuple[str, ...]
    left_footer: tuple[str, ...]
    right_footer: tuple[str, ...]
    expected: dict[str, object] = field(default_factory=dict)
    rowwise: bool = False  # write header/footer rows left-right (PDFium merges them)


def layout_pdf(doc: Layout) -> bytes:
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.add_font("DejaVu", style="B", fname=str(FONT_BOLD))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    _columns(pdf, doc.left_header, doc.right_header, 2, doc.rowwise)
    pdf.ln(4)
    pdf.set_font("DejaVu", "B", 11)
    for i, line in enumerate(doc.heading):
        if i == 1:
            pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, line, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 10)
    for line in doc.body:
        pdf.multi_cell(0, 5.5, line, align="J", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _columns(pdf, doc.left_footer, doc.right_footer, 1, doc.rowwise)
    return bytes(pdf.output())


def _columns(
    pdf: FPDF, left: tuple[str, ...], right: tuple[str, ...], bold_left: int, rowwise: bool
) -> None:
    top = pdf.get_y()
    cells = [(10, 80, i, line, i < bold_left) for i, line in enumerate(left)]
    cells += [(95, 105, i, line, i < 1) for i, line in enumerate(right)]
    if rowwise:
        cells.sort(key=lambda cell: (cell[2], cell[0]))
    for x, width, row, line, bold in cells:
        pdf.set_font("DejaVu", "B" if bold else "", 9)
        pdf.set_xy(x, top + 5 * row)
        pdf.cell(width, 5, line, align="C")
    pdf.set_xy(10, top + 5 * max(len(left), len(right)) + 2)


def layout_docx(doc: Layout) -> bytes:
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    _table(document, doc.left_header, doc.right_header)
    for line in doc.heading:
        paragraph = document.add_paragraph(line)
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    for line in doc.body:
        document.add_paragraph(line)
    _table(document, doc.left_footer, doc.right_footer)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _table(document: docx.document.Document, left: tuple[str, ...], right: tuple[str, ...]) -> None:
    table = document.add_table(rows=1, cols=2)
    for cell, lines in zip(table.rows[0].cells, (left, right), strict=True):
        cell.paragraphs[0].text = lines[0] if lines else ""
        for line in lines[1:]:
            cell.add_paragraph(line)


CV_STATE = Layout(
    left_header=(
        "UBND TỈNH ĐẮK NÔNG",
        "SỞ NỘI VỤ",
        "-------",
        "Số: 1875/SNV-VTLT",
        "V/v thực hiện kiểm tra hộp thư công vụ",
        "4 lần mỗi ngày làm việc",
    ),
    right_header=(
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "---------------",
        "Đắk Nông, ngày 12 tháng 10 năm 2021",
    ),
    heading=("Kính gửi: Các sở, ban, ngành; UBND các huyện, thành phố",),
    body=(
        "Thực hiện Quy chế ban hành kèm theo Quyết định số 35/2018/QĐ-UBND của UBND tỉnh, "
        "Sở Nội vụ đề nghị các cơ quan, đơn vị chỉ đạo văn thư kiểm tra hộp thư công vụ ít "
        "nhất 4 lần mỗi ngày làm việc, vào đầu và cuối buổi sáng, đầu và cuối buổi chiều.",
        "Kết quả thực hiện gửi về Sở Nội vụ trước ngày 29/10/2021 để tổng hợp, báo cáo UBND tỉnh.",
    ),
    left_footer=("Nơi nhận:", "- Như trên;", "- UBND tỉnh (b/c);", "- Lưu: VT, VTLT."),
    right_footer=("KT. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC", "", "", "Nguyễn Thị Lan Phương"),
    rowwise=True,
    expected={
        "issuing_agency": "SỞ NỘI VỤ",
        "parent_agency": "UBND TỈNH ĐẮK NÔNG",
        "number_notation": "1875/SNV-VTLT",
        "issued_date": "2021-10-12",
        "doc_type": "Công văn",
        "abstract": "V/v thực hiện kiểm tra hộp thư công vụ 4 lần mỗi ngày làm việc",
        "urgency": "",
        "signer": "Nguyễn Thị Lan Phương",
        "deadline": "2021-10-29",
    },
)

QD_PARTY = Layout(
    left_header=("HUYỆN ỦY ĐẮK MIL", "*", "Số 318-QĐ/HU"),
    right_header=("ĐẢNG CỘNG SẢN VIỆT NAM", "", "Đắk Mil, ngày 03 tháng 8 năm 2022"),
    heading=(
        "QUYẾT ĐỊNH",
        "ban hành Quy chế gửi, nhận văn bản điện tử",
        "trong các cơ quan đảng của huyện",
        "-----",
    ),
    body=(
        "- Căn cứ Quy định số 217-QĐ/TW ngày 02/01/2020 của Ban Bí thư;",
        "- Xét đề nghị của Văn phòng Huyện ủy,",
        "BAN THƯỜNG VỤ HUYỆN ỦY QUYẾT ĐỊNH",
        "Điều 1. Ban hành kèm theo Quyết định này Quy chế gửi, nhận văn bản điện tử.",
        "Điều 2. Quyết định có hiệu lực kể từ ngày ký.",
    ),
    left_footer=("Nơi nhận:", "- Thường trực Tỉnh ủy (b/c),", "- Lưu Văn phòng Huyện ủy."),
    right_footer=("T/M BAN THƯỜNG VỤ", "PHÓ BÍ THƯ", "", "Y Thanh Niê"),
    expected={
        "issuing_agency": "HUYỆN ỦY ĐẮK MIL",
        "parent_agency": "",
        "number_notation": "318-QĐ/HU",
        "issued_date": "2022-08-03",
        "doc_type": "Quyết định",
        "abstract": "ban hành Quy chế gửi, nhận văn bản điện tử trong các cơ quan đảng của huyện",
        "urgency": "",
        "signer": "Y Thanh Niê",
        "deadline": None,
    },
)

TTR_STATE = Layout(
    left_header=("UBND HUYỆN CƯ JÚT", "PHÒNG NỘI VỤ", "-------", "Số: 52/TTr-PNV", "THƯỢNG KHẨN"),
    right_header=(
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "---------------",
        "Cư Jút, ngày 21 tháng 3 năm 2022",
    ),
    heading=(
        "TỜ TRÌNH",
        "Về việc đề nghị cấp chứng thư số cho công chức văn thư các xã",
    ),
    body=(
        "Kính gửi: Ủy ban nhân dân huyện Cư Jút",
        "Căn cứ Nghị định số 30/2020/NĐ-CP ngày 05/3/2020 của Chính phủ về công tác văn thư, "
        "Phòng Nội vụ kính trình UBND huyện xem xét, đề nghị Ban Cơ yếu Chính phủ cấp chứng "
        "thư số cho công chức văn thư các xã; đề nghị cho ý kiến trước ngày 25/3/2022.",
    ),
    left_footer=("Nơi nhận:", "- Như trên;", "- Lưu: VT."),
    right_footer=("TRƯỞNG PHÒNG", "", "Hoàng Văn Sáu"),
    rowwise=True,
    expected={
        "issuing_agency": "PHÒNG NỘI VỤ",
        "parent_agency": "UBND HUYỆN CƯ JÚT",
        "number_notation": "52/TTr-PNV",
        "issued_date": "2022-03-21",
        "doc_type": "Tờ trình",
        "abstract": "Về việc đề nghị cấp chứng thư số cho công chức văn thư các xã",
        "urgency": "Thượng khẩn",
        "signer": "Hoàng Văn Sáu",
        "deadline": "2022-03-25",
    },
)

TB_PARTY = Layout(
    left_header=("ĐẢNG BỘ TỈNH ĐẮK NÔNG", "VĂN PHÒNG TỈNH ỦY", "*", "Số 95-TB/VPTU"),
    right_header=("ĐẢNG CỘNG SẢN VIỆT NAM", "", "Đắk Nông, ngày 15 tháng 11 năm 2022"),
    heading=(
        "THÔNG BÁO",
        "lịch bảo trì hệ thống thư điện tử công vụ của các cơ quan đảng",
        "-----",
    ),
    body=(
        "Văn phòng Tỉnh ủy thông báo: hệ thống thư điện tử công vụ tạm dừng từ 20 giờ ngày "
        "19/11/2022 đến 6 giờ ngày 20/11/2022 để nâng cấp, thời gian phục hồi dự kiến 6 giờ "
        "ngày 20/11/2022. Văn bản khẩn trong thời gian này gửi qua đường bưu chính.",
    ),
    left_footer=("Nơi nhận:", "- Các cơ quan đảng tỉnh,", "- Lưu VPTU."),
    right_footer=("K/T CHÁNH VĂN PHÒNG", "PHÓ CHÁNH VĂN PHÒNG", "", "Lê Văn Hòa"),
    expected={
        "issuing_agency": "VĂN PHÒNG TỈNH ỦY",
        "parent_agency": "ĐẢNG BỘ TỈNH ĐẮK NÔNG",
        "number_notation": "95-TB/VPTU",
        "issued_date": "2022-11-15",
        "doc_type": "Thông báo",
        "abstract": "lịch bảo trì hệ thống thư điện tử công vụ của các cơ quan đảng",
        "urgency": "",
        "signer": "Lê Văn Hòa",
        "deadline": None,
    },
)

LAYOUTS: dict[str, Layout] = {
    "cv_state": CV_STATE,
    "qd_party": QD_PARTY,
    "ttr_state": TTR_STATE,
    "tb_party": TB_PARTY,
}
