"""A corpus of official documents generated from the layout rules, with ground truth.

Built from the rules, not from one template. Each document is a :class:`Doc` chosen by
combining independent axes:

- the **layout**: State documents laid out as Decree 30/2020/NĐ-CP Appendix I (agency and
  "Số:" in the left header column, the national motto and the place/date in the right one,
  "V/v ..." under the number of a công văn, the type heading and abstract centred for the
  other types) or Party documents as Hướng dẫn 36-HD/VPTW ("TỈNH ỦY ... / * / Số 12-CV/TU",
  "ĐẢNG CỘNG SẢN VIỆT NAM");
- the **type** (CV, QĐ, NQ, KH, BC, TB, TTr, CT, GM), agency, place, date, abstract (one to
  three lines), urgency, signer;
- the **format** (PDF written with fpdf2 in Liberation Serif/Sans 2 or DejaVu; DOCX with
  python-docx; ODT with odfpy; the mail body);
- for positives, the **level** (Mật, Tối mật, Tuyệt mật), the **position** of the marking and
  its **form** (see POSITIONS and FORMS);
- for negatives, a **trap** that looks like a marking to a naive reader (TRAPS).

``corpus()`` enumerates the documents deterministically; ``build(doc)`` renders one to bytes;
``mail(doc)`` wraps it in a message. ``scanned_corpus()`` lists the documents rendered to
images (200/300 dpi, slight rotation and noise) and wrapped in PDFs without a text layer.
Ground truth: ``Doc.level``, ``Doc.position`` and ``Doc.truth`` (metadata fields).
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass, field, replace
from datetime import date
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import docx
import numpy
import pypdfium2 as pdfium
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from docx.shared import Mm, Pt
from fpdf import FPDF
from odf.opendocument import OpenDocumentText
from odf.style import (
    Footer,
    Header,
    MasterPage,
    PageLayout,
    ParagraphProperties,
    Style,
    TableColumnProperties,
    TextProperties,
)
from odf.table import Table, TableCell, TableColumn, TableRow
from odf.text import P
from PIL import Image, ImageFilter
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

FONTS = {
    "liberation-serif": (
        Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"),
        Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Bold.ttf"),
    ),
    "liberation-sans": (
        Path("/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf"),
        Path("/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf"),
    ),
    "dejavu-serif": (
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"),
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf"),
    ),
    "dejavu-sans": (
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ),
}

LEVELS = {"mat": "MẬT", "toi-mat": "TỐI MẬT", "tuyet-mat": "TUYỆT MẬT"}
TITLES = {"mat": "Mật", "toi-mat": "Tối mật", "tuyet-mat": "Tuyệt mật"}
FOLDED = {"mat": "MAT", "toi-mat": "TOI MAT", "tuyet-mat": "TUYET MAT"}

# Where the rules put the marking, and in which formats each position exists.
POSITIONS: dict[str, tuple[str, ...]] = {
    "under-number": ("pdf", "docx", "odt", "body"),  # ô 10a: left column under Số/ký hiệu
    "under-abstract": ("pdf", "docx", "odt", "body"),  # công văn: under the "V/v" abstract
    "above-heading": ("pdf", "docx", "odt", "body"),  # centred above the type heading
    "label": ("pdf", "docx", "odt", "body"),  # "Độ mật: Tối mật" line
    "page-top": ("pdf", "docx", "odt"),  # top corner of the page / page header
    "footer": ("docx", "odt", "pdf"),  # page footer
    "text-box": ("docx", "odt"),  # a text box anchored in the page
    "shape": ("docx",),  # a drawn shape with text (VML) or WordArt
    "annotation": ("pdf",),  # a stamp annotation (appearance stream) or FreeText
    "form-xobject": ("pdf",),  # the stamp drawn as a form XObject
    "rotated-text": ("pdf",),  # the stamp printed at an angle
    "rotated-page": ("pdf",),  # a page with /Rotate 90
    "image-stamp": ("pdf",),  # the stamp pasted as a picture under the number
    "mail-body": ("body",),  # a line of the mail text above the document
}
# Positions added after the corpus was first measured: their documents come last, so that
# every earlier document keeps its id and content (the scanned corpus picks by both).
LATE_POSITIONS: dict[str, tuple[str, ...]] = {
    # the stamp pasted as a picture: under the number, or (every other one) in the page
    # header, on white or cut out on a transparent background
    "image-stamp": ("docx", "odt"),
}
# How the marking is printed.
FORMS = ("plain", "boxed", "spaced", "no-diacritics", "split", "label", "label-next-line")
# Hard negatives: what must not be taken for a marking.
TRAPS = (
    "prose-bi-mat",  # "bí mật nhà nước" in prose, also split so that "MẬT" starts a line
    "heading-bi-mat",  # "QUY CHẾ BẢO VỆ BÍ / MẬT NHÀ NƯỚC" heading split by the layout
    "abstract-bi-mat",  # "V/v ... bảo vệ bí" / "mật nhà nước" in the left column
    "mat-khau",  # "Mật khẩu", "MẬT KHẨU" in a table
    "mat-do",  # "mật độ dân số", "MẬT ĐỘ"
    "urgency-stamp",  # "THƯỢNG KHẨN" / "HỎA TỐC" / "KHẨN" where ô 10a would be
    "name-mat",  # signer or recipient called "Mật"
    "mat-ma",  # "CỤC QUẢN LÝ MẬT MÃ" agency in the header
    "levels-in-prose",  # "văn bản mật, tối mật, tuyệt mật ..." and the label with a list
    "khong-mat",  # "Độ mật: Không mật" / "Thường"
    "mat-ong",  # "MẬT ONG" product in capitals, "mật thiết"
    "no-diacritics-prose",  # "mat khau", "bi mat" without diacritics, ASCII mail
)


@dataclass(frozen=True)
class Truth:
    """Metadata the document states, as the register should record them."""

    number: str
    issued: date
    doc_type: str
    abstract: str
    urgency: str
    signer: str


@dataclass(frozen=True)
class Doc:
    id: str
    fmt: str  # pdf, docx, odt, body
    style: str  # state, party
    level: str | None  # mat, toi-mat, tuyet-mat; None for a negative
    position: str  # a POSITIONS key for positives, "" for negatives
    form: str  # a FORMS entry for positives
    trap: str  # a TRAPS entry for negatives, "" for positives
    truth: Truth
    parent: str
    agency: str
    place: str
    signer_title: tuple[str, ...]
    abstract_lines: tuple[str, ...]
    body: tuple[str, ...]
    font: str = "liberation-serif"
    scan_dpi: int = 0  # rendered to an image at this resolution (scanned corpus)
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def expect(self) -> str:
        return self.level or "clean"


# ---------------------------------------------------------------- the axes

_TYPES = {
    # code: (name, heading, abstract lead)
    "CV": ("Công văn", "", "V/v "),
    "QĐ": ("Quyết định", "QUYẾT ĐỊNH", "Về việc "),
    "NQ": ("Nghị quyết", "NGHỊ QUYẾT", "Về "),
    "KH": ("Kế hoạch", "KẾ HOẠCH", ""),
    "BC": ("Báo cáo", "BÁO CÁO", ""),
    "TB": ("Thông báo", "THÔNG BÁO", ""),
    "TTr": ("Tờ trình", "TỜ TRÌNH", "Về việc "),
    "CT": ("Chỉ thị", "CHỈ THỊ", "Về "),
    "GM": ("Giấy mời", "GIẤY MỜI", ""),
}
_STATE_AGENCIES = (
    ("UBND TỈNH ĐẮK NÔNG", "SỞ TÀI CHÍNH", "STC", "Đắk Nông", "UBND"),
    ("UBND TỈNH QUẢNG TRỊ", "SỞ NỘI VỤ", "SNV", "Quảng Trị", "UBND"),
    ("UBND THÀNH PHỐ HÀ NỘI", "SỞ THÔNG TIN VÀ TRUYỀN THÔNG", "STTTT", "Hà Nội", "UBND"),
    ("", "ỦY BAN NHÂN DÂN TỈNH LÂM ĐỒNG", "UBND", "Lâm Đồng", "UBND"),
    ("BỘ QUỐC PHÒNG", "BỘ CHỈ HUY QUÂN SỰ TỈNH", "BCH", "Đà Lạt", "BQP"),
    ("UBND HUYỆN CÁT TIÊN", "PHÒNG TÀI NGUYÊN VÀ MÔI TRƯỜNG", "TNMT", "Cát Tiên", "UBND"),
)
_PARTY_AGENCIES = (
    ("ĐẢNG BỘ TỈNH QUẢNG TRỊ", "TỈNH ỦY", "TU", "Quảng Trị"),
    ("TỈNH ỦY BÌNH PHƯỚC", "BAN TUYÊN GIÁO", "BTGTU", "Bình Phước"),
    ("ĐẢNG BỘ TỈNH ĐẮK NÔNG", "HUYỆN ỦY ĐẮK MIL", "HU", "Đắk Mil"),
    ("ĐẢNG ỦY KHỐI CƠ QUAN TỈNH", "VĂN PHÒNG", "VPĐU", "Lâm Đồng"),
)
_ABSTRACTS = (
    ("triển khai Kế hoạch chuyển đổi số năm 2027",),
    ("báo cáo tình hình thực hiện dự toán ngân sách", "nhà nước 6 tháng đầu năm 2026"),
    ("tăng cường công tác phòng, chống thiên tai và", "tìm kiếm cứu nạn mùa mưa bão năm 2026"),
    ("ban hành Quy chế làm việc của Ban Chỉ đạo",),
    ("góp ý dự thảo Quy định về quản lý, sử dụng", "tài sản công tại cơ quan, đơn vị"),
    ("tổ chức Hội nghị sơ kết công tác quý III", "và triển khai nhiệm vụ quý IV năm 2026"),
    ("kiện toàn Tổ công tác rà soát thủ tục hành chính",),
    (
        "thực hiện chế độ báo cáo thống kê ngành",
        "tài chính trên địa bàn tỉnh năm 2026",
        "theo Thông tư số 12/2025/TT-BTC",
    ),
    ("đăng ký nhu cầu đào tạo, bồi dưỡng cán bộ",),
    ("phê duyệt danh mục dự án đầu tư công", "trung hạn giai đoạn 2026 - 2030"),
)
_SIGNERS = (
    ("Nguyễn Văn An", ("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH")),
    ("Trần Thị Bích Ngọc", ("KT. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC")),
    ("Lê Hoàng Phúc", ("GIÁM ĐỐC",)),
    ("Phạm Minh Đức", ("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH")),
    ("Võ Thị Thu Hà", ("TL. GIÁM ĐỐC", "CHÁNH VĂN PHÒNG")),
)
_PARTY_SIGNERS = (
    ("Hoàng Đức Thắng", ("T/M BAN THƯỜNG VỤ", "BÍ THƯ")),
    ("Đinh Thị Hạnh", ("K/T BÍ THƯ", "PHÓ BÍ THƯ")),
    ("Lý Văn Thành", ("T/L BAN THƯỜNG VỤ", "CHÁNH VĂN PHÒNG")),
)
_BODY = (
    "Thực hiện chỉ đạo của cấp trên về việc tăng cường kỷ luật, kỷ cương hành chính trong"
    " thi hành công vụ, đề nghị các cơ quan, đơn vị triển khai thực hiện các nội dung sau:",
    "1. Rà soát, tổng hợp số liệu và gửi báo cáo về cơ quan thường trực trước ngày"
    " 15 tháng 12 năm 2026 để tổng hợp, báo cáo cấp có thẩm quyền.",
    "2. Phân công lãnh đạo phụ trách, bố trí công chức theo dõi, đôn đốc việc thực hiện;"
    " kịp thời báo cáo những khó khăn, vướng mắc phát sinh.",
    "Đề nghị các cơ quan, đơn vị quan tâm phối hợp thực hiện./.",
)
_URGENCY = ("", "", "", "Khẩn", "Thượng khẩn", "Hỏa tốc")


def _rng(*key: object) -> random.Random:
    return random.Random("|".join(str(k) for k in key))


def _base(index: int, fmt: str, style: str, type_code: str, rnd: random.Random) -> Doc:
    name, _heading, lead = _TYPES[type_code]
    abstract = _ABSTRACTS[rnd.randrange(len(_ABSTRACTS))]
    if type_code in ("KH", "BC", "TB", "GM"):  # these name the subject directly
        first = abstract[0][0].upper() + abstract[0][1:]
        abstract = (first, *abstract[1:])
    lines = (lead + abstract[0], *abstract[1:])
    year = 2026
    issued = date(year, rnd.randint(1, 12), rnd.randint(1, 28))
    urgency = _URGENCY[rnd.randrange(len(_URGENCY))]
    if style == "state":
        parent, agency, short, place, head = _STATE_AGENCIES[rnd.randrange(len(_STATE_AGENCIES))]
        serial = rnd.randint(3, 2999)
        if type_code == "CV":
            number = f"{serial}/{short}-VP"
        elif type_code in ("QĐ", "NQ", "CT"):
            number = (
                f"{serial}/{year}/{type_code}-{head}"
                if rnd.random() < 0.5
                else (f"{serial}/{type_code}-{head}")
            )
        else:
            number = f"{serial}/{type_code}-{short}"
        signer, title = _SIGNERS[rnd.randrange(len(_SIGNERS))]
    else:
        parent, agency, short, place = _PARTY_AGENCIES[rnd.randrange(len(_PARTY_AGENCIES))]
        serial = rnd.randint(3, 999)
        number = f"{serial}-{type_code}/{short}"
        signer, title = _PARTY_SIGNERS[rnd.randrange(len(_PARTY_SIGNERS))]
    body = tuple(_BODY[: rnd.randint(2, 4)])
    font = sorted(FONTS)[rnd.randrange(len(FONTS))]
    return Doc(
        id=f"d{index:03d}",
        fmt=fmt,
        style=style,
        level=None,
        position="",
        form="",
        trap="",
        truth=Truth(
            number=number,
            issued=issued,
            doc_type=name,
            abstract=" ".join(lines),
            urgency=urgency,
            signer=signer,
        ),
        parent=parent,
        agency=agency,
        place=place,
        signer_title=title,
        abstract_lines=lines,
        body=body,
        font=font,
    )


def _forms_for(position: str, level: str) -> tuple[str, ...]:
    if position == "label":
        return ("label", "label-next-line")
    forms = ["plain", "boxed", "spaced", "no-diacritics"]
    if level != "mat":
        forms.append("split")
    if position in ("annotation", "form-xobject", "rotated-text", "shape", "image-stamp"):
        forms = ["plain", "boxed", "spaced"]
    return tuple(forms)


def corpus() -> list[Doc]:
    """Every document of the text corpus, in a fixed order (ids d000...)."""
    docs: list[Doc] = []
    types = list(_TYPES)
    levels = list(LEVELS)
    index = 0

    def positives(positions: dict[str, tuple[str, ...]]) -> None:
        """Every position x format, cycling levels, forms, styles and types."""
        nonlocal index
        for position, fmts in positions.items():
            turn = 0  # cycles the forms within the position
            for fmt in fmts:
                for k in range(3 if fmt in ("pdf", "docx") else 2):
                    rnd = _rng("pos", position, fmt, k)
                    level = levels[(index + k) % 3]
                    forms = _forms_for(position, level)
                    form = forms[turn % len(forms)]
                    turn += 1
                    style = "party" if (index + k) % 4 == 3 else "state"
                    type_code = types[index % len(types)]
                    if position == "under-abstract":
                        type_code = "CV"
                    if position == "above-heading" and type_code == "CV":
                        type_code = "QĐ"
                    doc = _base(index, fmt, style, type_code, rnd)
                    docs.append(replace(doc, level=level, position=position, form=form))
                    index += 1

    positives(POSITIONS)
    # every level x form in the most standard place (ô 10a), PDF and DOCX
    for level in levels:
        for form in _forms_for("under-number", level):
            for fmt in ("pdf", "docx"):
                rnd = _rng("std", level, form, fmt)
                type_code = ("CV", "QĐ", "KH", "BC")[(index // 2) % 4]  # both formats
                position = "under-abstract" if type_code == "CV" else "under-number"
                style = "party" if index % 3 == 0 else "state"
                doc = _base(index, fmt, style, type_code, rnd)
                docs.append(replace(doc, level=level, position=position, form=form))
                index += 1
    # negatives: every trap in every format, twice in PDF and DOCX
    for trap in TRAPS:
        for fmt in ("pdf", "docx", "odt", "body"):
            for k in range(2 if fmt in ("pdf", "docx") else 1):
                rnd = _rng("neg", trap, fmt, k)
                type_code = types[(index + k) % len(types)]
                if trap == "abstract-bi-mat":
                    type_code = "CV"
                elif trap == "heading-bi-mat" and type_code == "CV":
                    type_code = "QĐ"
                style = "party" if (index + k) % 5 == 4 else "state"
                doc = _base(index, fmt, style, type_code, rnd)
                docs.append(replace(doc, trap=trap))
                index += 1
    # plain documents with nothing special: the bulk of real traffic
    for k in range(12):
        fmt = ("pdf", "docx", "odt", "body")[k % 4]
        rnd = _rng("plain", k)
        doc = _base(index, fmt, "party" if k % 3 == 0 else "state", types[k % len(types)], rnd)
        docs.append(doc)
        index += 1
    positives(LATE_POSITIONS)
    return [_apply_trap(d) for d in docs]


def scanned_corpus() -> list[Doc]:
    """A small set of PDF documents rendered to images: positives in the standard places and
    a few negatives, at 300 and 200 dpi (OCR is slow: keep it small)."""
    picks: list[Doc] = []
    text = [d for d in corpus() if d.fmt == "pdf"]
    chosen: list[Doc] = []
    for position, form, style in (
        ("under-number", "boxed", "state"),
        ("under-number", "plain", "party"),
        ("under-abstract", "plain", "state"),
        ("under-abstract", "spaced", "state"),
        ("above-heading", "plain", "state"),
        ("label", "label", "state"),
        ("label", "label-next-line", "state"),
        ("under-abstract", "no-diacritics", "state"),
    ):
        fits = [d for d in text if (d.position, d.form) == (position, form)]
        fits = fits or [d for d in text if d.position == position]
        chosen.append(next((d for d in fits if d.style == style), fits[0]))
    chosen.append(next(d for d in text if d.trap == "urgency-stamp"))
    chosen.append(next(d for d in text if d.trap == "prose-bi-mat"))
    for dpi in (300, 200):
        for doc in chosen:
            picks.append(replace(doc, id=f"{doc.id}-scan{dpi}", scan_dpi=dpi))
    return picks


# ---------------------------------------------------------------- traps


def _apply_trap(doc: Doc) -> Doc:
    trap = doc.trap
    if not trap:
        return doc
    body = list(doc.body)
    extra: dict[str, str] = {}
    if trap == "prose-bi-mat":
        body.insert(
            1,
            "Các cơ quan, đơn vị thực hiện nghiêm Luật Bảo vệ bí mật nhà nước; tài liệu có"
            " nội dung bí mật nhà nước không được soạn thảo, lưu giữ trên máy tính kết nối"
            " mạng Internet.",
        )
        extra["left_tail"] = "BẢO VỆ BÍ"
        extra["left_tail2"] = "MẬT NHÀ NƯỚC"
    elif trap == "heading-bi-mat":
        # a title set in a narrow column: the extractor breaks it before "MẬT"
        body[1:1] = ["QUY CHẾ CÔNG TÁC BẢO VỆ BÍ", "MẬT", "NHÀ NƯỚC TẠI CƠ QUAN"]
    elif trap == "abstract-bi-mat":
        lines = ("V/v tăng cường công tác bảo vệ bí", "mật nhà nước năm 2027")
        doc = replace(doc, abstract_lines=lines, truth=replace(doc.truth, abstract=" ".join(lines)))
    elif trap == "mat-khau":
        body.insert(1, "Mật khẩu hộp thư công vụ phải được thay đổi định kỳ 03 tháng một lần.")
        extra["table"] = "TÀI KHOẢN\tMẬT KHẨU\nannv.stc\tđổi khi đăng nhập lần đầu"
    elif trap == "mat-do":
        body.insert(
            1, "Mật độ dân số bình quân toàn tỉnh đạt 95 người/km², tăng 2% so với năm trước."
        )
        extra["table"] = "ĐƠN VỊ\tMẬT ĐỘ\nHuyện Cát Tiên\t120 người/km²"
    elif trap == "urgency-stamp":
        urgency = doc.truth.urgency or "Thượng khẩn"
        doc = replace(doc, truth=replace(doc.truth, urgency=urgency))
    elif trap == "name-mat":
        signer = ("Lò Văn Mật", "Nguyễn Thị Mật", "Hà Mật")[_n(doc) % 3]
        doc = replace(doc, truth=replace(doc.truth, signer=signer))
        extra["recipient"] = "- Ông Lò Văn Mật, Trưởng phòng Hành chính;"
    elif trap == "mat-ma":
        extra["agency"] = "CỤC QUẢN LÝ MẬT MÃ DÂN SỰ"
    elif trap == "levels-in-prose":
        body.insert(
            1,
            "Văn bản có độ mật, tối mật, tuyệt mật không được gửi, nhận trên hệ thống thư"
            " điện tử; văn bản độ Mật phải được mã hóa bằng sản phẩm mật mã của Ngành Cơ yếu.",
        )
        body.insert(2, "Độ mật: Mật, Tối mật, Tuyệt mật theo quy định của Luật.")
    elif trap == "khong-mat":
        extra["label"] = ("Độ mật: Không mật", "Độ mật: Thường")[_n(doc) % 2]
    elif trap == "mat-ong":
        extra["table"] = "SẢN PHẨM\tSẢN LƯỢNG\nMẬT ONG\t12 tấn"
        body.insert(1, "Hai bên có mối quan hệ mật thiết trong phát triển sản phẩm mật ong.")
    elif trap == "no-diacritics-prose":
        body.insert(
            1, "Luu y: mat khau hop thu phai doi dinh ky; tai lieu bi mat khong gui qua mang."
        )
    return replace(doc, body=tuple(body), extra=extra)


# ---------------------------------------------------------------- the page model


@dataclass
class Page:
    """The document as blocks, before a format renders it."""

    page_top: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # header left column
    right: list[str] = field(default_factory=list)  # header right column
    above_heading: list[str] = field(default_factory=list)
    heading: list[str] = field(default_factory=list)  # type heading + abstract, centred
    body: list[str] = field(default_factory=list)
    sig_left: list[str] = field(default_factory=list)  # Nơi nhận
    sig_right: list[str] = field(default_factory=list)  # signature block
    footer: list[str] = field(default_factory=list)
    boxed: set[str] = field(default_factory=set)  # lines drawn in a box
    bold: set[str] = field(default_factory=set)
    stamp: list[str] = field(default_factory=list)  # lines of the stamp, for special positions
    table: list[list[str]] = field(default_factory=list)


def marking_lines(doc: Doc) -> list[str]:
    """The lines of the marking as printed in this document."""
    assert doc.level is not None
    printed = LEVELS[doc.level]
    form = doc.form
    if form == "spaced":
        return ["  ".join(" ".join(w) for w in printed.split())]
    if form == "no-diacritics":
        return [FOLDED[doc.level]]
    if form == "split":
        return printed.split()
    if form == "label":
        return [f"Độ mật: {TITLES[doc.level]}"]
    if form == "label-next-line":
        return ["Độ mật:", TITLES[doc.level]]
    return [printed]


def urgency_stamp(doc: Doc) -> str:
    return doc.truth.urgency.upper()


def page_model(doc: Doc) -> Page:
    page = Page()
    name, heading, _lead = _TYPES[_type_code(doc)]
    agency = doc.extra.get("agency", doc.agency)
    if doc.style == "state":
        if doc.parent:
            page.left.append(doc.parent)
        page.left.append(agency)
        page.bold.add(agency)
        page.left.append("Số: " + doc.truth.number)
        page.right += ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]
    else:
        page.left += [doc.parent, agency, "*", "Số " + doc.truth.number]
        page.right += ["ĐẢNG CỘNG SẢN VIỆT NAM"]
    page.bold.update(page.right[:1])
    d = doc.truth.issued
    page.right.append(f"{doc.place}, ngày {d.day:02d} tháng {d.month:02d} năm {d.year}")
    if _type_code(doc) == "CV":
        page.left += list(doc.abstract_lines)
    else:
        lines = doc.extra.get("heading_lines")
        page.heading.append(heading)
        page.heading += lines.split("\n") if lines else list(doc.abstract_lines)
    stamp: list[str] = []
    if doc.level is not None:
        stamp = marking_lines(doc)
    position = doc.position
    # ô 10b: the urgency stamp under the number (or the abstract), after ô 10a
    urgency = [urgency_stamp(doc)] if doc.truth.urgency else []
    if position in ("under-number", "under-abstract") or (
        position == "label" and doc.fmt != "body" and _n(doc) % 2 == 0
    ):
        if position == "under-number" and _type_code(doc) == "CV":
            # the number line, then the stamp, then the abstract
            at = page.left.index(next(x for x in page.left if x.startswith("Số")))
            page.left[at + 1 : at + 1] = stamp
        else:
            page.left += stamp
        if doc.form == "boxed":
            page.boxed.update(stamp)
        page.bold.update(stamp)
    elif position == "label":
        page.body.insert(0, stamp[0] if len(stamp) == 1 else stamp[0] + "\n" + stamp[1])
    elif position == "above-heading":
        page.above_heading += stamp
        if doc.form == "boxed":
            page.boxed.update(stamp)
    elif position == "page-top":
        page.page_top += stamp
    elif position == "footer":
        page.footer += stamp
    elif position:
        page.stamp = stamp
    page.left += urgency
    page.bold.update(urgency)
    if doc.extra.get("label"):
        page.left.append(doc.extra["label"])
    if doc.extra.get("left_tail"):
        page.body.append(
            "Giao Văn phòng theo dõi, đôn đốc thực hiện Quy chế BẢO VỆ BÍ MẬT NHÀ NƯỚC."
        )
    code = _type_code(doc)
    if code in ("QĐ", "NQ", "CT") and doc.style == "state":
        # the enacting authority under the abstract, then the legal bases (with dates)
        page.heading.append(("CHỦ TỊCH " if code != "NQ" else "") + "ỦY BAN NHÂN DÂN TỈNH")
        page.body += [
            "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;",
            "Căn cứ Nghị định số 30/2020/NĐ-CP ngày 05 tháng 3 năm 2020 của Chính phủ về"
            " công tác văn thư;",
        ]
    elif code == "CV":
        page.body.append("Kính gửi: Các sở, ban, ngành tỉnh.")
    page.body += list(doc.body)
    if doc.extra.get("table"):
        page.table = [row.split("\t") for row in doc.extra["table"].split("\n")]
    page.sig_left = ["Nơi nhận:", "- Như trên;"]
    if doc.extra.get("recipient"):
        page.sig_left.append(doc.extra["recipient"])
    page.sig_left += ["- Lưu: VT."]
    page.sig_right = [*doc.signer_title, "", "", doc.truth.signer]
    page.bold.update(doc.signer_title)
    page.bold.add(doc.truth.signer)
    del name
    return page


def _n(doc: Doc) -> int:
    """The document's serial number, for alternating variants."""
    return int(doc.id[1:4])


def _type_code(doc: Doc) -> str:
    for code, (name, _h, _l) in _TYPES.items():
        if name == doc.truth.doc_type:
            return code
    raise ValueError(doc.truth.doc_type)


# ---------------------------------------------------------------- PDF


class _Pdf(FPDF):
    pass


def _pdf_fonts(pdf: FPDF, font: str) -> None:
    regular, bold = FONTS[font]
    pdf.add_font("Body", fname=str(regular))
    pdf.add_font("Body", style="B", fname=str(bold))
    pdf.add_font("DejaVu", fname=str(FONTS["dejavu-sans"][0]))
    pdf.set_fallback_fonts(["DejaVu"])


def render_pdf(doc: Doc) -> bytes:
    page = page_model(doc)
    pdf = _Pdf(format="A4")
    pdf.set_creator("mailsvc test generator")
    _pdf_fonts(pdf, doc.font)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    size = 12 if doc.font.startswith("dejavu") else 13
    # page top (right corner)
    if page.page_top:
        y = 6
        for line in page.page_top:
            pdf.set_font("Body", "B", size + 1)
            pdf.set_xy(150, y)
            pdf.cell(45, 7, line, align="C", border=1 if doc.form == "boxed" else 0)
            y += 7
    top = 16
    y = _pdf_header(pdf, page, doc, top, size)
    pdf.set_xy(15, y + 6)
    for line in page.above_heading:
        pdf.set_font("Body", "B", size + 1)
        width = pdf.get_string_width(line) + 8
        pdf.set_x((210 - width) / 2)
        pdf.cell(width, 8, line, align="C", border=1 if line in page.boxed else 0)
        pdf.ln(9)
    for i, line in enumerate(page.heading):
        pdf.set_font("Body", "B", size + 1 if i == 0 else size)
        pdf.multi_cell(0, 7, line, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Body", "", size)
    for para in page.body:
        for line in para.split("\n"):
            pdf.multi_cell(0, 6.5, line, align="J", new_x="LMARGIN", new_y="NEXT")
    if page.table:
        pdf.ln(2)
        for row in page.table:
            for cell in row:
                pdf.cell(80, 7, cell, border=1)
            pdf.ln(7)
    pdf.ln(6)
    y0 = pdf.get_y()
    pdf.set_font("Body", "", size - 1)
    for i, line in enumerate(page.sig_left):
        pdf.set_xy(15, y0 + 6 * i)
        pdf.set_font("Body", "B" if i == 0 else "", size - 1)
        pdf.cell(80, 6, line)
    for i, line in enumerate(page.sig_right):
        pdf.set_xy(105, y0 + 6 * i)
        pdf.set_font("Body", "B", size)
        pdf.cell(95, 6, line, align="C")
    if page.footer:
        pdf.set_auto_page_break(False)
        pdf.set_xy(15, 282)
        pdf.set_font("Body", "B", size)
        pdf.cell(180, 6, " ".join(page.footer), align="C")
    if doc.position == "rotated-text":
        pdf.set_font("Body", "B", size + 6)
        with pdf.rotation(20, x=150, y=120):
            for k, line in enumerate(page.stamp):
                pdf.set_xy(130, 112 + 10 * k)
                pdf.cell(50, 10, line, align="C", border=1 if doc.form == "boxed" else 0)
    if doc.position == "image-stamp":
        # a picture of the stamp (as scanned from a rubber stamp) under the number
        holder = io.BytesIO(_stamp_png(page.stamp, doc))
        pdf.image(holder, x=30, y=16 + 6.5 * (page.left.index(_number_line(page)) + 1), w=42)
    data = bytes(pdf.output())
    if doc.position in ("annotation", "form-xobject"):
        data = _pdf_overlay(data, page.stamp, doc)
    if doc.position == "rotated-page":
        data = _rotated_page_pdf(doc, page)
    return data


def _pdf_header(pdf: FPDF, page: Page, doc: Doc, top: float, size: int) -> float:
    """The two header columns. The place/date line sits on the row of the number (ô 3 and
    ô 4 of Decree 30) or, as in many templates, one or two rows lower, so that it shares a
    baseline with the abstract or the stamp. Cells are written row by row (as word
    processors print them) or column by column."""
    rnd = _rng("header", doc.id)
    page.left = _wrap(pdf, page, page.left, 80, size)
    number_row = next(i for i, x in enumerate(page.left) if x.startswith("Số"))
    shift = rnd.choice((0, 0, 1, 2))
    right = list(page.right)
    date_line = right.pop()
    rows_right: dict[int, str] = dict(enumerate(right))
    stamp_rows = [i for i, x in enumerate(page.left) if x in page.bold and i > number_row]
    date_row = max(number_row + shift, len(right))
    if stamp_rows and rnd.random() < 0.5:
        date_row = max(stamp_rows[0], len(right))  # the stamp shares the date's baseline
    rows_right[date_row] = date_line
    cells: list[tuple[int, int, str]] = [(i, 0, x) for i, x in enumerate(page.left)]
    cells += [(i, 1, x) for i, x in rows_right.items()]
    if rnd.random() < 0.6:
        cells.sort()
    else:
        cells.sort(key=lambda c: (c[1], c[0]))
    step = 6.5
    bottom = top
    for row, column, line in cells:
        x, w = ((12, 80), (92, 110))[column]
        y = top + step * row
        pdf.set_font("Body", "B" if line in page.bold else "", size)
        if line in page.boxed:
            width = pdf.get_string_width(line) + 8
            pdf.set_xy(x + (w - width) / 2, y - 0.5)
            pdf.cell(width, 7, line, align="C", border=1)
        else:
            pdf.set_xy(x, y)
            if doc.form == "spaced" and doc.level and line in marking_lines(doc):
                pdf.set_char_spacing(0.6)
            pdf.cell(w, 6, line, align="C")
            pdf.set_char_spacing(0)
        bottom = max(bottom, y + step)
    return bottom


def _number_line(page: Page) -> str:
    return next(x for x in page.left if x.startswith("Số"))


def _wrap(pdf: FPDF, page: Page, lines: list[str], width: float, size: int) -> list[str]:
    """Lines wider than the column broken at spaces, as the word processor does."""
    out: list[str] = []
    for line in lines:
        pdf.set_font("Body", "B" if line in page.bold else "", size)
        if pdf.get_string_width(line) <= width - 2 or " " not in line:
            out.append(line)
            continue
        words = line.split(" ")
        current = words[0]
        for word in words[1:]:
            if pdf.get_string_width(current + " " + word) <= width - 2:
                current += " " + word
            else:
                out.append(current)
                current = word
        out.append(current)
        if line in page.bold:
            page.bold.update(out[-len(out) :])
    return out


def _stamp_png(lines: list[str], doc: Doc) -> bytes:
    """The stamp as a scanned picture (200 dpi, grey; every other one with a transparent
    background, as a stamp cut out of a scan is pasted)."""
    picture = pdfium.PdfDocument(_stamp_pdf(lines, doc.font, doc.form != "plain"))
    try:
        bitmap = picture[0].render(scale=200 / 72, grayscale=True).to_pil()
    finally:
        picture.close()
    holder = io.BytesIO()
    if doc.fmt != "pdf" and _n(doc) % 2:
        ink = bitmap.convert("L").point(lambda v: 255 - v)  # dark where the ink is
        cut = Image.new("LA", bitmap.size, 0)
        cut.putalpha(ink)
        cut.save(holder, format="PNG")
    else:
        bitmap.save(holder, format="PNG")
    return holder.getvalue()


def _stamp_pdf(lines: list[str], font: str, boxed: bool) -> bytes:
    """A small PDF page holding the stamp, to reuse as a form XObject, appearance or picture;
    as wide as its longest line."""
    probe = FPDF(unit="pt")
    _pdf_fonts(probe, font)
    probe.add_page()
    probe.set_font("Body", "B", 16)
    width = max(probe.get_string_width(line) for line in lines) + 24
    pdf = FPDF(unit="pt", format=(width + 8, 24 * max(1, len(lines)) + 8))
    _pdf_fonts(pdf, font)
    pdf.set_margins(0, 0)
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Body", "B", 16)
    for k, line in enumerate(lines):
        pdf.set_xy(4, 4 + 24 * k)
        pdf.cell(width, 24, line, align="C", border=1 if boxed else 0)
    return bytes(pdf.output())


def _pdf_overlay(data: bytes, stamp: list[str], doc: Doc) -> bytes:
    """Add the stamp to page 1 as a form XObject drawn by the page, or as an annotation."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    stamp_page = PdfReader(io.BytesIO(_stamp_pdf(stamp, doc.font, doc.form == "boxed"))).pages[0]
    form = StreamObject()
    form._data = stamp_page.get_contents().get_data()  # type: ignore[union-attr]
    form.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Form"),
            NameObject("/BBox"): ArrayObject(
                [FloatObject(v) for v in stamp_page.mediabox]  # type: ignore[arg-type]
            ),
            NameObject("/Resources"): stamp_page["/Resources"].clone(writer),
        }
    )
    ref = writer._add_object(form)
    page = writer.pages[0]
    x, y = 40, 640  # under the number, left column (points from the bottom)
    if doc.position == "form-xobject":
        resources = page["/Resources"]
        xobjects = resources.get("/XObject")
        if xobjects is None:
            resources[NameObject("/XObject")] = DictionaryObject()
            xobjects = resources["/XObject"]
        xobjects[NameObject("/StampMat")] = ref  # type: ignore[index]
        content = page.get_contents()
        assert content is not None
        ops = f"q 1 0 0 1 {x} {y} cm /StampMat Do Q\n".encode()
        new = StreamObject()
        new._data = content.get_data() + b"\n" + ops
        page[NameObject("/Contents")] = writer._add_object(new)
    else:
        width = float(stamp_page.mediabox.width)
        height = float(stamp_page.mediabox.height)
        annot = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Stamp"),
                NameObject("/Rect"): ArrayObject(
                    [
                        FloatObject(x),
                        FloatObject(y),
                        FloatObject(x + width),
                        FloatObject(y + height),
                    ]
                ),
                NameObject("/F"): NumberObject(4),
                NameObject("/Name"): NameObject("/Confidential"),
                NameObject("/AP"): DictionaryObject({NameObject("/N"): ref}),
            }
        )
        if _n(doc) % 2 == 0:
            # a FreeText comment: only /Contents, no appearance stream
            annot[NameObject("/Subtype")] = NameObject("/FreeText")
            del annot["/AP"]
            annot[NameObject("/Contents")] = TextStringObject("\n".join(stamp))
            annot[NameObject("/DA")] = TextStringObject("/Helv 14 Tf 0 g")
        annots = page.get("/Annots")
        if annots is None:
            page[NameObject("/Annots")] = ArrayObject()
            annots = page["/Annots"]
        annots.append(writer._add_object(annot))  # type: ignore[union-attr]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _rotated_page_pdf(doc: Doc, page: Page) -> bytes:
    """Landscape content on a portrait page turned by /Rotate 90 (as scanners produce)."""
    flat = replace(doc, position="under-number")
    data = render_pdf(flat)
    reader = PdfReader(io.BytesIO(data))
    writer = PdfWriter()
    for p in reader.pages:
        writer.add_page(p)
    writer.pages[0].rotate(90)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------- DOCX

_BOX = (
    '<w:pBdr {ns}><w:top w:val="single" w:sz="8" w:space="1" w:color="000000"/>'
    '<w:left w:val="single" w:sz="8" w:space="4" w:color="000000"/>'
    '<w:bottom w:val="single" w:sz="8" w:space="1" w:color="000000"/>'
    '<w:right w:val="single" w:sz="8" w:space="4" w:color="000000"/></w:pBdr>'
)


def _para(
    container: object,
    text: str,
    *,
    bold: bool = False,
    center: bool = True,
    boxed: bool = False,
    spaced: bool = False,
) -> None:
    para = container.add_paragraph()  # type: ignore[attr-defined]
    if center:
        para.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = para.add_run(text)
    run.bold = bold
    if spaced:
        rpr = run._r.get_or_add_rPr()
        rpr.append(parse_xml(f'<w:spacing {nsdecls("w")} w:val="60"/>'))
    if boxed:
        ppr = para._p.get_or_add_pPr()
        ppr.append(parse_xml(_BOX.format(ns=nsdecls("w"))))


def _cell_lines(cell: object, lines: list[str], page: Page) -> None:
    first = True
    for line in lines:
        if first:
            para = cell.paragraphs[0]  # type: ignore[attr-defined]
            para.alignment = WD_ALIGN_PARAGRAPH.CENTER
            run = para.add_run(line)
            run.bold = line in page.bold
            if line in page.boxed:
                para._p.get_or_add_pPr().append(parse_xml(_BOX.format(ns=nsdecls("w"))))
            first = False
        else:
            _para(cell, line, bold=line in page.bold, boxed=line in page.boxed)


def _textbox_xml(lines: list[str], kind: str) -> str:
    paras = "".join(
        f'<w:p><w:pPr><w:jc w:val="center"/></w:pPr><w:r><w:rPr><w:b/></w:rPr>'
        f"<w:t>{line}</w:t></w:r></w:p>"
        for line in lines
    )
    if kind == "wordart":
        text = " ".join(lines)
        return (
            f'<w:r {nsdecls("w")} xmlns:v="urn:schemas-microsoft-com:vml"><w:pict>'
            '<v:shape id="wa1" type="#_x0000_t136" style="position:absolute;'
            'margin-left:20pt;margin-top:10pt;width:90pt;height:24pt">'
            f'<v:textpath style="font-family:&quot;Times New Roman&quot;" string="{text}"/>'
            "</v:shape></w:pict></w:r>"
        )
    if kind == "vml":
        return (
            f'<w:r {nsdecls("w")} xmlns:v="urn:schemas-microsoft-com:vml"><w:pict>'
            '<v:rect style="position:absolute;margin-left:20pt;margin-top:10pt;width:90pt;'
            f'height:30pt"><v:textbox><w:txbxContent>{paras}</w:txbxContent></v:textbox>'
            "</v:rect></w:pict></w:r>"
        )
    # a DrawingML text box (what Word 2010+ writes), with its VML fallback
    return (
        f"<w:r {nsdecls('w')} "
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
        'xmlns:v="urn:schemas-microsoft-com:vml">'
        '<mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>'
        '<wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" relativeHeight="2" '
        'behindDoc="0" locked="0" layoutInCell="1" allowOverlap="1">'
        '<wp:simplePos x="0" y="0"/><wp:positionH relativeFrom="page"><wp:posOffset>'
        '900000</wp:posOffset></wp:positionH><wp:positionV relativeFrom="page">'
        '<wp:posOffset>1900000</wp:posOffset></wp:positionV><wp:extent cx="1200000" '
        'cy="400000"/><wp:wrapNone/><wp:docPr id="7" name="Stamp"/>'
        "<a:graphic><a:graphicData "
        'uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
        f'<wps:wsp><wps:cNvSpPr txBox="1"/><wps:spPr><a:xfrm><a:off x="0" y="0"/>'
        '<a:ext cx="1200000" cy="400000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/>'
        '</a:prstGeom><a:ln w="12700"><a:solidFill><a:srgbClr val="FF0000"/></a:solidFill>'
        f"</a:ln></wps:spPr><wps:txbx><w:txbxContent>{paras}</w:txbxContent></wps:txbx>"
        "<wps:bodyPr/></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>"
        "</mc:Choice><mc:Fallback><w:pict>"
        f"<v:rect><v:textbox><w:txbxContent>{paras}</w:txbxContent></v:textbox></v:rect>"
        "</w:pict></mc:Fallback></mc:AlternateContent></w:r>"
    )


def render_docx(doc: Doc) -> bytes:
    page = page_model(doc)
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    section = document.sections[0]
    if page.page_top:
        head = section.header.paragraphs[0]
        head.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        head.add_run("\n".join(page.page_top) if doc.form != "split" else page.page_top[0])
        for extra in page.page_top[1:] if doc.form == "split" else ():
            _para(section.header, extra, bold=True)
    if page.footer:
        foot = section.footer.paragraphs[0]
        foot.alignment = WD_ALIGN_PARAGRAPH.CENTER
        foot.add_run(page.footer[0]).bold = True
        for extra in page.footer[1:]:
            _para(section.footer, extra, bold=True)
    table = document.add_table(rows=1, cols=2)
    _cell_lines(table.cell(0, 0), page.left, page)
    _cell_lines(table.cell(0, 1), page.right, page)
    if page.stamp and doc.position == "image-stamp":
        picture = io.BytesIO(_stamp_png(page.stamp, doc))
        if _n(doc) % 2:
            holder = section.header.paragraphs[0]
        else:
            holder = document.add_paragraph()
        holder.add_run().add_picture(picture, width=Mm(42))
    elif page.stamp:
        if doc.position == "text-box":
            kind = ("drawing", "vml")[_n(doc) % 2]
        else:
            kind = ("wordart", "vml")[_n(doc) % 2]
        anchor = document.add_paragraph()
        anchor._p.append(parse_xml(_textbox_xml(page.stamp, kind)))
    for line in page.above_heading:
        _para(document, line, bold=True, boxed=line in page.boxed)
    for i, line in enumerate(page.heading):
        _para(document, line, bold=i == 0 or True)
    for para in page.body:
        for line in para.split("\n"):
            _para(document, line, center=False)
    if page.table:
        grid = document.add_table(rows=len(page.table), cols=len(page.table[0]))
        for r, row in enumerate(page.table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    sig = document.add_table(rows=1, cols=2)
    _cell_lines(sig.cell(0, 0), page.sig_left, page)
    _cell_lines(sig.cell(0, 1), [x for x in page.sig_right if x], page)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- ODT


def render_odt(doc: Doc) -> bytes:
    from odf.draw import Frame, TextBox
    from odf.draw import Image as OdfImage

    page = page_model(doc)
    document = OpenDocumentText()
    bold = Style(name="Bold", family="paragraph")
    bold.addElement(TextProperties(fontweight="bold"))
    bold.addElement(ParagraphProperties(textalign="center"))
    document.automaticstyles.addElement(bold)
    boxed = Style(name="Boxed", family="paragraph")
    boxed.addElement(TextProperties(fontweight="bold"))
    boxed.addElement(ParagraphProperties(textalign="center", border="0.06pt solid #000000"))
    document.automaticstyles.addElement(boxed)
    col = Style(name="Col", family="table-column")
    col.addElement(TableColumnProperties(columnwidth="8cm"))
    document.automaticstyles.addElement(col)
    layout = PageLayout(name="Layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="Standard", pagelayoutname=layout)
    head, foot = Header(), Footer()
    for line in page.page_top:
        head.addElement(P(stylename=bold, text=line))
    for line in page.footer:
        foot.addElement(P(stylename=bold, text=line))
    master.addElement(head)
    master.addElement(foot)
    document.masterstyles.addElement(master)

    def style_of(line: str) -> Style | None:
        if line in page.boxed:
            return boxed
        return bold if line in page.bold else None

    def para(line: str) -> P:
        st = style_of(line)
        return P(stylename=st, text=line) if st is not None else P(text=line)

    table = Table(name="Header")
    table.addElement(TableColumn(stylename=col, numbercolumnsrepeated=2))
    row = TableRow()
    for lines in (page.left, page.right):
        cell = TableCell()
        for line in lines:
            cell.addElement(para(line))
        row.addElement(cell)
    table.addElement(row)
    document.text.addElement(table)
    if page.stamp and doc.position == "image-stamp":
        png = _stamp_png(page.stamp, doc)
        width, height = Image.open(io.BytesIO(png)).size
        href = document.addPicture(f"Pictures/stamp{_n(doc)}.png", "image/png", png)
        frame = Frame(
            width="4.2cm", height=f"{4.2 * height / width:.2f}cm", anchortype="paragraph"
        )
        frame.addElement(OdfImage(href=href))
        holder = P()
        holder.addElement(frame)
        if _n(doc) % 2:
            head.addElement(holder)
        else:
            document.text.addElement(holder)
    elif page.stamp:
        frame = Frame(width="4cm", height="1.2cm", x="2cm", y="5cm", anchortype="paragraph")
        box = TextBox()
        for line in page.stamp:
            box.addElement(P(stylename=bold, text=line))
        frame.addElement(box)
        holder = P()
        holder.addElement(frame)
        document.text.addElement(holder)
    for line in page.above_heading + page.heading:
        document.text.addElement(P(stylename=bold, text=line))
    for body in page.body:
        for line in body.split("\n"):
            document.text.addElement(P(text=line))
    if page.table:
        grid = Table(name="Data")
        grid.addElement(TableColumn(stylename=col, numbercolumnsrepeated=len(page.table[0])))
        for cells in page.table:
            tr = TableRow()
            for text in cells:
                tc = TableCell()
                tc.addElement(P(text=text))
                tr.addElement(tc)
            grid.addElement(tr)
        document.text.addElement(grid)
    sig = Table(name="Signature")
    sig.addElement(TableColumn(stylename=col, numbercolumnsrepeated=2))
    row = TableRow()
    for lines in (page.sig_left, [x for x in page.sig_right if x]):
        cell = TableCell()
        for line in lines:
            cell.addElement(para(line))
        row.addElement(cell)
    sig.addElement(row)
    document.text.addElement(sig)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


# ---------------------------------------------------------------- mail body


def render_text(doc: Doc) -> str:
    """The document pasted into a mail: the header columns one after the other."""
    page = page_model(doc)
    out: list[str] = []
    if doc.position == "mail-body" and doc.level:
        out += [*marking_lines(doc), ""]
    out += page.page_top
    out += [*page.left, "", *page.right, ""]
    out += page.above_heading + page.heading + [""]
    out += page.body
    for row in page.table:
        out.append("\t".join(row))
    out += [""] + page.sig_left + [""] + [x for x in page.sig_right if x]
    out += page.footer
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- scans


def render_scan(doc: Doc) -> bytes:
    """The PDF of ``doc`` printed and scanned: a bitmap at ``doc.scan_dpi``, turned by a
    fraction of a degree, speckled, wrapped in a PDF with no text layer."""
    data = render_pdf(replace(doc, scan_dpi=0))
    pdf = pdfium.PdfDocument(data)
    try:
        images = []
        for index in range(len(pdf)):
            bitmap = pdf[index].render(scale=doc.scan_dpi / 72, grayscale=True)
            images.append(bitmap.to_pil().convert("L"))
    finally:
        pdf.close()
    rnd = _rng("scan", doc.id)
    out_pages = []
    for image in images:
        angle = rnd.uniform(-1.2, 1.2)
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
        speckle = numpy.random.default_rng(rnd.randrange(1 << 30)).normal(128, 40, image.size[::-1])
        noise = Image.fromarray(speckle.clip(0, 255).astype("uint8"), mode="L")
        image = Image.blend(image, noise, 0.08).filter(ImageFilter.SMOOTH)
        out_pages.append(image)
    out = io.BytesIO()
    out_pages[0].save(
        out, format="PDF", resolution=doc.scan_dpi, save_all=True, append_images=out_pages[1:]
    )
    return out.getvalue()


def render_image(doc: Doc, fmt: str = "PNG") -> bytes:
    """Page 1 of the scan as an image file (PNG, JPEG or TIFF)."""
    pdf = pdfium.PdfDocument(render_scan(doc))
    try:
        image = pdf[0].render(scale=doc.scan_dpi / 72, grayscale=True).to_pil().convert("L")
    finally:
        pdf.close()
    out = io.BytesIO()
    image.save(out, format=fmt, dpi=(doc.scan_dpi, doc.scan_dpi))
    return out.getvalue()


# ---------------------------------------------------------------- files and mail

CONTENT_TYPES = {
    "pdf": ("application", "pdf", "pdf"),
    "docx": (
        "application",
        "vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    "odt": ("application", "vnd.oasis.opendocument.text", "odt"),
}


def build(doc: Doc) -> bytes:
    if doc.scan_dpi:
        return render_scan(doc)
    if doc.fmt == "pdf":
        return render_pdf(doc)
    if doc.fmt == "docx":
        return render_docx(doc)
    if doc.fmt == "odt":
        return render_odt(doc)
    return render_text(doc).encode("utf-8")


def filename(doc: Doc) -> str:
    ext = "pdf" if doc.scan_dpi else CONTENT_TYPES[doc.fmt][2]
    return f"van-ban-{doc.id}.{ext}"


def mail(
    doc: Doc, *, sender: str = "vanthu@ubnd.example.vn", recipient: str = "vanthu@stttt.example.vn"
) -> EmailMessage:
    """The document as an agency sends it: a neutral subject and cover text, the file
    attached (or, for the mail-body format, the document as the text)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"Gửi văn bản số {doc.truth.number}"
    msg["Message-ID"] = f"<{doc.id}@corpus.example.vn>"
    msg["Date"] = "Fri, 04 Dec 2026 09:00:00 +0700"
    if doc.fmt == "body" and not doc.scan_dpi:
        msg.set_content(render_text(doc))
        return msg
    msg.set_content("Kính gửi Văn phòng.\nĐơn vị gửi kèm văn bản, đề nghị tiếp nhận.\n")
    maintype, subtype, _ext = CONTENT_TYPES["pdf" if doc.scan_dpi else doc.fmt]
    msg.add_attachment(build(doc), maintype=maintype, subtype=subtype, filename=filename(doc))
    return msg


def write_corpus(directory: Path, docs: list[Doc]) -> None:
    """Write the files and a ground-truth table (for looking at them by hand)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["id\tformat\texpect\tposition\tform\ttrap\tnumber\tdate\ttype\turgency\tsigner"]
    for doc in docs:
        name = filename(doc) if doc.fmt != "body" else f"van-ban-{doc.id}.txt"
        (directory / name).write_bytes(build(doc))
        t = doc.truth
        rows.append(
            "\t".join(
                (
                    doc.id,
                    doc.fmt,
                    doc.expect,
                    doc.position,
                    doc.form,
                    doc.trap,
                    t.number,
                    t.issued.isoformat(),
                    t.doc_type,
                    t.urgency,
                    t.signer,
                )
            )
        )
    (directory / "truth.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def zip_corpus(docs: list[Doc]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for doc in docs:
            zf.writestr(filename(doc), build(doc))
    return out.getvalue()
