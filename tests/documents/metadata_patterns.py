"""What published documents do that a tidy template does not: one labelled case per variant.

Nine patterns seen when real, published Vietnamese documents are read through a PDF text
layer or copied from a legal database (the documents themselves stay outside the repository;
these texts were written from the description of each pattern). Each case gives the text as
the text layer gives it (two-column header merged on one line or interleaved, lines wrapped)
and the fields a clerk would enter in the register. ``tests/documents/test_metadata_patterns.py``
checks every field of every case; ``bench/metadata_accuracy.py`` prints per-field accuracy per
pattern.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

#: Fields checked per case (what the register records from the document's text).
FIELDS: tuple[str, ...] = (
    "issuing_agency",
    "parent_agency",
    "number_notation",
    "issued_date",
    "issued_place",
    "doc_type",
    "abstract",
    "signer",
    "signer_title",
)

PATTERNS: dict[str, str] = {
    "place-line": "place never reaches back across a line break or a full stop",
    "abstract-dates": "dates inside the abstract stay in it",
    "agency-keyword": "agency names with an inner keyword (TỔNG CỤC) stay whole",
    "place-names": "hyphenated and multi-word place names",
    "signature": "signature blocks as published (glued, wrapped, no title, KT/, Đã ký)",
    "abstract-forms": "V/v on its own line, VỀ VIỆC without heading, long abstracts",
    "draft": "drafts: blank number and date, DỰ THẢO stamp",
    "text-damage": "lost hyphen in the notation, mangled motto, detached marks",
    "glued": "the whole document on one line",
}


@dataclass(frozen=True)
class PatternCase:
    category: str
    name: str
    text: str
    expected: dict[str, Any]
    held_out: bool = False  # written after the rules, scored once before any change


def _fields(
    agency: str,
    parent: str,
    number: str,
    issued: str | None,
    place: str,
    doc_type: str,
    abstract: str,
    signer: str = "",
    title: str = "",
) -> dict[str, Any]:
    return {
        "issuing_agency": agency,
        "parent_agency": parent,
        "number_notation": number,
        "issued_date": issued,
        "issued_place": place,
        "doc_type": doc_type,
        "abstract": abstract,
        "signer": signer,
        "signer_title": title,
    }


def _detached(text: str) -> str:
    """Decomposed text whose dot-below and hook marks come after a space ("Nô ̣i vu ̣")."""
    return re.sub("([\u0323\u0309])", " \\1", unicodedata.normalize("NFD", text))


CASES: tuple[PatternCase, ...] = (
    # ------------------------------------------------------------ 1. place-line
    PatternCase(
        "place-line",
        "cv-bng-lb-nga",
        """BỘ NGOẠI GIAO CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 2145/BNG-ĐBA
V/v tổ chức kỷ niệm 30 năm quan hệ hợp tác với LB Nga
Hà Nội, ngày 14 tháng 6 năm 2021
Kính gửi: Ủy ban nhân dân các tỉnh, thành phố trực thuộc Trung ương
Bộ Ngoại giao đề nghị các địa phương phối hợp tổ chức các hoạt động kỷ niệm.
Nơi nhận: KT. BỘ TRƯỞNG
- Như trên; THỨ TRƯỞNG
- Lưu: HC, ĐBA.
Đặng Minh Khôi
""",
        _fields(
            "BỘ NGOẠI GIAO",
            "",
            "2145/BNG-ĐBA",
            "2021-06-14",
            "Hà Nội",
            "Công văn",
            "V/v tổ chức kỷ niệm 30 năm quan hệ hợp tác với LB Nga",
            "Đặng Minh Khôi",
            "KT. BỘ TRƯỞNG THỨ TRƯỞNG",
        ),
    ),
    PatternCase(
        "place-line",
        "cv-bca-viet-nam-fullstop",
        """BỘ CÔNG AN
CỤC QUẢN LÝ XUẤT NHẬP CẢNH
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 1187/QLXNC-P4
V/v hướng dẫn thủ tục cấp thị thực cho người nước ngoài nhập cảnh Việt Nam.
Hà Nội, ngày 03 tháng 4 năm 2023
Kính gửi: Công an các tỉnh, thành phố trực thuộc Trung ương
Cục Quản lý xuất nhập cảnh hướng dẫn như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, P4.
CỤC TRƯỞNG
Phạm Đăng Khoa
""",
        _fields(
            "CỤC QUẢN LÝ XUẤT NHẬP CẢNH",
            "BỘ CÔNG AN",
            "1187/QLXNC-P4",
            "2023-04-03",
            "Hà Nội",
            "Công văn",
            "V/v hướng dẫn thủ tục cấp thị thực cho người nước ngoài nhập cảnh Việt Nam.",
            "Phạm Đăng Khoa",
            "CỤC TRƯỞNG",
        ),
    ),
    PatternCase(
        "place-line",
        "cv-ubnd-same-province",
        """UBND TỈNH BÌNH PHƯỚC CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ NÔNG NGHIỆP VÀ PTNT Độc lập - Tự do - Hạnh phúc
Số: 356/SNN-KL
V/v phòng cháy, chữa cháy rừng mùa khô trên địa bàn tỉnh Bình Phước
Bình Phước, ngày 09 tháng 01 năm 2020
Kính gửi: Ủy ban nhân dân các huyện, thị xã, thành phố
Sở Nông nghiệp và PTNT đề nghị các địa phương triển khai ngay các biện pháp.
Nơi nhận: KT. GIÁM ĐỐC
- Như trên; PHÓ GIÁM ĐỐC
- Lưu: VT, KL.
Trần Văn Lượng
""",
        _fields(
            "SỞ NÔNG NGHIỆP VÀ PTNT",
            "UBND TỈNH BÌNH PHƯỚC",
            "356/SNN-KL",
            "2020-01-09",
            "Bình Phước",
            "Công văn",
            "V/v phòng cháy, chữa cháy rừng mùa khô trên địa bàn tỉnh Bình Phước",
            "Trần Văn Lượng",
            "KT. GIÁM ĐỐC PHÓ GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "place-line",
        "cv-party-wrapped-vv",
        """TỈNH ỦY ĐỒNG THÁP
BAN TUYÊN GIÁO
*
Số 412-CV/BTGTU
V/v tuyên truyền kỷ niệm 90 năm Ngày truyền thống ngành Tuyên giáo
của Đảng Cộng sản Việt Nam
Đồng Tháp, ngày 20 tháng 7 năm 2020
ĐẢNG CỘNG SẢN VIỆT NAM
Kính gửi: Các huyện ủy, thành ủy, đảng ủy trực thuộc Tỉnh ủy
Ban Tuyên giáo Tỉnh ủy hướng dẫn tuyên truyền như sau.
Nơi nhận:
- Như trên,
- Lưu Văn phòng.
K/T TRƯỞNG BAN
PHÓ TRƯỞNG BAN
Lê Thị Thu Hà
""",
        _fields(
            "BAN TUYÊN GIÁO",
            "TỈNH ỦY ĐỒNG THÁP",
            "412-CV/BTGTU",
            "2020-07-20",
            "Đồng Tháp",
            "Công văn",
            "V/v tuyên truyền kỷ niệm 90 năm Ngày truyền thống ngành Tuyên giáo của Đảng "
            "Cộng sản Việt Nam",
            "Lê Thị Thu Hà",
            "K/T TRƯỞNG BAN PHÓ TRƯỞNG BAN",
        ),
    ),
    # ------------------------------------------------------------ 2. abstract-dates
    PatternCase(
        "abstract-dates",
        "cv-chi-thi-date",
        """UBND TỈNH QUẢNG NAM CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ GIÁO DỤC VÀ ĐÀO TẠO Độc lập - Tự do - Hạnh phúc
Số: 1402/SGDĐT-VP Quảng Nam, ngày 15 tháng 8 năm 2012
V/v tiếp tục thực hiện Chỉ thị số 1971/CT-TTg ngày 7/11/2011 của Thủ tướng Chính phủ
Kính gửi: Các trường trung học phổ thông trong tỉnh
Sở Giáo dục và Đào tạo đề nghị các đơn vị tiếp tục thực hiện.
Nơi nhận:
- Như trên;
- Lưu: VT.
GIÁM ĐỐC
Lê Văn Hai
""",
        _fields(
            "SỞ GIÁO DỤC VÀ ĐÀO TẠO",
            "UBND TỈNH QUẢNG NAM",
            "1402/SGDĐT-VP",
            "2012-08-15",
            "Quảng Nam",
            "Công văn",
            "V/v tiếp tục thực hiện Chỉ thị số 1971/CT-TTg ngày 7/11/2011 của Thủ tướng Chính phủ",
            "Lê Văn Hai",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "abstract-dates",
        "cv-wrapped-date-line",
        """BỘ NỘI VỤ
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 4318/BNV-VP
V/v góp ý dự thảo Thông tư thay thế Thông tư số 01/2011/TT-BNV
ngày 19 tháng 01 năm 2011 của Bộ Nội vụ
Hà Nội, ngày 25 tháng 8 năm 2019
Kính gửi: Các bộ, cơ quan ngang bộ, cơ quan thuộc Chính phủ
Bộ Nội vụ đề nghị góp ý trước ngày 15/9/2019.
Nơi nhận:
- Như trên;
- Lưu: VT, VP.
KT. BỘ TRƯỞNG
THỨ TRƯỞNG
Nguyễn Trọng Thừa
""",
        _fields(
            "BỘ NỘI VỤ",
            "",
            "4318/BNV-VP",
            "2019-08-25",
            "Hà Nội",
            "Công văn",
            "V/v góp ý dự thảo Thông tư thay thế Thông tư số 01/2011/TT-BNV ngày 19 tháng "
            "01 năm 2011 của Bộ Nội vụ",
            "Nguyễn Trọng Thừa",
            "KT. BỘ TRƯỞNG THỨ TRƯỞNG",
        ),
    ),
    PatternCase(
        "abstract-dates",
        "qd-amends-with-date",
        """ỦY BAN NHÂN DÂN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
TỈNH ĐẮK NÔNG Độc lập - Tự do - Hạnh phúc
Số: 07/2020/QĐ-UBND Đắk Nông, ngày 10 tháng 4 năm 2020
QUYẾT ĐỊNH
Sửa đổi, bổ sung một số điều của Quy chế ban hành kèm theo Quyết định
số 35/2018/QĐ-UBND ngày 05 tháng 12 năm 2018 của UBND tỉnh Đắk Nông
ỦY BAN NHÂN DÂN TỈNH ĐẮK NÔNG
Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;
QUYẾT ĐỊNH:
Điều 1. Sửa đổi Điều 5 của Quy chế.
Nơi nhận: TM. ỦY BAN NHÂN DÂN
- Như Điều 3; KT. CHỦ TỊCH
- Lưu: VT. PHÓ CHỦ TỊCH
Tôn Thị Ngọc Hạnh
""",
        _fields(
            "ỦY BAN NHÂN DÂN TỈNH ĐẮK NÔNG",
            "",
            "07/2020/QĐ-UBND",
            "2020-04-10",
            "Đắk Nông",
            "Quyết định",
            "Sửa đổi, bổ sung một số điều của Quy chế ban hành kèm theo Quyết định số "
            "35/2018/QĐ-UBND ngày 05 tháng 12 năm 2018 của UBND tỉnh Đắk Nông",
            "Tôn Thị Ngọc Hạnh",
            "TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH PHÓ CHỦ TỊCH",
        ),
    ),
    PatternCase(
        "abstract-dates",
        "cv-party-conclusion-date-merged",
        """TỈNH ỦY HÀ TĨNH ĐẢNG CỘNG SẢN VIỆT NAM
VĂN PHÒNG
*
Số 1733-CV/VPTU
V/v thực hiện Kết luận số 12-KL/TW ngày 06/01/2022 Hà Tĩnh, ngày 10 tháng 3 năm 2022
của Bộ Chính trị
Kính gửi: Các đồng chí Ủy viên Ban Thường vụ Tỉnh ủy
Văn phòng Tỉnh ủy thông báo như sau.
Nơi nhận:
- Như trên,
- Lưu Văn phòng Tỉnh ủy.
K/T CHÁNH VĂN PHÒNG
PHÓ CHÁNH VĂN PHÒNG
Trần Tú Anh
""",
        _fields(
            "VĂN PHÒNG",
            "TỈNH ỦY HÀ TĨNH",
            "1733-CV/VPTU",
            "2022-03-10",
            "Hà Tĩnh",
            "Công văn",
            "V/v thực hiện Kết luận số 12-KL/TW ngày 06/01/2022 của Bộ Chính trị",
            "Trần Tú Anh",
            "K/T CHÁNH VĂN PHÒNG PHÓ CHÁNH VĂN PHÒNG",
        ),
    ),
    # ------------------------------------------------------------ 3. agency-keyword
    PatternCase(
        "agency-keyword",
        "cv-tong-cuc-thue-merged",
        """BỘ TÀI CHÍNH CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
TỔNG CỤC THUẾ Độc lập - Tự do - Hạnh phúc
------- ---------------
Số: 4562/TCT-CS Hà Nội, ngày 28 tháng 10 năm 2019
V/v chính sách thuế giá trị gia tăng
Kính gửi: Cục Thuế tỉnh Bình Dương.
Tổng cục Thuế nhận được công văn của Cục Thuế tỉnh Bình Dương.
Nơi nhận: KT. TỔNG CỤC TRƯỞNG
- Như trên; PHÓ TỔNG CỤC TRƯỞNG
- Lưu: VT, CS (3b).
Lưu Đức Huy
""",
        _fields(
            "TỔNG CỤC THUẾ",
            "BỘ TÀI CHÍNH",
            "4562/TCT-CS",
            "2019-10-28",
            "Hà Nội",
            "Công văn",
            "V/v chính sách thuế giá trị gia tăng",
            "Lưu Đức Huy",
            "KT. TỔNG CỤC TRƯỞNG PHÓ TỔNG CỤC TRƯỞNG",
        ),
    ),
    PatternCase(
        "agency-keyword",
        "cv-tong-cuc-hai-quan-interleaved",
        """BỘ TÀI CHÍNH
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
TỔNG CỤC HẢI QUAN
Độc lập - Tự do - Hạnh phúc
Số: 6125/TCHQ-GSQL
Hà Nội, ngày 17 tháng 9 năm 2018
V/v thủ tục hải quan đối với hàng hóa quá cảnh
Kính gửi: Cục Hải quan các tỉnh, thành phố.
Tổng cục Hải quan hướng dẫn như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, GSQL (3b).
TL. TỔNG CỤC TRƯỞNG
CỤC TRƯỞNG CỤC GIÁM SÁT QUẢN LÝ VỀ HẢI QUAN
Âu Anh Tuấn
""",
        _fields(
            "TỔNG CỤC HẢI QUAN",
            "BỘ TÀI CHÍNH",
            "6125/TCHQ-GSQL",
            "2018-09-17",
            "Hà Nội",
            "Công văn",
            "V/v thủ tục hải quan đối với hàng hóa quá cảnh",
            "Âu Anh Tuấn",
            "TL. TỔNG CỤC TRƯỞNG CỤC TRƯỞNG CỤC GIÁM SÁT QUẢN LÝ VỀ HẢI QUAN",
        ),
    ),
    PatternCase(
        "agency-keyword",
        "qd-tong-cuc-wide-columns",
        """BỘ NÔNG NGHIỆP                   CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
VÀ PHÁT TRIỂN NÔNG THÔN                 Độc lập - Tự do - Hạnh phúc
TỔNG CỤC THỦY LỢI
Số: 215/QĐ-TCTL-KHTC                    Hà Nội, ngày 05 tháng 5 năm 2016

                          QUYẾT ĐỊNH
        Về việc giao dự toán ngân sách nhà nước năm 2016

                  TỔNG CỤC TRƯỞNG TỔNG CỤC THỦY LỢI

Căn cứ Quyết định số 03/2014/QĐ-TTg của Thủ tướng Chính phủ;
QUYẾT ĐỊNH:
Điều 1. Giao dự toán ngân sách nhà nước năm 2016.
Nơi nhận:                               TỔNG CỤC TRƯỞNG
- Như Điều 3;
- Lưu: VT, KHTC.                        Nguyễn Văn Tỉnh
""",
        _fields(
            "TỔNG CỤC THỦY LỢI",
            "BỘ NÔNG NGHIỆP VÀ PHÁT TRIỂN NÔNG THÔN",
            "215/QĐ-TCTL-KHTC",
            "2016-05-05",
            "Hà Nội",
            "Quyết định",
            "Về việc giao dự toán ngân sách nhà nước năm 2016",
            "Nguyễn Văn Tỉnh",
            "TỔNG CỤC TRƯỞNG",
        ),
    ),
    PatternCase(
        "agency-keyword",
        "cv-cuc-under-tong-cuc",
        """TỔNG CỤC HẢI QUAN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
CỤC HẢI QUAN TỈNH QUẢNG NINH Độc lập - Tự do - Hạnh phúc
Số: 2876/HQQN-GSQL Quảng Ninh, ngày 12 tháng 11 năm 2021
V/v hướng dẫn thủ tục xuất khẩu hàng hóa qua cửa khẩu Móng Cái
Kính gửi: Các doanh nghiệp xuất nhập khẩu.
Cục Hải quan tỉnh Quảng Ninh hướng dẫn như sau.
Nơi nhận: KT. CỤC TRƯỞNG
- Như trên; PHÓ CỤC TRƯỞNG
- Lưu: VT, GSQL.
Nguyễn Văn Hùng
""",
        _fields(
            "CỤC HẢI QUAN TỈNH QUẢNG NINH",
            "TỔNG CỤC HẢI QUAN",
            "2876/HQQN-GSQL",
            "2021-11-12",
            "Quảng Ninh",
            "Công văn",
            "V/v hướng dẫn thủ tục xuất khẩu hàng hóa qua cửa khẩu Móng Cái",
            "Nguyễn Văn Hùng",
            "KT. CỤC TRƯỞNG PHÓ CỤC TRƯỞNG",
        ),
    ),
    # ------------------------------------------------------------ 4. place-names
    PatternCase(
        "place-names",
        "cv-phan-rang-thap-cham",
        """UBND TỈNH NINH THUẬN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ XÂY DỰNG Độc lập - Tự do - Hạnh phúc
Số: 2210/SXD-QLN Phan Rang-Tháp Chàm, ngày 18 tháng 6 năm 2021
V/v báo cáo tình hình thị trường bất động sản quý II năm 2021
Kính gửi: Ủy ban nhân dân tỉnh Ninh Thuận
Sở Xây dựng báo cáo như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, QLN.
GIÁM ĐỐC
Đỗ Minh Ngọc
""",
        _fields(
            "SỞ XÂY DỰNG",
            "UBND TỈNH NINH THUẬN",
            "2210/SXD-QLN",
            "2021-06-18",
            "Phan Rang-Tháp Chàm",
            "Công văn",
            "V/v báo cáo tình hình thị trường bất động sản quý II năm 2021",
            "Đỗ Minh Ngọc",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "place-names",
        "tb-ba-ria-vung-tau",
        """UBND TỈNH BÀ RỊA - VŨNG TÀU
VĂN PHÒNG
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 512/TB-VPUBND
Bà Rịa - Vũng Tàu, ngày 02 tháng 12 năm 2022
THÔNG BÁO
Kết luận của Chủ tịch UBND tỉnh tại cuộc họp về công tác chuyển đổi số
Ngày 28 tháng 11 năm 2022, Chủ tịch UBND tỉnh đã chủ trì cuộc họp.
Nơi nhận:
- Các sở, ngành;
- Lưu: VT, TH.
TL. CHÁNH VĂN PHÒNG
PHÓ CHÁNH VĂN PHÒNG
Trần Văn Tiến
""",
        _fields(
            "VĂN PHÒNG",
            "UBND TỈNH BÀ RỊA - VŨNG TÀU",
            "512/TB-VPUBND",
            "2022-12-02",
            "Bà Rịa - Vũng Tàu",
            "Thông báo",
            "Kết luận của Chủ tịch UBND tỉnh tại cuộc họp về công tác chuyển đổi số",
            "Trần Văn Tiến",
            "TL. CHÁNH VĂN PHÒNG PHÓ CHÁNH VĂN PHÒNG",
        ),
    ),
    PatternCase(
        "place-names",
        "kh-thanh-pho-ho-chi-minh",
        """ỦY BAN NHÂN DÂN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
THÀNH PHỐ HỒ CHÍ MINH Độc lập - Tự do - Hạnh phúc
Số: 1893/KH-UBND Thành phố Hồ Chí Minh, ngày 30 tháng 5 năm 2023
KẾ HOẠCH
Triển khai Đề án phát triển ứng dụng dữ liệu về dân cư trên địa bàn Thành phố
I. MỤC ĐÍCH, YÊU CẦU
1. Triển khai đồng bộ các nhiệm vụ của Đề án.
Nơi nhận: TM. ỦY BAN NHÂN DÂN
- Bộ Công an; KT. CHỦ TỊCH
- Lưu: VT. PHÓ CHỦ TỊCH
Dương Anh Đức
""",
        _fields(
            "ỦY BAN NHÂN DÂN THÀNH PHỐ HỒ CHÍ MINH",
            "",
            "1893/KH-UBND",
            "2023-05-30",
            "Thành phố Hồ Chí Minh",
            "Kế hoạch",
            "Triển khai Đề án phát triển ứng dụng dữ liệu về dân cư trên địa bàn Thành phố",
            "Dương Anh Đức",
            "TM. ỦY BAN NHÂN DÂN KT. CHỦ TỊCH PHÓ CHỦ TỊCH",
        ),
    ),
    PatternCase(
        "place-names",
        "qd-dak-rlap",
        """UBND HUYỆN ĐẮK R'LẤP CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 845/QĐ-UBND Đắk R'Lấp, ngày 21 tháng 3 năm 2022
QUYẾT ĐỊNH
Về việc thành lập Ban Chỉ đạo chuyển đổi số huyện Đắk R'Lấp
CHỦ TỊCH ỦY BAN NHÂN DÂN HUYỆN
Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;
QUYẾT ĐỊNH:
Điều 1. Thành lập Ban Chỉ đạo.
Nơi nhận: CHỦ TỊCH
- Như Điều 3;
- Lưu: VT. Y Quang Bkrông
""",
        _fields(
            "UBND HUYỆN ĐẮK R'LẤP",
            "",
            "845/QĐ-UBND",
            "2022-03-21",
            "Đắk R'Lấp",
            "Quyết định",
            "Về việc thành lập Ban Chỉ đạo chuyển đổi số huyện Đắk R'Lấp",
            "Y Quang Bkrông",
            "CHỦ TỊCH",
        ),
    ),
    # ------------------------------------------------------------ 5. signature
    PatternCase(
        "signature",
        "cv-title-glued-to-name",
        """UBND TỈNH NGHỆ AN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
VĂN PHÒNG Độc lập - Tự do - Hạnh phúc
Số: 5320/VP-TH Nghệ An, ngày 21 tháng 7 năm 2017
V/v triển khai hệ thống thư điện tử công vụ
Kính gửi: Các sở, ban, ngành cấp tỉnh
Văn phòng UBND tỉnh đề nghị các đơn vị triển khai.
Nơi nhận:
- Như trên;
- Lưu: VT, TH.
CHÁNH VĂN PHÒNGThái Hữu Phép
""",
        _fields(
            "VĂN PHÒNG",
            "UBND TỈNH NGHỆ AN",
            "5320/VP-TH",
            "2017-07-21",
            "Nghệ An",
            "Công văn",
            "V/v triển khai hệ thống thư điện tử công vụ",
            "Thái Hữu Phép",
            "CHÁNH VĂN PHÒNG",
        ),
    ),
    PatternCase(
        "signature",
        "qd-name-wrapped",
        """UBND TỈNH THÁI BÌNH
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ Y TẾ
Độc lập - Tự do - Hạnh phúc
Số: 1120/QĐ-SYT
Thái Bình, ngày 14 tháng 10 năm 2020
QUYẾT ĐỊNH
Về việc kiện toàn Hội đồng thuốc và điều trị
GIÁM ĐỐC SỞ Y TẾ
Căn cứ Quyết định số 24/2016/QĐ-UBND của UBND tỉnh;
QUYẾT ĐỊNH:
Điều 1. Kiện toàn Hội đồng.
Nơi nhận: KT. GIÁM ĐỐC
- Như Điều 3; PHÓ GIÁM ĐỐC
- Lưu: VT, NVY.
Nguyễn Khắc
Định
""",
        _fields(
            "SỞ Y TẾ",
            "UBND TỈNH THÁI BÌNH",
            "1120/QĐ-SYT",
            "2020-10-14",
            "Thái Bình",
            "Quyết định",
            "Về việc kiện toàn Hội đồng thuốc và điều trị",
            "Nguyễn Khắc Định",
            "KT. GIÁM ĐỐC PHÓ GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "signature",
        "ct-party-no-title-da-ky",
        """BAN CHẤP HÀNH TRUNG ƯƠNG ĐẢNG CỘNG SẢN VIỆT NAM
*
Số 25-CT/TW Hà Nội, ngày 12 tháng 8 năm 1982
CHỈ THỊ
Về công tác văn hóa văn nghệ trong tình hình mới
Trong những năm qua, công tác văn hóa văn nghệ đã đạt được nhiều kết quả.
Các cấp ủy đảng có trách nhiệm thực hiện Chỉ thị này.
Tố Hữu (Đã ký)
""",
        _fields(
            "BAN CHẤP HÀNH TRUNG ƯƠNG",
            "",
            "25-CT/TW",
            "1982-08-12",
            "Hà Nội",
            "Chỉ thị",
            "Về công tác văn hóa văn nghệ trong tình hình mới",
            "Tố Hữu",
            "",
        ),
    ),
    PatternCase(
        "signature",
        "qd-kt-slash-no-recipients",
        """BỘ GIÁO DỤC VÀ ĐÀO TẠO CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 3012/QĐ-BGDĐT Hà Nội, ngày 08 tháng 9 năm 2015
QUYẾT ĐỊNH
Về việc ban hành Kế hoạch ứng dụng công nghệ thông tin năm học 2015-2016
BỘ TRƯỞNG BỘ GIÁO DỤC VÀ ĐÀO TẠO
Căn cứ Nghị định số 32/2008/NĐ-CP ngày 19 tháng 3 năm 2008 của Chính phủ;
QUYẾT ĐỊNH:
Điều 1. Ban hành kèm theo Quyết định này Kế hoạch.
Điều 2. Quyết định này có hiệu lực kể từ ngày ký./.
KT/ BỘ TRƯỞNG
THỨ TRƯỞNG
(đã ký)
Nguyễn Vinh Hiển
""",
        _fields(
            "BỘ GIÁO DỤC VÀ ĐÀO TẠO",
            "",
            "3012/QĐ-BGDĐT",
            "2015-09-08",
            "Hà Nội",
            "Quyết định",
            "Về việc ban hành Kế hoạch ứng dụng công nghệ thông tin năm học 2015-2016",
            "Nguyễn Vinh Hiển",
            "KT/ BỘ TRƯỞNG THỨ TRƯỞNG",
        ),
    ),
    PatternCase(
        "signature",
        "nq-tm-spaced-da-ky-merged",
        """HỘI ĐỒNG NHÂN DÂN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
TỈNH LÀO CAI Độc lập - Tự do - Hạnh phúc
Số: 18/2019/NQ-HĐND Lào Cai, ngày 06 tháng 12 năm 2019
NGHỊ QUYẾT
Quy định mức chi hỗ trợ công tác chuyển đổi số trên địa bàn tỉnh Lào Cai
HỘI ĐỒNG NHÂN DÂN TỈNH LÀO CAI
KHÓA XV - KỲ HỌP THỨ MƯỜI HAI
Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;
QUYẾT NGHỊ:
Điều 1. Quy định mức chi hỗ trợ.
Nghị quyết này đã được Hội đồng nhân dân tỉnh thông qua ngày 06 tháng 12 năm 2019./.
T.M HỘI ĐỒNG NHÂN DÂN
CHỦ TỊCH
Đã ký
Nguyễn Văn Vịnh
""",
        _fields(
            "HỘI ĐỒNG NHÂN DÂN TỈNH LÀO CAI",
            "",
            "18/2019/NQ-HĐND",
            "2019-12-06",
            "Lào Cai",
            "Nghị quyết",
            "Quy định mức chi hỗ trợ công tác chuyển đổi số trên địa bàn tỉnh Lào Cai",
            "Nguyễn Văn Vịnh",
            "T.M HỘI ĐỒNG NHÂN DÂN CHỦ TỊCH",
        ),
    ),
    PatternCase(
        "signature",
        "tb-name-with-marker-same-line",
        """HUYỆN ỦY ĐỨC TRỌNG ĐẢNG CỘNG SẢN VIỆT NAM
*
Số 215-TB/HU Đức Trọng, ngày 04 tháng 3 năm 2016
THÔNG BÁO
Kết luận của Ban Thường vụ Huyện ủy về công tác cán bộ
Ngày 02 tháng 3 năm 2016, Ban Thường vụ Huyện ủy đã họp.
Nơi nhận:
- Các chi, đảng bộ cơ sở,
- Lưu Văn phòng Huyện ủy.
T/M BAN THƯỜNG VỤ
BÍ THƯ
Trần Văn Nghĩa (đã ký)
""",
        _fields(
            "HUYỆN ỦY ĐỨC TRỌNG",
            "",
            "215-TB/HU",
            "2016-03-04",
            "Đức Trọng",
            "Thông báo",
            "Kết luận của Ban Thường vụ Huyện ủy về công tác cán bộ",
            "Trần Văn Nghĩa",
            "T/M BAN THƯỜNG VỤ BÍ THƯ",
        ),
    ),
    # ------------------------------------------------------------ 6. abstract-forms
    PatternCase(
        "abstract-forms",
        "cv-vv-alone-colon-next",
        """UBND TỈNH KON TUM CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ NỘI VỤ Độc lập - Tự do - Hạnh phúc
Số: 1456/SNV-VTLT Kon Tum, ngày 12 tháng 9 năm 2018
V/v
: tăng cường công tác quản lý văn bản đi, đến trên môi trường mạng
Kính gửi: Các sở, ban, ngành thuộc tỉnh
Sở Nội vụ đề nghị các đơn vị thực hiện.
Nơi nhận:
- Như trên;
- Lưu: VT, VTLT.
GIÁM ĐỐC
Y Ngọc
""",
        _fields(
            "SỞ NỘI VỤ",
            "UBND TỈNH KON TUM",
            "1456/SNV-VTLT",
            "2018-09-12",
            "Kon Tum",
            "Công văn",
            "V/v tăng cường công tác quản lý văn bản đi, đến trên môi trường mạng",
            "Y Ngọc",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "abstract-forms",
        "qd-ve-viec-no-heading",
        """HỘI ĐỒNG BỘ TRƯỞNG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 186/QĐ-HĐBT Hà Nội, ngày 22 tháng 11 năm 1982
VỀ VIỆC THÀNH LẬP CỤC LƯU TRỮ NHÀ NƯỚC
CHỦ TỊCH HỘI ĐỒNG BỘ TRƯỞNG
Căn cứ Luật tổ chức Hội đồng Bộ trưởng ngày 4 tháng 7 năm 1981;
QUYẾT ĐỊNH:
Điều 1. Thành lập Cục Lưu trữ Nhà nước trực thuộc Hội đồng Bộ trưởng.
KT. CHỦ TỊCH HỘI ĐỒNG BỘ TRƯỞNG
PHÓ CHỦ TỊCH
Tố Hữu
""",
        _fields(
            "HỘI ĐỒNG BỘ TRƯỞNG",
            "",
            "186/QĐ-HĐBT",
            "1982-11-22",
            "Hà Nội",
            "Quyết định",
            "VỀ VIỆC THÀNH LẬP CỤC LƯU TRỮ NHÀ NƯỚC",
            "Tố Hữu",
            "KT. CHỦ TỊCH HỘI ĐỒNG BỘ TRƯỞNG PHÓ CHỦ TỊCH",
        ),
    ),
    PatternCase(
        "abstract-forms",
        "cv-ve-viec-mixed-case-no-vv",
        """UBND THÀNH PHỐ ĐÀ NẴNG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ THÔNG TIN VÀ TRUYỀN THÔNG Độc lập - Tự do - Hạnh phúc
Số: 2211/STTTT-BCVT Đà Nẵng, ngày 06 tháng 10 năm 2020
Về việc đề nghị cung cấp thông tin
phục vụ xây dựng cơ sở dữ liệu bưu chính
Kính gửi: Các doanh nghiệp bưu chính trên địa bàn thành phố
Sở Thông tin và Truyền thông đề nghị các doanh nghiệp cung cấp thông tin.
Nơi nhận:
- Như trên;
- Lưu: VT, BCVT.
GIÁM ĐỐC
Trần Ngọc Thạch
""",
        _fields(
            "SỞ THÔNG TIN VÀ TRUYỀN THÔNG",
            "UBND THÀNH PHỐ ĐÀ NẴNG",
            "2211/STTTT-BCVT",
            "2020-10-06",
            "Đà Nẵng",
            "Công văn",
            "Về việc đề nghị cung cấp thông tin phục vụ xây dựng cơ sở dữ liệu bưu chính",
            "Trần Ngọc Thạch",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "abstract-forms",
        "kh-long-abstract-until-can-cu",
        """TỈNH ỦY LÂM ĐỒNG ĐẢNG CỘNG SẢN VIỆT NAM
*
Số 87-KH/TU Lâm Đồng, ngày 15 tháng 4 năm 2021
KẾ HOẠCH
Triển khai thực hiện Nghị quyết số 05-NQ/TU
ngày 12/3/2021 của Ban Chấp hành Đảng bộ tỉnh
Về phát triển kinh tế số tỉnh Lâm Đồng
Giai đoạn 2021-2025, định hướng đến năm 2030
Căn cứ Nghị quyết số 05-NQ/TU ngày 12/3/2021 của Ban Chấp hành Đảng bộ tỉnh,
Ban Thường vụ Tỉnh ủy xây dựng kế hoạch thực hiện như sau:
I. MỤC ĐÍCH, YÊU CẦU
Nơi nhận:
- Các huyện ủy, thành ủy,
- Lưu Văn phòng Tỉnh ủy.
T/M BAN THƯỜNG VỤ
PHÓ BÍ THƯ THƯỜNG TRỰC
Trần Đức Quận
""",
        _fields(
            "TỈNH ỦY LÂM ĐỒNG",
            "",
            "87-KH/TU",
            "2021-04-15",
            "Lâm Đồng",
            "Kế hoạch",
            "Triển khai thực hiện Nghị quyết số 05-NQ/TU ngày 12/3/2021 của Ban Chấp hành "
            "Đảng bộ tỉnh Về phát triển kinh tế số tỉnh Lâm Đồng Giai đoạn 2021-2025, định "
            "hướng đến năm 2030",
            "Trần Đức Quận",
            "T/M BAN THƯỜNG VỤ PHÓ BÍ THƯ THƯỜNG TRỰC",
        ),
    ),
    PatternCase(
        "abstract-forms",
        "bc-long-abstract-until-kinh-gui",
        """UBND HUYỆN CẦN GIỜ CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
PHÒNG NỘI VỤ Độc lập - Tự do - Hạnh phúc
Số: 96/BC-PNV Cần Giờ, ngày 30 tháng 6 năm 2022
BÁO CÁO
Kết quả thực hiện công tác cải cách hành chính
Sáu tháng đầu năm 2022
Phương hướng, nhiệm vụ sáu tháng cuối năm 2022
Kính gửi: Ủy ban nhân dân huyện Cần Giờ
Phòng Nội vụ báo cáo kết quả như sau:
Nơi nhận:
- Như trên;
- Lưu: VT.
TRƯỞNG PHÒNG
Lê Thị Kim Loan
""",
        _fields(
            "PHÒNG NỘI VỤ",
            "UBND HUYỆN CẦN GIỜ",
            "96/BC-PNV",
            "2022-06-30",
            "Cần Giờ",
            "Báo cáo",
            "Kết quả thực hiện công tác cải cách hành chính Sáu tháng đầu năm 2022 "
            "Phương hướng, nhiệm vụ sáu tháng cuối năm 2022",
            "Lê Thị Kim Loan",
            "TRƯỞNG PHÒNG",
        ),
    ),
    # ------------------------------------------------------------ 7. draft
    PatternCase(
        "draft",
        "ttr-vpcp-draft",
        """VĂN PHÒNG CHÍNH PHỦ CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
DỰ THẢO
Số: /TTr-VPCP Hà Nội, ngày tháng năm 2024
TỜ TRÌNH
Dự thảo Nghị định về quản lý, kết nối và chia sẻ dữ liệu số
Kính gửi: Chính phủ
Văn phòng Chính phủ kính trình Chính phủ dự thảo Nghị định.
Nơi nhận:
- Như trên;
- Lưu: VT, KSTT.
BỘ TRƯỞNG, CHỦ NHIỆM
""",
        _fields(
            "VĂN PHÒNG CHÍNH PHỦ",
            "",
            "",
            None,
            "Hà Nội",
            "Tờ trình",
            "Dự thảo Nghị định về quản lý, kết nối và chia sẻ dữ liệu số",
        ),
    ),
    PatternCase(
        "draft",
        "qd-draft-stamp-top-dotted",
        """DỰ THẢO 2
UBND TỈNH BẮC GIANG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: ......./2023/QĐ-UBND Bắc Giang, ngày ...... tháng ...... năm 2023
QUYẾT ĐỊNH
Ban hành Quy chế quản lý, sử dụng chữ ký số chuyên dùng trên địa bàn tỉnh Bắc Giang
ỦY BAN NHÂN DÂN TỈNH BẮC GIANG
Căn cứ Luật Giao dịch điện tử ngày 29 tháng 11 năm 2005;
QUYẾT ĐỊNH:
Điều 1. Ban hành kèm theo Quyết định này Quy chế.
""",
        _fields(
            "UBND TỈNH BẮC GIANG",
            "",
            "",
            None,
            "Bắc Giang",
            "Quyết định",
            "Ban hành Quy chế quản lý, sử dụng chữ ký số chuyên dùng trên địa bàn tỉnh Bắc Giang",
        ),
    ),
    PatternCase(
        "draft",
        "bc-draft-interleaved",
        """UBND TỈNH HÀ GIANG
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ TÀI CHÍNH
Độc lập - Tự do - Hạnh phúc
Số:       /BC-STC
Hà Giang, ngày    tháng    năm 2022
(DỰ THẢO)
BÁO CÁO
Tình hình thực hiện dự toán ngân sách năm 2022
Thực hiện chỉ đạo của UBND tỉnh, Sở Tài chính báo cáo như sau:
""",
        _fields(
            "SỞ TÀI CHÍNH",
            "UBND TỈNH HÀ GIANG",
            "",
            None,
            "Hà Giang",
            "Báo cáo",
            "Tình hình thực hiện dự toán ngân sách năm 2022",
        ),
    ),
    PatternCase(
        "draft",
        "nq-party-draft-ellipsis",
        """ĐẢNG BỘ TỈNH KHÁNH HÒA ĐẢNG CỘNG SẢN VIỆT NAM
TỈNH ỦY Dự thảo lần 3
*
Số …-NQ/TU Khánh Hòa, ngày … tháng … năm 2024
NGHỊ QUYẾT
Về chuyển đổi số tỉnh Khánh Hòa đến năm 2030
Thực hiện Nghị quyết số 52-NQ/TW của Bộ Chính trị, Ban Thường vụ Tỉnh ủy quyết nghị:
""",
        _fields(
            "TỈNH ỦY",
            "ĐẢNG BỘ TỈNH KHÁNH HÒA",
            "",
            None,
            "Khánh Hòa",
            "Nghị quyết",
            "Về chuyển đổi số tỉnh Khánh Hòa đến năm 2030",
        ),
    ),
    # ------------------------------------------------------------ 8. text-damage
    PatternCase(
        "text-damage",
        "qd-lost-hyphen-motto-mangled",
        """ỦY BAN NHÂN DÂN CỘNG HOÀ XàHỘI CHỦ NGHĨA VIỆT NAM
TỈNH QUẢNG NGÃI Độc lập - Tự do - Hạnh phúc
Số: 1961/QĐUBND Quảng Ngãi, ngày 29 tháng 12 năm 2016
QUYẾT ĐỊNH
Về việc công bố danh mục thủ tục hành chính
CHỦ TỊCH ỦY BAN NHÂN DÂN TỈNH
Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;
QUYẾT ĐỊNH:
Điều 1. Công bố kèm theo Quyết định này danh mục.
Nơi nhận: KT. CHỦ TỊCH
- Như Điều 3; PHÓ CHỦ TỊCH
- Lưu: VT, NC.
Đặng Ngọc Dũng
""",
        _fields(
            "ỦY BAN NHÂN DÂN TỈNH QUẢNG NGÃI",
            "",
            "1961/QĐ-UBND",
            "2016-12-29",
            "Quảng Ngãi",
            "Quyết định",
            "Về việc công bố danh mục thủ tục hành chính",
            "Đặng Ngọc Dũng",
            "KT. CHỦ TỊCH PHÓ CHỦ TỊCH",
        ),
    ),
    PatternCase(
        "text-damage",
        "kh-lost-hyphen-interleaved-motto",
        """UBND TỈNH GIA LAI
CỘNG HOÀ XàHỘI CHỦNGHĨA VIỆT NAM
SỞ THÔNG TIN VÀ TRUYỀN THÔNG
Độc lập- Tự do -Hạnh phúc
Số: 45/KHSTTTT
Gia Lai, ngày 11 tháng 02 năm 2021
KẾ HOẠCH
Ứng dụng công nghệ thông tin, chuyển đổi số năm 2021
I. MỤC TIÊU
Nơi nhận:
- UBND tỉnh (b/c);
- Lưu: VT.
GIÁM ĐỐC
Nguyễn Hữu Quế
""",
        _fields(
            "SỞ THÔNG TIN VÀ TRUYỀN THÔNG",
            "UBND TỈNH GIA LAI",
            "45/KH-STTTT",
            "2021-02-11",
            "Gia Lai",
            "Kế hoạch",
            "Ứng dụng công nghệ thông tin, chuyển đổi số năm 2021",
            "Nguyễn Hữu Quế",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "text-damage",
        "cv-detached-marks",
        _detached(
            """UBND TỈNH ĐẮK LẮK CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ NỘI VỤ Độc lập - Tự do - Hạnh phúc
Số: 1150/SNV-VTLT Đắk Lắk, ngày 02 tháng 6 năm 2020
V/v hướng dẫn lập hồ sơ và nộp lưu hồ sơ điện tử vào Lưu trữ cơ quan
Kính gửi: Các cơ quan, đơn vị thuộc tỉnh
Sở Nội vụ hướng dẫn như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, VTLT.
GIÁM ĐỐC
Nguyễn Hồng Thái
"""
        ),
        _fields(
            "SỞ NỘI VỤ",
            "UBND TỈNH ĐẮK LẮK",
            "1150/SNV-VTLT",
            "2020-06-02",
            "Đắk Lắk",
            "Công văn",
            "V/v hướng dẫn lập hồ sơ và nộp lưu hồ sơ điện tử vào Lưu trữ cơ quan",
            "Nguyễn Hồng Thái",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "text-damage",
        "tb-party-number-hyphen-lost",
        """HUYỆN ỦY BẢO LÂM ĐẢNG CỘNG SẢN VIỆT NAM
*
Số 305TB/HU Bảo Lâm, ngày 17 tháng 5 năm 2019
THÔNG BÁO
Ý kiến của Thường trực Huyện ủy về công tác tuyển quân năm 2020
Ngày 15 tháng 5 năm 2019, Thường trực Huyện ủy đã nghe báo cáo.
Nơi nhận:
- Lưu Văn phòng Huyện ủy.
T/L BAN THƯỜNG VỤ
CHÁNH VĂN PHÒNG
Nguyễn Thị Bích
""",
        _fields(
            "HUYỆN ỦY BẢO LÂM",
            "",
            "305-TB/HU",
            "2019-05-17",
            "Bảo Lâm",
            "Thông báo",
            "Ý kiến của Thường trực Huyện ủy về công tác tuyển quân năm 2020",
            "Nguyễn Thị Bích",
            "T/L BAN THƯỜNG VỤ CHÁNH VĂN PHÒNG",
        ),
    ),
    # ------------------------------------------------------------ 9. glued
    PatternCase(
        "glued",
        "cv-one-line",
        "UBND TỈNH ĐẮK NÔNG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM SỞ NỘI VỤ Độc lập - Tự do - "
        "Hạnh phúc Số: 1875/SNV-VTLT Đắk Nông, ngày 12 tháng 10 năm 2021 V/v thực hiện kiểm "
        "tra hộp thư công vụ 4 lần mỗi ngày làm việc Kính gửi: Các sở, ban, ngành; UBND các "
        "huyện, thành phố Thực hiện Quy chế của UBND tỉnh, Sở Nội vụ đề nghị các cơ quan kiểm "
        "tra hộp thư công vụ. Kết quả gửi về Sở Nội vụ trước ngày 29/10/2021. Nơi nhận: - Như "
        "trên; - UBND tỉnh (b/c); - Lưu: VT, VTLT. KT. GIÁM ĐỐC PHÓ GIÁM ĐỐC Nguyễn Thị Lan "
        "Phương",
        _fields(
            "SỞ NỘI VỤ",
            "UBND TỈNH ĐẮK NÔNG",
            "1875/SNV-VTLT",
            "2021-10-12",
            "Đắk Nông",
            "Công văn",
            "V/v thực hiện kiểm tra hộp thư công vụ 4 lần mỗi ngày làm việc",
            "Nguyễn Thị Lan Phương",
            "KT. GIÁM ĐỐC PHÓ GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "glued",
        "qd-one-line",
        "ỦY BAN NHÂN DÂN TỈNH BẮC KẠN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM Độc lập - Tự do - "
        "Hạnh phúc Số: 2156/QĐ-UBND Bắc Kạn, ngày 16 tháng 11 năm 2020 QUYẾT ĐỊNH Về việc "
        "công bố mã định danh điện tử của các cơ quan, đơn vị tham gia trao đổi văn bản điện "
        "tử CHỦ TỊCH ỦY BAN NHÂN DÂN TỈNH BẮC KẠN Căn cứ Luật Tổ chức chính quyền địa phương "
        "ngày 19 tháng 6 năm 2015; Xét đề nghị của Giám đốc Sở Thông tin và Truyền thông, "
        "QUYẾT ĐỊNH: Điều 1. Công bố mã định danh. Điều 2. Quyết định này có hiệu lực kể từ "
        "ngày ký. Nơi nhận: - Như Điều 2; - Lưu: VT. KT. CHỦ TỊCH PHÓ CHỦ TỊCH Đinh Quang "
        "Tuyên",
        _fields(
            "ỦY BAN NHÂN DÂN TỈNH BẮC KẠN",
            "",
            "2156/QĐ-UBND",
            "2020-11-16",
            "Bắc Kạn",
            "Quyết định",
            "Về việc công bố mã định danh điện tử của các cơ quan, đơn vị tham gia trao đổi "
            "văn bản điện tử",
            "Đinh Quang Tuyên",
            "KT. CHỦ TỊCH PHÓ CHỦ TỊCH",
        ),
    ),
    PatternCase(
        "glued",
        "tb-party-one-line",
        "TỈNH ỦY QUẢNG TRỊ ĐẢNG CỘNG SẢN VIỆT NAM * Số 664-TB/TU Quảng Trị, ngày 08 tháng 3 "
        "năm 2018 THÔNG BÁO Ý kiến của Ban Thường vụ Tỉnh ủy về Đề án xây dựng Chính quyền "
        "điện tử tỉnh Ngày 05/3/2018, Ban Thường vụ Tỉnh ủy đã họp nghe báo cáo. Ban Thường "
        "vụ Tỉnh ủy có ý kiến như sau: 1. Thống nhất chủ trương. Nơi nhận: - Các đồng chí "
        "Tỉnh ủy viên, - Lưu Văn phòng Tỉnh ủy. T/M BAN THƯỜNG VỤ PHÓ BÍ THƯ THƯỜNG TRỰC "
        "Nguyễn Văn Hùng",
        _fields(
            "TỈNH ỦY QUẢNG TRỊ",
            "",
            "664-TB/TU",
            "2018-03-08",
            "Quảng Trị",
            "Thông báo",
            "Ý kiến của Ban Thường vụ Tỉnh ủy về Đề án xây dựng Chính quyền điện tử tỉnh",
            "Nguyễn Văn Hùng",
            "T/M BAN THƯỜNG VỤ PHÓ BÍ THƯ THƯỜNG TRỰC",
        ),
    ),
    PatternCase(
        "glued",
        "qd-header-and-signature-glued-body-lines",
        "UBND TỈNH TUYÊN QUANG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM SỞ THÔNG TIN VÀ TRUYỀN "
        "THÔNG Độc lập - Tự do - Hạnh phúc Số: 312/QĐ-STTTT Tuyên Quang, ngày 14 tháng 9 năm "
        "2021 QUYẾT ĐỊNH Về việc ban hành Quy chế quản lý hệ thống thư điện tử công vụ GIÁM "
        "ĐỐC SỞ THÔNG TIN VÀ TRUYỀN THÔNG\n"
        "Căn cứ Quyết định số 12/2016/QĐ-UBND của UBND tỉnh Tuyên Quang;\n"
        "Xét đề nghị của Trưởng phòng Công nghệ thông tin,\n"
        "QUYẾT ĐỊNH:\n"
        "Điều 1. Ban hành kèm theo Quyết định này Quy chế quản lý hệ thống thư điện tử công "
        "vụ.\n"
        "Điều 2. Quyết định này có hiệu lực kể từ ngày ký.\n"
        "Nơi nhận: - Như Điều 2; - Lưu: VT, CNTT. GIÁM ĐỐC (Đã ký) Hà Thị Hồng Lan",
        _fields(
            "SỞ THÔNG TIN VÀ TRUYỀN THÔNG",
            "UBND TỈNH TUYÊN QUANG",
            "312/QĐ-STTTT",
            "2021-09-14",
            "Tuyên Quang",
            "Quyết định",
            "Về việc ban hành Quy chế quản lý hệ thống thư điện tử công vụ",
            "Hà Thị Hồng Lan",
            "GIÁM ĐỐC",
        ),
    ),
    PatternCase(
        "glued",
        "cv-tong-cuc-one-line-da-ky",
        "BỘ TÀI CHÍNH TỔNG CỤC THUẾ CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM Độc lập - Tự do - "
        "Hạnh phúc Số: 3012/TCT-KK Hà Nội, ngày 04 tháng 8 năm 2022 V/v hoàn thuế giá trị "
        "gia tăng theo Thông tư số 80/2021/TT-BTC ngày 29/9/2021 của Bộ Tài chính Kính gửi: "
        "Cục Thuế thành phố Hà Nội. Tổng cục Thuế trả lời như sau. Nơi nhận: - Như trên; - "
        "Lưu: VT, KK. KT. TỔNG CỤC TRƯỞNG PHÓ TỔNG CỤC TRƯỞNG (Đã ký) Đặng Ngọc Minh",
        _fields(
            "TỔNG CỤC THUẾ",
            "BỘ TÀI CHÍNH",
            "3012/TCT-KK",
            "2022-08-04",
            "Hà Nội",
            "Công văn",
            "V/v hoàn thuế giá trị gia tăng theo Thông tư số 80/2021/TT-BTC ngày 29/9/2021 "
            "của Bộ Tài chính",
            "Đặng Ngọc Minh",
            "KT. TỔNG CỤC TRƯỞNG PHÓ TỔNG CỤC TRƯỞNG",
        ),
    ),
)


def _held(category: str, name: str, text: str, expected: dict[str, Any]) -> PatternCase:
    return PatternCase(category, name, text, expected, held_out=True)


#: Two more variants per pattern, written after the rules were settled; their first-run
#: score is the one the README reports beside today's.
HELD_OUT: tuple[PatternCase, ...] = (
    _held(
        "place-line",
        "cv-hue-co-do",
        """UBND TỈNH THỪA THIÊN HUẾ
SỞ VĂN HÓA VÀ THỂ THAO
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 1320/SVHTT-QLDS
V/v tu bổ di tích thuộc Quần thể Di tích Cố đô Huế
Thừa Thiên Huế, ngày 16 tháng 5 năm 2022
Kính gửi: Trung tâm Bảo tồn Di tích Cố đô Huế
Sở Văn hóa và Thể thao có ý kiến như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, QLDS.
GIÁM ĐỐC
Phan Thanh Hải
""",
        _fields(
            "SỞ VĂN HÓA VÀ THỂ THAO",
            "UBND TỈNH THỪA THIÊN HUẾ",
            "1320/SVHTT-QLDS",
            "2022-05-16",
            "Thừa Thiên Huế",
            "Công văn",
            "V/v tu bổ di tích thuộc Quần thể Di tích Cố đô Huế",
            "Phan Thanh Hải",
            "GIÁM ĐỐC",
        ),
    ),
    _held(
        "place-line",
        "cv-party-doan-hcm",
        """TỈNH ỦY THANH HÓA ĐẢNG CỘNG SẢN VIỆT NAM
BAN DÂN VẬN
*
Số 215-CV/BDVTU
V/v báo cáo kết quả Đại hội Đoàn TNCS Hồ Chí Minh
Thanh Hóa, ngày 08 tháng 11 năm 2022
Kính gửi: Ban Thường vụ Tỉnh đoàn
Ban Dân vận Tỉnh ủy đề nghị báo cáo.
Nơi nhận:
- Như trên,
- Lưu BDV.
TRƯỞNG BAN
Phạm Thị Thanh Thủy
""",
        _fields(
            "BAN DÂN VẬN",
            "TỈNH ỦY THANH HÓA",
            "215-CV/BDVTU",
            "2022-11-08",
            "Thanh Hóa",
            "Công văn",
            "V/v báo cáo kết quả Đại hội Đoàn TNCS Hồ Chí Minh",
            "Phạm Thị Thanh Thủy",
            "TRƯỞNG BAN",
        ),
    ),
    _held(
        "abstract-dates",
        "tb-meeting-date-at-end",
        """HĐND TỈNH LẠNG SƠN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
THƯỜNG TRỰC Độc lập - Tự do - Hạnh phúc
Số: 77/TB-HĐND Lạng Sơn, ngày 19 tháng 6 năm 2023
THÔNG BÁO
Kết luận của Thường trực HĐND tỉnh tại phiên họp ngày 15/6/2023
Ngày 15/6/2023, Thường trực HĐND tỉnh tổ chức phiên họp thường kỳ.
Nơi nhận:
- Các Ban HĐND tỉnh;
- Lưu: VT.
TM. THƯỜNG TRỰC HĐND
CHỦ TỊCH
Đoàn Thị Hậu
""",
        _fields(
            "THƯỜNG TRỰC",
            "HĐND TỈNH LẠNG SƠN",
            "77/TB-HĐND",
            "2023-06-19",
            "Lạng Sơn",
            "Thông báo",
            "Kết luận của Thường trực HĐND tỉnh tại phiên họp ngày 15/6/2023",
            "Đoàn Thị Hậu",
            "TM. THƯỜNG TRỰC HĐND CHỦ TỊCH",
        ),
    ),
    _held(
        "abstract-dates",
        "cv-thong-bao-date-words",
        """UBND TỈNH LẠNG SƠN
VĂN PHÒNG
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 512/VP-KGVX
V/v thực hiện Thông báo số 45/TB-VPCP ngày 20 tháng 02 năm 2023
Lạng Sơn, ngày 01 tháng 3 năm 2023
Kính gửi: Sở Giáo dục và Đào tạo
Văn phòng UBND tỉnh truyền đạt ý kiến như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, KGVX.
KT. CHÁNH VĂN PHÒNG
PHÓ CHÁNH VĂN PHÒNG
Hoàng Văn Toàn
""",
        _fields(
            "VĂN PHÒNG",
            "UBND TỈNH LẠNG SƠN",
            "512/VP-KGVX",
            "2023-03-01",
            "Lạng Sơn",
            "Công văn",
            "V/v thực hiện Thông báo số 45/TB-VPCP ngày 20 tháng 02 năm 2023",
            "Hoàng Văn Toàn",
            "KT. CHÁNH VĂN PHÒNG PHÓ CHÁNH VĂN PHÒNG",
        ),
    ),
    _held(
        "agency-keyword",
        "cv-tong-cuc-thong-ke",
        """BỘ KẾ HOẠCH VÀ ĐẦU TƯ CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
TỔNG CỤC THỐNG KÊ Độc lập - Tự do - Hạnh phúc
Số: 1029/TCTK-PPCĐ Hà Nội, ngày 25 tháng 7 năm 2019
V/v hướng dẫn điều tra lao động việc làm
Kính gửi: Cục Thống kê các tỉnh, thành phố trực thuộc Trung ương
Tổng cục Thống kê hướng dẫn như sau.
Nơi nhận: TỔNG CỤC TRƯỞNG
- Như trên;
- Lưu: VT, PPCĐ. Nguyễn Bích Lâm
""",
        _fields(
            "TỔNG CỤC THỐNG KÊ",
            "BỘ KẾ HOẠCH VÀ ĐẦU TƯ",
            "1029/TCTK-PPCĐ",
            "2019-07-25",
            "Hà Nội",
            "Công văn",
            "V/v hướng dẫn điều tra lao động việc làm",
            "Nguyễn Bích Lâm",
            "TỔNG CỤC TRƯỞNG",
        ),
    ),
    _held(
        "agency-keyword",
        "qd-cuc-thong-ke-tinh",
        """TỔNG CỤC THỐNG KÊ
CỤC THỐNG KÊ TỈNH BẾN TRE
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 58/QĐ-CTK
Bến Tre, ngày 02 tháng 4 năm 2021
QUYẾT ĐỊNH
Về việc thành lập Tổ điều tra doanh nghiệp năm 2021
CỤC TRƯỞNG CỤC THỐNG KÊ TỈNH BẾN TRE
Căn cứ Luật Thống kê ngày 23 tháng 11 năm 2015;
QUYẾT ĐỊNH:
Điều 1. Thành lập Tổ điều tra.
Nơi nhận:
- Như Điều 3;
- Lưu: VT.
CỤC TRƯỞNG
Huỳnh Văn Dũng
""",
        _fields(
            "CỤC THỐNG KÊ TỈNH BẾN TRE",
            "TỔNG CỤC THỐNG KÊ",
            "58/QĐ-CTK",
            "2021-04-02",
            "Bến Tre",
            "Quyết định",
            "Về việc thành lập Tổ điều tra doanh nghiệp năm 2021",
            "Huỳnh Văn Dũng",
            "CỤC TRƯỞNG",
        ),
    ),
    _held(
        "place-names",
        "cv-thu-dau-mot",
        """UBND TỈNH BÌNH DƯƠNG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ TƯ PHÁP Độc lập - Tự do - Hạnh phúc
Số: 845/STP-HCTP Thủ Dầu Một, ngày 14 tháng 4 năm 2020
V/v hướng dẫn chứng thực bản sao điện tử
Kính gửi: UBND các huyện, thị xã, thành phố
Sở Tư pháp hướng dẫn như sau.
Nơi nhận:
- Như trên;
- Lưu: VT, HCTP.
GIÁM ĐỐC
Lê Văn Thanh
""",
        _fields(
            "SỞ TƯ PHÁP",
            "UBND TỈNH BÌNH DƯƠNG",
            "845/STP-HCTP",
            "2020-04-14",
            "Thủ Dầu Một",
            "Công văn",
            "V/v hướng dẫn chứng thực bản sao điện tử",
            "Lê Văn Thanh",
            "GIÁM ĐỐC",
        ),
    ),
    _held(
        "place-names",
        "tb-tx-phu-my",
        """UBND THỊ XÃ PHÚ MỸ
VĂN PHÒNG HĐND VÀ UBND
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 214/TB-VP
TX. Phú Mỹ, ngày 28 tháng 9 năm 2021
THÔNG BÁO
Lịch làm việc của Thường trực UBND thị xã
Văn phòng thông báo lịch làm việc như sau:
Nơi nhận:
- Như trên;
- Lưu: VT.
CHÁNH VĂN PHÒNG
Võ Thị Mỹ Linh
""",
        _fields(
            "VĂN PHÒNG HĐND VÀ UBND",
            "UBND THỊ XÃ PHÚ MỸ",
            "214/TB-VP",
            "2021-09-28",
            "TX. Phú Mỹ",
            "Thông báo",
            "Lịch làm việc của Thường trực UBND thị xã",
            "Võ Thị Mỹ Linh",
            "CHÁNH VĂN PHÒNG",
        ),
    ),
    _held(
        "signature",
        "ct-party-old-no-recipients",
        """BAN CHẤP HÀNH TRUNG ƯƠNG
ĐẢNG CỘNG SẢN VIỆT NAM
Số 100-CT/TW
Hà Nội, ngày 13 tháng 1 năm 1981
CHỈ THỊ
Về cải tiến công tác khoán
Trong mấy năm gần đây, nhiều hợp tác xã đã áp dụng các hình thức khoán.
Các cấp ủy đảng phải chỉ đạo chặt chẽ việc thực hiện Chỉ thị này.
T/M BAN BÍ THƯ
(Đã ký)
Lê Duẩn
""",
        _fields(
            "BAN CHẤP HÀNH TRUNG ƯƠNG",
            "",
            "100-CT/TW",
            "1981-01-13",
            "Hà Nội",
            "Chỉ thị",
            "Về cải tiến công tác khoán",
            "Lê Duẩn",
            "T/M BAN BÍ THƯ",
        ),
    ),
    _held(
        "signature",
        "cv-glued-and-wrapped",
        """UBND TỈNH HẢI DƯƠNG CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
SỞ CÔNG THƯƠNG Độc lập - Tự do - Hạnh phúc
Số: 905/SCT-QLTM Hải Dương, ngày 20 tháng 6 năm 2019
V/v kiểm tra thị trường hàng hóa dịp Tết Trung thu
Kính gửi: Đội Quản lý thị trường số 1
Sở Công Thương đề nghị triển khai kiểm tra.
Nơi nhận: KT. GIÁM ĐỐC
- Như trên;
- Lưu: VT, QLTM.
PHÓ GIÁM ĐỐCNguyễn Văn
Bình
""",
        _fields(
            "SỞ CÔNG THƯƠNG",
            "UBND TỈNH HẢI DƯƠNG",
            "905/SCT-QLTM",
            "2019-06-20",
            "Hải Dương",
            "Công văn",
            "V/v kiểm tra thị trường hàng hóa dịp Tết Trung thu",
            "Nguyễn Văn Bình",
            "KT. GIÁM ĐỐC PHÓ GIÁM ĐỐC",
        ),
    ),
    _held(
        "abstract-forms",
        "cv-vv-colon-text-next-line",
        """UBND HUYỆN ĐIỆN BIÊN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
PHÒNG TÀI NGUYÊN VÀ MÔI TRƯỜNG Độc lập - Tự do - Hạnh phúc
Số: 118/TNMT Điện Biên, ngày 09 tháng 8 năm 2021
V/v:
đề nghị cung cấp hồ sơ giao đất, cho thuê đất
Kính gửi: UBND các xã trên địa bàn huyện
Phòng Tài nguyên và Môi trường đề nghị cung cấp hồ sơ.
Nơi nhận:
- Như trên;
- Lưu: VT.
TRƯỞNG PHÒNG
Lò Văn Thương
""",
        _fields(
            "PHÒNG TÀI NGUYÊN VÀ MÔI TRƯỜNG",
            "UBND HUYỆN ĐIỆN BIÊN",
            "118/TNMT",
            "2021-08-09",
            "Điện Biên",
            "Công văn",
            "V/v đề nghị cung cấp hồ sơ giao đất, cho thuê đất",
            "Lò Văn Thương",
            "TRƯỞNG PHÒNG",
        ),
    ),
    _held(
        "abstract-forms",
        "ttr-four-line-abstract",
        """UBND XÃ TÂN HIỆP CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
Số: 25/TTr-UBND Tân Hiệp, ngày 12 tháng 3 năm 2024
TỜ TRÌNH
Về việc đề nghị phê duyệt
Chủ trương đầu tư Dự án
Đường giao thông liên xã Tân Hiệp - Tân Thành
Kính gửi: Ủy ban nhân dân huyện
Ủy ban nhân dân xã kính trình Ủy ban nhân dân huyện xem xét, phê duyệt.
Nơi nhận: TM. ỦY BAN NHÂN DÂN
- Như trên; CHỦ TỊCH
- Lưu: VT.
Trần Văn Sáu
""",
        _fields(
            "UBND XÃ TÂN HIỆP",
            "",
            "25/TTr-UBND",
            "2024-03-12",
            "Tân Hiệp",
            "Tờ trình",
            "Về việc đề nghị phê duyệt Chủ trương đầu tư Dự án Đường giao thông liên xã Tân "
            "Hiệp - Tân Thành",
            "Trần Văn Sáu",
            "TM. ỦY BAN NHÂN DÂN CHỦ TỊCH",
        ),
    ),
    _held(
        "draft",
        "tt-bnv-stamp-beside-motto",
        """BỘ NỘI VỤ CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc DỰ THẢO 3
Số:        /2024/TT-BNV Hà Nội, ngày     tháng     năm 2024
THÔNG TƯ
Quy định chế độ báo cáo thống kê ngành Nội vụ
Căn cứ Luật Thống kê ngày 23 tháng 11 năm 2015;
Bộ trưởng Bộ Nội vụ ban hành Thông tư quy định chế độ báo cáo thống kê ngành Nội vụ.
""",
        _fields(
            "BỘ NỘI VỤ",
            "",
            "",
            None,
            "Hà Nội",
            "Thông tư",
            "Quy định chế độ báo cáo thống kê ngành Nội vụ",
        ),
    ),
    _held(
        "draft",
        "kh-month-filled-day-blank",
        """UBND TỈNH YÊN BÁI
SỞ NỘI VỤ
CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
Độc lập - Tự do - Hạnh phúc
DỰ THẢO
Số:     /KH-SNV
Yên Bái, ngày      tháng 5 năm 2024
KẾ HOẠCH
Kiểm tra công tác văn thư, lưu trữ năm 2024
I. MỤC ĐÍCH, YÊU CẦU
""",
        _fields(
            "SỞ NỘI VỤ",
            "UBND TỈNH YÊN BÁI",
            "",
            None,
            "Yên Bái",
            "Kế hoạch",
            "Kiểm tra công tác văn thư, lưu trữ năm 2024",
        ),
    ),
    _held(
        "text-damage",
        "bc-no-space-lost-hyphen",
        """UBND HUYỆN MỘC CHÂU CỘNG HOÀ XàHỘI CHỦ NGHĨA VIỆT NAM
Độc lập – Tự do – Hạnh phúc
Số:56/BCUBND Mộc Châu, ngày 05 tháng 01 năm 2023
BÁO CÁO
Kết quả thực hiện nhiệm vụ phát triển kinh tế - xã hội năm 2022
Thực hiện chỉ đạo của UBND tỉnh, UBND huyện báo cáo như sau:
Nơi nhận: TM. ỦY BAN NHÂN DÂN
- UBND tỉnh; CHỦ TỊCH
- Lưu: VT.
Đinh Văn Khiêm
""",
        _fields(
            "UBND HUYỆN MỘC CHÂU",
            "",
            "56/BC-UBND",
            "2023-01-05",
            "Mộc Châu",
            "Báo cáo",
            "Kết quả thực hiện nhiệm vụ phát triển kinh tế - xã hội năm 2022",
            "Đinh Văn Khiêm",
            "TM. ỦY BAN NHÂN DÂN CHỦ TỊCH",
        ),
    ),
    _held(
        "text-damage",
        "qd-detached-marks-old-tones",
        _detached(
            """UỶ BAN NHÂN DÂN CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM
TỈNH THANH HOÁ Độc lập - Tự do - Hạnh phúc
Số: 3345/QĐ-UBND Thanh Hoá, ngày 22 tháng 8 năm 2019
QUYẾT ĐỊNH
Về việc phê duyệt danh mục dịch vụ công trực tuyến mức độ 3, 4
CHỦ TỊCH UỶ BAN NHÂN DÂN TỈNH
Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;
QUYẾT ĐỊNH:
Điều 1. Phê duyệt danh mục.
Nơi nhận: KT. CHỦ TỊCH
- Như Điều 3; PHÓ CHỦ TỊCH
- Lưu: VT.
Nguyễn Đức Quyền
"""
        ),
        _fields(
            "UỶ BAN NHÂN DÂN TỈNH THANH HOÁ",
            "",
            "3345/QĐ-UBND",
            "2019-08-22",
            "Thanh Hoá",
            "Quyết định",
            "Về việc phê duyệt danh mục dịch vụ công trực tuyến mức độ 3, 4",
            "Nguyễn Đức Quyền",
            "KT. CHỦ TỊCH PHÓ CHỦ TỊCH",
        ),
    ),
    _held(
        "glued",
        "nq-hdnd-one-line",
        "HỘI ĐỒNG NHÂN DÂN TỈNH SƠN LA CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM Độc lập - Tự do - "
        "Hạnh phúc Số: 45/2022/NQ-HĐND Sơn La, ngày 12 tháng 7 năm 2022 NGHỊ QUYẾT Quy định "
        "mức hỗ trợ cán bộ làm công tác chuyển đổi số HỘI ĐỒNG NHÂN DÂN TỈNH SƠN LA KHÓA XV, "
        "KỲ HỌP THỨ NĂM Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015; "
        "QUYẾT NGHỊ: Điều 1. Quy định mức hỗ trợ. Nghị quyết này được Hội đồng nhân dân tỉnh "
        "thông qua ngày 12 tháng 7 năm 2022. Nơi nhận: - Ủy ban TVQH; - Lưu: VT. CHỦ TỊCH "
        "Nguyễn Thái Hưng",
        _fields(
            "HỘI ĐỒNG NHÂN DÂN TỈNH SƠN LA",
            "",
            "45/2022/NQ-HĐND",
            "2022-07-12",
            "Sơn La",
            "Nghị quyết",
            "Quy định mức hỗ trợ cán bộ làm công tác chuyển đổi số",
            "Nguyễn Thái Hưng",
            "CHỦ TỊCH",
        ),
    ),
    _held(
        "glued",
        "cv-party-hoa-toc-one-line",
        "HUYỆN ỦY BẮC SƠN ĐẢNG CỘNG SẢN VIỆT NAM * Số 455-CV/HU Bắc Sơn, ngày 02 tháng 10 "
        "năm 2020 HỎA TỐC V/v tập trung khắc phục hậu quả mưa lũ Kính gửi: Các chi, đảng bộ "
        "trực thuộc Huyện ủy Ban Thường vụ Huyện ủy yêu cầu các cấp ủy báo cáo trước 17 giờ "
        "ngày 03/10/2020. Nơi nhận: - Như trên, - Lưu Văn phòng Huyện ủy. T/M BAN THƯỜNG VỤ "
        "BÍ THƯ Hoàng Văn Nghiệm",
        _fields(
            "HUYỆN ỦY BẮC SƠN",
            "",
            "455-CV/HU",
            "2020-10-02",
            "Bắc Sơn",
            "Công văn",
            "V/v tập trung khắc phục hậu quả mưa lũ",
            "Hoàng Văn Nghiệm",
            "T/M BAN THƯỜNG VỤ BÍ THƯ",
        ),
    ),
)


def observed(case: PatternCase) -> dict[str, Any]:
    """The checked fields as ``extract_metadata`` reads them from the case's text."""
    from mailsvc.documents.metadata import extract_metadata

    got = extract_metadata(case.text).to_dict()
    return {field: got[field] for field in FIELDS}
