"""Metadata of Vietnamese official documents, read from their text.

Pure functions: the extracted text of the main document (any Unicode form; NFC is
applied), the mail subject and headers in, one frozen :class:`DocumentMetadata` out.
The layouts are those of Decree 30/2020/NĐ-CP (State documents: "UBND TỈNH ... /
Số: 35/2018/QĐ-UBND / ..., ngày 05 tháng 12 năm 2018 / QUYẾT ĐỊNH / ...") and of the
Party's rules (Quy định 66-QĐ/TW: "TỈNH ỦY ... / Số 464-QĐ/TU / ĐẢNG CỘNG SẢN VIỆT
NAM / ..."), with the signature block "TM. ... / KT. ... / title / name" and the
recipients' list "Nơi nhận:".

Text from PDFs is messy: lines break in odd places, the two header columns end up on
one line or interleaved, table cells become "|" lines, words are spread with extra
spaces. Every rule below therefore works on whitespace-tolerant patterns over small
zones (the header before the type heading, the signature block near "Nơi nhận")
rather than on exact lines.

Documents as really published add their own damage, each handled by a named rule (the
pattern names are those of tests/documents/metadata_patterns.py): the place and date line
right under an abstract (``_place_before``), dates cited in an abstract (``_strip_date``),
"TỔNG CỤC" inside agency names (``_split_levels``), long place names (``_place_word``),
signature blocks glued, wrapped or marked "(Đã ký)" (``_signature_block``), "V/v" and
"Về việc" forms and long abstracts (``_vv_abstract``, ``_abstract_run_end``), drafts
(``_DRAFT_STAMP``, ``_BLANK_DATE``), text-layer damage (``_repair_notation``, ``_spaced``,
``_DETACHED_MARK``) and documents published on one line (``_unglue``).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

__all__ = [
    "URGENCY_LEVELS",
    "DocumentMetadata",
    "extract_metadata",
    "urgency_from_headers",
    "urgency_from_subject",
]

#: Urgency levels from mildest to strictest ("" means not urgent).
URGENCY_LEVELS: tuple[str, ...] = ("", "Khẩn", "Thượng khẩn", "Hỏa tốc")

_MAX_TEXT = 400_000  # characters of a document looked at; official texts are far shorter
_HEADER_LINES = 45  # the header and the type heading sit within these (non-blank) lines


@dataclass(frozen=True)
class DocumentMetadata:
    """What an official document says about itself (Decree 30/2020, seed 002 Điều 11).

    Dates are ``datetime.date`` or None; strings are "" when not found. ``sources``
    records where each found field came from (``header``, ``heading``,
    ``signature``, ``body``, ``subject``, ``mail-header:X-Priority``, ``directory``,
    ``caller``), as (field, where) pairs.
    """

    issuing_agency: str = ""  # tác giả: the body that issued it ("SỞ TÀI CHÍNH")
    parent_agency: str = ""  # the line above it in the header ("UBND TỈNH ĐẮK NÔNG")
    number_notation: str = ""  # số và ký hiệu: "35/2018/QĐ-UBND", "464-QĐ/TU"
    issued_date: date | None = None  # ngày tháng văn bản
    issued_place: str = ""  # địa danh: "Đắk Nông"
    doc_type: str = ""  # tên loại: "Quyết định", "Công văn" ...
    abstract: str = ""  # trích yếu: "V/v ..." for a công văn
    urgency: str = ""  # "", "Khẩn", "Thượng khẩn", "Hỏa tốc"
    signer: str = ""  # người ký, from the signature block
    signer_title: str = ""  # "KT. CHỦ TỊCH PHÓ CHỦ TỊCH"
    deadline: date | None = None  # thời hạn xử lý, when the text states one
    attachments: tuple[str, ...] = ()  # file names, as given by the caller
    agency_code: str = ""  # mã định danh, from the directory (set by the stage)
    agency_name: str = ""  # the sender's agency in the directory (set by the stage)
    sources: tuple[tuple[str, str], ...] = ()
    pages: int = 0  # pages of the document read (set by the stage; 0: no pages)
    language: str = ""  # language of the text: "vi", "en" or "" (set by the stage)
    # Where the fields were read ("attachment 1", "body", "none"; set by the stage).
    document: str = field(default="", compare=False)
    # SHA-256 of the file the fields were read from ("" for the body or nothing; set by
    # the stage): the register uses them only when it is its main file's.
    sha256: str = field(default="", compare=False)
    # For the register's search index, set by the metadata stage (never printed or
    # stored with the verdict): the words of the document the fields were read from,
    # folded where it was read (mailsvc.documents.words.search_words: in the worker pool,
    # not in the SMTP process's acceptance transaction), or the mail's body as it is when
    # nothing in the mail reads as a document. The index folds what it is given again,
    # which leaves folded words as they are.
    text: str = field(default="", repr=False, compare=False)

    @property
    def is_official(self) -> bool:
        """True when the text looks like an official document, not an ordinary mail."""
        if self.number_notation:
            return True
        clues = (
            bool(self.doc_type) and self.source("doc_type") in ("heading", "header"),
            self.issued_date is not None,
            bool(self.issuing_agency),
            bool(self.signer) and bool(self.signer_title),
        )
        return sum(clues) >= 2

    @property
    def is_urgent(self) -> bool:
        return bool(self.urgency)

    @property
    def author(self) -> str:
        """Tác giả for the register: "VĂN PHÒNG - TỈNH ỦY QUẢNG TRỊ", or the agency alone."""
        if self.issuing_agency and self.parent_agency:
            return f"{self.issuing_agency} - {self.parent_agency}"
        return self.issuing_agency

    def source(self, name: str) -> str:
        """Where field ``name`` was found, or "" when it was not."""
        for key, where in self.sources:
            if key == name:
                return where
        return ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: dates as ISO 8601, English snake_case keys."""
        return {
            "issuing_agency": self.issuing_agency,
            "parent_agency": self.parent_agency,
            "author": self.author,
            "number_notation": self.number_notation,
            "issued_date": self.issued_date.isoformat() if self.issued_date else None,
            "issued_place": self.issued_place,
            "doc_type": self.doc_type,
            "abstract": self.abstract,
            "urgency": self.urgency,
            "signer": self.signer,
            "signer_title": self.signer_title,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "attachments": list(self.attachments),
            "agency_code": self.agency_code,
            "agency_name": self.agency_name,
            "sources": dict(self.sources),
            "pages": self.pages,
            "language": self.language,
        }

    def to_json(self) -> dict[str, Any]:
        """The short form stored with the message's verdict (the metadata stage's record)."""
        return {
            "document": self.document,
            "number_notation": self.number_notation,
            "doc_type": self.doc_type,
            "issued_date": self.issued_date.isoformat() if self.issued_date else None,
            "urgency": self.urgency,
            "agency_code": self.agency_code,
            "fields": sorted(name for name, _ in self.sources),
        }


# --------------------------------------------------------------------------- text


# Old-style tone placement ("hoà", "uỷ") to the style of Decree 30 ("hòa", "ủy"). Each
# replacement keeps the length, so positions in the folded text match the original.
_TONE_PAIRS = {
    "oà": "òa", "oá": "óa", "oả": "ỏa", "oã": "õa", "oạ": "ọa",
    "oè": "òe", "oé": "óe", "oẻ": "ỏe", "oẽ": "õe", "oẹ": "ọe",
    "uỳ": "ùy", "uý": "úy", "uỷ": "ủy", "uỹ": "ũy", "uỵ": "ụy",
}  # fmt: skip
_TONE_MAP: dict[str, str] = {}
for _old, _new in _TONE_PAIRS.items():
    _TONE_MAP[_old] = _new
    _TONE_MAP[_old.upper()] = _new.upper()
    _TONE_MAP[_old[0].upper() + _old[1]] = _new[0].upper() + _new[1]
_TONE_RE = re.compile("(?<![qQ])(?:[oO][àáảãạèéẻẽẹÀÁẢÃẠÈÉẺẼẸ]|[uU][ỳýỷỹỵỲÝỶỸỴ])(?![^\\W\\d_])")


def fold_tones(text: str) -> str:
    """Rewrite old-style tone marks ("Hoả", "UỶ") to the modern style, same length."""
    return _TONE_RE.sub(lambda m: _TONE_MAP.get(m.group(0), m.group(0)), text)


_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile("[\u00a0\u2002-\u2009\u202f\u3000]")
_DASHES = re.compile("[\u2010-\u2014\u2212]")
_CELL_SPLIT = re.compile(r"\t+| {3,}")
_SEPARATOR = re.compile(r"^[-_*=~.•·|+#\s]+$")


# A combining mark that a PDF text layer detached from its letter ("Nô ̣i vu ̣"): the space
# before it goes, so that NFC composes the letter again (pattern "text-damage").
_DETACHED_MARK = re.compile("[ \u00a0]+(?=[\u0300-\u036f])")


_COMBINING = re.compile("[\u0300-\u036f]")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text[:_MAX_TEXT])
    if _COMBINING.search(text):  # marks NFC could not compose: detached by a space
        text = unicodedata.normalize("NFC", _DETACHED_MARK.sub("", text))
    text = _DASHES.sub("-", _SPACES.sub(" ", _INVISIBLE.sub("", text)))
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    return text.replace("**", "").replace("__", "")


def _cells(text: str) -> list[str]:
    """Lines of the document, each wide-spaced column cell on its own line, stripped."""
    out: list[str] = []
    for raw in text.split("\n"):
        parts = [p.strip(" |") for p in _CELL_SPLIT.split(raw)]
        parts = [p for p in parts if p]
        if not parts:
            out.append("")
            continue
        for part in parts:
            if _SEPARATOR.match(part):
                out.append("---")
            else:
                out.append(" ".join(part.replace("|", " ").split()))
    return out


MAX_HEADER_LINE = 200  # an agency line in a document header is short; prose lines are not


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _letters(text: str) -> str:
    return "".join(ch for ch in text if ch.isalpha())


def _is_upper(text: str, ratio: float = 0.9) -> bool:
    if len(text) > 4 * MAX_HEADER_LINE:  # uppercase headings and stamps are short lines
        return False
    letters = _letters(text)
    if len(letters) < 2:
        return False
    return sum(ch.isupper() for ch in letters) >= ratio * len(letters)


_GLUED_LINE = 200  # a longer line holding a header or a signature block is a glued document
_GLUED_SIGNATURE = 60  # "Nơi nhận: - Lưu: VT. GIÁM ĐỐC (Đã ký) name" on one line is longer
_GLUE_ANCHOR = re.compile(
    r"(?<=\s)(?=V\s*/\s*[Vv](?![^\W\d_])|Kính\s+gửi|Căn\s+cứ|Xét\s+đề\s+nghị|Theo\s+đề\s+nghị|"
    r"Nơi\s+nhận|Điều\s+\d+\s*\.|Ngày\s+\d|Số\s*[:.]?\s*[\d.…_/]|"
    r"(?:T\s*/\s*M|K\s*/\s*T|T\s*/\s*L)\s*\.?\s+[A-ZĐ]|(?:TM|KT|TL|TUQ)\s*[./]\s*[A-ZĐ])"
)
_LIST_ITEM = re.compile(r"(?<=\s)(?=[-+]\s+\w)")


def _unglue(text: str) -> str:
    """Break a document published on one line back into lines (pattern "glued").

    Some databases publish a whole document with no line break, or glue its header or its
    signature block into one line above or below ordinary paragraphs. The header fields and
    the signature block are found again by their own patterns: the mottos, "Số", "V/v", "Kính
    gửi", "Căn cứ", "Nơi nhận" and its list, the "KT."/"TM." titles, "(Đã ký)", and the runs
    of uppercase words (agency names, type headings, titles) start lines of their own.
    """
    if len(text) <= _GLUED_LINE:
        return text
    lines = text.split("\n")
    candidates: Iterable[int]
    if text.count("\n") * _GLUED_LINE <= len(text):  # lines average over 200 characters
        candidates = range(len(lines))
    else:  # a header or a signature block glued at either end of ordinary lines
        nonblank = [i for i, line in enumerate(lines) if line.strip()]
        candidates = sorted({*nonblank[:3], *nonblank[-3:]})
        if all(len(lines[i]) <= _GLUED_SIGNATURE for i in candidates):
            return text
    for i in candidates:
        line = lines[i]
        head = line[:600]
        if (
            len(line) > _GLUED_LINE
            and (("Số" in head and _NUMBER.search(head)) or _MOTTOS.search(head))
        ) or (len(line) > _GLUED_SIGNATURE and "N" in line and _NOI_NHAN.search(line)):
            lines[i] = _break_glued(line)
    return "\n".join(lines)


def _break_glued(line: str) -> str:
    protected = [m.span() for m in _MOTTOS.finditer(line)]
    cuts: set[int] = set()
    for start, end in protected:
        cuts.update((start, end))
    cuts.update(m.start() for m in _GLUE_ANCHOR.finditer(line))
    for mark in _SIGNED_MARK.finditer(line):
        cuts.update(mark.span())
    recipients = _NOI_NHAN.search(line)
    if recipients:
        cuts.update(m.start() for m in _LIST_ITEM.finditer(line, recipients.end()))
    cuts.update(_uppercase_run_edges(line))
    pieces: list[str] = []
    last = 0
    for cut in sorted(cuts):
        if cut <= last or any(start < cut < end for start, end in protected):
            continue
        pieces.append(line[last:cut].strip())
        last = cut
    pieces.append(line[last:].strip())
    return "\n".join(piece for piece in pieces if piece)


def _uppercase_run_edges(line: str) -> list[int]:
    """Where runs of two or more uppercase words ("SỞ NỘI VỤ", "KT. GIÁM ĐỐC") begin and end."""
    tokens = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"\S+", line)]
    upper = []
    for k, (_, _, word) in enumerate(tokens):
        letters = _letters(word)
        is_upper = bool(letters) and letters.isupper()
        if is_upper and len(letters) == 1:  # "Ý kiến", "Mùa A Sơn": a letter of a word run
            nxt = _letters(tokens[k + 1][2]) if k + 1 < len(tokens) else ""
            is_upper = len(nxt) > 1 and nxt.isupper()
        upper.append(is_upper)
    edges: list[int] = []
    k = 0
    while k < len(tokens):
        if not upper[k]:
            k += 1
            continue
        end = k
        while end + 1 < len(tokens) and upper[end + 1]:
            end += 1
        if end > k:
            edges.append(tokens[k][0])
            edges.append(tokens[end][1])
        k = end + 1
    return edges


class _Doc:
    """The document's cells, the folded text and a map from offsets to cells."""

    def __init__(self, text: str) -> None:
        self.lines = _cells(_unglue(_clean(text)))
        self.text = "\n".join(self.lines)
        self.folded = fold_tones(self.text)  # same length, same line breaks
        self.folded_lines = self.folded.split("\n")
        self.starts: list[int] = []
        pos = 0
        for line in self.lines:
            self.starts.append(pos)
            pos += len(line) + 1

    def line_at(self, offset: int) -> int:
        return max(0, bisect_right(self.starts, offset) - 1)

    def offset(self, line: int) -> int:
        return self.starts[line] if line < len(self.starts) else len(self.text)


# --------------------------------------------------------------------------- patterns

_DOC_TYPES: dict[str, str] = {
    "QUYẾT ĐỊNH": "Quyết định",
    "NGHỊ QUYẾT": "Nghị quyết",
    "CHỈ THỊ": "Chỉ thị",
    "KẾT LUẬN": "Kết luận",
    "QUY CHẾ": "Quy chế",
    "QUY ĐỊNH": "Quy định",
    "THÔNG TRI": "Thông tri",
    "THÔNG CÁO": "Thông cáo",
    "THÔNG BÁO": "Thông báo",
    "HƯỚNG DẪN": "Hướng dẫn",
    "CHƯƠNG TRÌNH": "Chương trình",
    "KẾ HOẠCH": "Kế hoạch",
    "PHƯƠNG ÁN": "Phương án",
    "ĐỀ ÁN": "Đề án",
    "DỰ ÁN": "Dự án",
    "BÁO CÁO": "Báo cáo",
    "TỜ TRÌNH": "Tờ trình",
    "BIÊN BẢN": "Biên bản",
    "CÔNG VĂN": "Công văn",
    "CÔNG ĐIỆN": "Công điện",
    "GIẤY MỜI": "Giấy mời",
    "GIẤY GIỚI THIỆU": "Giấy giới thiệu",
    "GIẤY ỦY QUYỀN": "Giấy ủy quyền",
    "GIẤY NGHỈ PHÉP": "Giấy nghỉ phép",
    "PHIẾU GỬI": "Phiếu gửi",
    "PHIẾU CHUYỂN": "Phiếu chuyển",
    "PHIẾU BÁO": "Phiếu báo",
    "HỢP ĐỒNG": "Hợp đồng",
    "BẢN GHI NHỚ": "Bản ghi nhớ",
    "BẢN THỎA THUẬN": "Bản thỏa thuận",
    "THƯ CÔNG": "Thư công",
    "NGHỊ ĐỊNH": "Nghị định",
    "THÔNG TƯ": "Thông tư",
    "ĐIỀU LỆ": "Điều lệ",
}
_TYPE_KEYS = sorted(_DOC_TYPES, key=len, reverse=True)
_TYPE_KEYS_NOSPACE = {key.replace(" ", ""): key for key in _TYPE_KEYS}

# The abbreviation inside a number and notation (Decree 30 appendix III; Party rules).
_TYPE_CODES: dict[str, str] = {
    "QĐ": "Quyết định", "NQ": "Nghị quyết", "CT": "Chỉ thị", "KL": "Kết luận",
    "QC": "Quy chế", "QĐi": "Quy định", "QyĐ": "Quy định", "QYĐ": "Quy định",
    "TT": "Thông tư", "TTr": "Tờ trình", "TB": "Thông báo", "HD": "Hướng dẫn",
    "CTr": "Chương trình", "KH": "Kế hoạch", "PA": "Phương án", "ĐA": "Đề án",
    "DA": "Dự án", "BC": "Báo cáo", "BB": "Biên bản", "CĐ": "Công điện",
    "GM": "Giấy mời", "GGT": "Giấy giới thiệu", "GUQ": "Giấy ủy quyền",
    "PG": "Phiếu gửi", "PC": "Phiếu chuyển", "CV": "Công văn", "TTri": "Thông tri",
    "HĐ": "Hợp đồng", "NĐ": "Nghị định", "TC": "Thông cáo",
}  # fmt: skip


def _spaced(phrase: str) -> str:
    """A regex for phrase whatever spaces a text layer puts or loses between its letters.

    "CỘNG HOÀ XàHỘI CHỦNGHĨA" and "Độc lập- Tự do -Hạnh phúc" are still the motto
    (pattern "text-damage"). "|" separates alternative spellings of one word.
    """
    words = []
    for word in phrase.split():
        if word == "-":
            words.append("-?")
            continue
        options = [r"\s*".join(re.escape(ch) for ch in option) for option in word.split("|")]
        words.append(options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")")
    return r"\s*".join(words)


_MOTTOS = re.compile(
    "|".join(
        _spaced(motto)
        for motto in (
            "CỘNG HÒA|HOÀ XÃ|XÀ HỘI CHỦ NGHĨA VIỆT NAM",
            "ĐỘC LẬP - TỰ DO - HẠNH PHÚC",
            "ĐẢNG CỘNG SẢN VIỆT NAM",
        )
    ),
    re.IGNORECASE,
)
# A draft's stamp in the header: "DỰ THẢO", "(DỰ THẢO)", "DỰ THẢO 2", "Dự thảo lần 3".
_DRAFT_STAMP = re.compile(
    r"\(?\s*DỰ\s+THẢO(?:\s+(?:LẦN\s+)?\d+)?\s*\)?"
    r"|(?m:\(?\s*Dự\s+thảo(?:\s+(?:lần\s+)?\d+)?\s*\)?\s*$)"
)

_COMPONENT = r"[0-9A-Za-zĐđƯưƠơÂâĂăÊêÔôỲỳ&.]+"
_NL = r"[ ]*\n?[ ]*"
_NUMBER = re.compile(
    r"(?<![^\W\d_])Số\s*[:.]?\s*(?:(?P<n>\d{1,6}[a-zA-Z]?)|[.…_]+)?"
    rf"(?P<rest>{_NL}[/-]{_NL}{_COMPONENT}(?:{_NL}[/-]{_NL}{_COMPONENT})*)"
)
# A bare notation, for the subject: "35/2018/QĐ-UBND", "464-QĐ/TU", "123/UBND-VX".
_BARE_NUMBER = re.compile(
    r"(?<![\w/])(?P<n>\d{1,6})(?P<rest>(?:/\d{4})?(?:/[A-ZĐ][A-Za-zĐđ]*(?:-[A-ZĐ][A-Za-zĐđ0-9.]*)+"
    r"|-[A-ZĐ][A-Za-zĐđ]*/[A-ZĐ][A-Za-zĐđ0-9.]*(?:/[A-ZĐ][A-Za-zĐđ0-9.]*)?))(?![\w/-])"
)

_DATE_WORDS = re.compile(
    r"ngày\s*(?P<d>\d{1,2})\s+tháng\s*(?P<m>\d{1,2})\s+năm\s*(?P<y>\d{4})"
    r"|ngày\s*(?P<d2>\d{1,2})\s*[/.-]\s*(?P<m2>\d{1,2})\s*[/.-]\s*(?P<y2>\d{4})",
    re.IGNORECASE,
)

_URGENCY_STAMP = re.compile(
    r"(?<![^\W\d_])(THƯỢNG\s+KHẨN|HỎA\s+TỐC|KHẨN)(?![^\W\d_])(?!\s*(?:TRƯƠNG|CẤP))"
)
_URGENCY_WORD = re.compile(
    r"(?<![^\W\d_])(thượng\s+khẩn|hỏa\s+tốc|khẩn)(?![^\W\d_])(?!\s*(?:trương|cấp))",
    re.IGNORECASE,
)
_URGENCY_LABEL = re.compile(
    r"Độ\s+khẩn\s*:?\s*(Thượng\s+khẩn|Hỏa\s+tốc|Khẩn)(?![^\W\d_])", re.IGNORECASE
)

_VV = re.compile(r"(?<![\w/])V\s*/\s*V(?![^\W\d_])\s*[.:]?\s*", re.IGNORECASE)

_BODY_START = re.compile(
    r"^(?:[-+•]\s*)?(?:Căn\s+cứ|Kính\s+gửi|Thực\s+hiện|Xét\s|Theo\s+đề\s+nghị|Theo\s|"
    r"Điều\s+\d|Chương\s+[IVX\d]|Phần\s+[IVX\d]|[IVX]{1,5}\s*[.\-]\s|\d{1,2}\s*\.\s|[a-zđ]\)\s|"
    r"Ngày\s+\d|Hôm\s+nay|Vào\s+hồi|Trân\s+trọng|Kính\s+mời|Thời\s+gian\s*:|Địa\s+điểm\s*:|"
    r"Thành\s+phần\s*:|Trong\s|Qua\s|Nhằm\s|Để\s|Tiếp\s+theo|Nơi\s+nhận|\(Ban\s+hành|\(Kèm|"
    r"\(Đính\s+kèm|Sau\s+khi|Ngày\s+\d|Năm\s+\d{4},)"
)
_HEADER_STOP = re.compile(
    r"^(?:[-+•]\s*)?(?:Căn\s+cứ|Kính\s+gửi|Thực\s+hiện|Xét\s|Theo\s+đề\s+nghị|Điều\s+1\b|"
    r"Hôm\s+nay|Vào\s+hồi|Trân\s+trọng|Kính\s+mời)"
)
_HARD_STOP = re.compile(
    r"^(?:[-+•]\s*)?(?:Căn\s+cứ|Kính\s+gửi|Điều\s+\d|Chương\s+[IVX\d]|[IVX]{1,5}\s*[.\-]\s|"
    r"Nơi\s+nhận|Xét\s+đề\s+nghị|Theo\s+đề\s+nghị)"
)
_INLINE_STOP = re.compile(
    r"(?<=\S)\s+(?:Căn\s+cứ|Kính\s+gửi|Thực\s+hiện|Theo\s+đề\s+nghị|Xét\s+đề\s+nghị)\b.*$"
)

# The enacting authority under the abstract of a Quyết định / Nghị quyết.
_AUTHORITY = re.compile(
    r"^(?:ỦY\s+BAN|UBND|HỘI\s+ĐỒNG|HĐND|BAN\s+THƯỜNG\s+VỤ|BAN\s+CHẤP\s+HÀNH|BAN\s+BÍ\s+THƯ|"
    r"BỘ\s+CHÍNH\s+TRỊ|THƯỜNG\s+TRỰC|CHỦ\s+TỊCH|GIÁM\s+ĐỐC|BỘ\s+TRƯỞNG|CHÁNH\s+VĂN\s+PHÒNG|"
    r"TRƯỞNG\s+BAN|THỦ\s+TƯỚNG|CHÍNH\s+PHỦ|TỈNH\s+ỦY|THÀNH\s+ỦY|HUYỆN\s+ỦY|QUẬN\s+ỦY|"
    r"THỊ\s+ỦY|ĐẢNG\s+ỦY|CỤC\s+TRƯỞNG|VỤ\s+TRƯỞNG|HIỆU\s+TRƯỞNG|THỦ\s+TRƯỞNG)"
)

_PARENT = re.compile(
    r"^(?:(?:UBND|ỦY\s+BAN\s+NHÂN\s+DÂN|HĐND|HỘI\s+ĐỒNG\s+NHÂN\s+DÂN|ĐẢNG\s+BỘ|BAN\s+CHẤP\s+HÀNH"
    r"(?:\s+ĐẢNG\s+BỘ)?)\s+(?:TỈNH|THÀNH\s+PHỐ|TP\.?|HUYỆN|QUẬN|THỊ\s+XÃ|XÃ|PHƯỜNG|THỊ\s+TRẤN|KHỐI)"
    r"|(?:TỈNH|THÀNH|HUYỆN|QUẬN|THỊ)\s+ỦY|ĐẢNG\s+ỦY\s+KHỐI|BỘ(?!\s+CHỈ\s+HUY)|TỔNG\s+CỤC"
    r"|ỦY\s+BAN\s+MẶT\s+TRẬN\s+TỔ\s+QUỐC(?:\s+VIỆT\s+NAM)?\s+(?:TỈNH|THÀNH\s+PHỐ|HUYỆN))"
    r"(?:\s+(?:-\s+)?[^\W\d_]+){1,5}?"
)
_UNIT = re.compile(
    r"\s(?=(?:SỞ|BAN(?!\s+(?:NHÂN\s+DÂN|CHẤP\s+HÀNH|THƯỜNG\s+VỤ))|VĂN\s+PHÒNG|PHÒNG|CHI\s+CỤC|"
    r"TỔNG\s+CỤC|CỤC|VỤ|VIỆN|TRUNG\s+TÂM|ĐẢNG\s+ỦY|ỦY\s+BAN\s+KIỂM\s+TRA|UBKT|TRƯỜNG|BỆNH\s+VIỆN|CÔNG\s+AN|"
    r"BỘ\s+CHỈ\s+HUY|THANH\s+TRA|KHO\s+BẠC|ĐÀI|BÁO|HỘI|LIÊN\s+ĐOÀN|ĐOÀN|ĐẢNG\s+ĐOÀN|"
    r"BAN\s+CÁN\s+SỰ|CHI\s+BỘ|THƯỜNG\s+TRỰC|UBND|ỦY\s+BAN\s+NHÂN\s+DÂN|HĐND|TỔNG\s+CÔNG\s+TY|CÔNG\s+TY)\s"
    r"|(?:TỈNH|THÀNH|HUYỆN|QUẬN|THỊ)\s+ỦY(?:\s|$))"
)

_TITLE_PREFIX = re.compile(
    r"(?:^|(?<=\s))(?:T\s*/\s*M|T\.\s*M|TM|K\s*/\s*T|KT|T\s*/\s*L|TL|TUQ|Q)(?:\s*[./]\s*|\s+|$)"
)
_POSITION = re.compile(
    r"(?:PHÓ\s+)?(?:CHỦ\s+TỊCH|(?:TỔNG\s+)?GIÁM\s+ĐỐC|BÍ\s+THƯ|CHÁNH\s+VĂN\s+PHÒNG|"
    r"TRƯỞNG\s+(?:BAN|PHÒNG|ĐOÀN|KHOA)|(?:TỔNG\s+CỤC|CỤC|VỤ|BỘ|THỨ|HIỆU|VIỆN|THỦ|CHI\s+CỤC|CHỈ\s+HUY|TỔ)\s+TRƯỞNG|"
    r"CHÁNH\s+(?:THANH\s+TRA|ÁN)|CHỦ\s+NHIỆM|ỦY\s+VIÊN|TỔNG\s+BIÊN\s+TẬP|THƯ\s+KÝ|TRƯỞNG)"
    r"(?:\s+[A-ZĐÂĂÊÔƠƯÀ-Ỹ]+)*$"
)
_NOI_NHAN = re.compile(r"N\s*ơ\s*i\s+n\s*h\s*ậ\s*n\s*:?", re.IGNORECASE)
_SIGNED_NOISE = re.compile(
    r"^[\[(]?\s*(?:đã\s+ký|ký\s+tên|ký,|chữ\s+ký|ký\s+và|ký\s+số|đóng\s+dấu|dấu|/s/|\(?signed)",
    re.IGNORECASE,
)
_SIGNED_BY = re.compile(
    r"(?:Người\s+ký|Ký\s+bởi|Được\s+ký\s+bởi)\s*:\s*(?P<name>[^\n,;:]{4,60})", re.IGNORECASE
)

_SURNAMES = frozenset(
    """Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đinh Đào Đoàn
    Lâm Mai Trịnh Trương Cao Hà Lương Tạ Tô Châu La Lã Vương Quách Triệu Thái Tăng Lại Lưu
    Kiều Khổng Chu Doãn Giáp Nông Hứa Kim Lục Mạc Nghiêm Ông Phùng Quan Thạch Danh Lò Cầm
    Điêu Mùa Giàng Sùng Vàng Thào Lầu Hạng Chảo Tòng Lường Quàng Bế Âu Đàm Đồng Diệp Từ Tôn
    Thân Trang Ninh Nhữ Khúc Mẫn Mè Y Ksor Rơ Siu Nay Đoàn Văn Hầu Tẩn Phùn Sầm Hoàng Lăng
    Triệu Vi Hứa Đậu Nghiêm Khuất Bạch Mạch Phó Thiều Kha Giang Cù Đường Viên Trình""".split()
)
_NOT_NAME_START = frozenset(
    """Nơi Kính Như Đã Ký Căn Điều Chương Ban Sở Ủy Phòng Các Thường Tỉnh Thành Huyện Trân
    Người Cơ Chủ Phó Giám Bộ Cục Trung Hội Lưu Quy Quyết Nghị Thông Báo Kế Tờ Giấy Văn Đảng
    Công Ngày Số Độc Cộng Việt Xã Thị Quận Phường Trưởng Tổng Viện Đài Chi Đoàn Uỷ Hướng""".split()
)


# --------------------------------------------------------------------------- fields


@dataclass
class _Found:
    """Working state while one document is read (private, mutable)."""

    heading_line: int = -1
    heading_type: str = ""
    heading_rest: str = ""
    body_start: int = 0
    header_end: int = 0
    vv_line: int = -1
    abstract_lines: tuple[int, ...] = ()
    authority: str = ""


def _find_heading(doc: _Doc, limit: int) -> tuple[int, str, str]:
    """The type heading ("QUYẾT ĐỊNH", "TỜ TRÌNH" ...): line index, canonical key, rest."""
    for i in range(min(limit, len(doc.lines))):
        line = doc.folded_lines[i].strip()
        if not line or line.endswith(":"):
            continue
        for key in _TYPE_KEYS:
            if line.startswith(key) and (len(line) == len(key) or not line[len(key)].isalpha()):
                rest = line[len(key) :].strip(" .-:")
                if rest and _is_upper(rest) and _AUTHORITY_END.search(rest):
                    continue  # "QUYẾT ĐỊNH ... QUYẾT ĐỊNH" enacting formula, not a heading
                if not rest or rest[0].isupper() or rest[0] in "(":
                    return i, key, doc.lines[i].strip()[len(key) :].strip(" .-:")
        squeezed = line.replace(" ", "")
        if squeezed in _TYPE_KEYS_NOSPACE and _is_upper(line):
            return i, _TYPE_KEYS_NOSPACE[squeezed], ""
        if i + 1 < len(doc.lines) and _is_upper(line):
            joined = (line + " " + doc.folded_lines[i + 1].strip()).strip()
            if joined in _DOC_TYPES:
                return i + 1, joined, ""
    return -1, "", ""


_AUTHORITY_END = re.compile(r"QUYẾT\s+(?:ĐỊNH|NGHỊ)\s*:?$")


def _find_body_start(doc: _Doc, start: int) -> int:
    for i in range(start, min(len(doc.lines), start + 80)):
        if _HEADER_STOP.match(doc.folded_lines[i]):
            return i
    return min(len(doc.lines), start + 30)


def _nonblank_limit(doc: _Doc, count: int) -> int:
    seen = 0
    for i, line in enumerate(doc.lines):
        if line:
            seen += 1
            if seen >= count:
                return i + 1
    return len(doc.lines)


def _parse_number(zone: str) -> tuple[str, str, tuple[int, int] | None]:
    """(number and notation, notation code, span) from the first "Số ..." in zone.

    A blank number ("Số: /TTr-VPCP", "Số ......./2023/QĐ-UBND" in a draft) gives "", and a
    hyphen the text layer lost is put back where the type codes leave one reading only
    ("1961/QĐUBND" -> "1961/QĐ-UBND", "305TB/HU" -> "305-TB/HU").
    """
    match = _NUMBER.search(zone)
    glued = _GLUED_PARTY_NUMBER.search(zone, 0, match.end() if match else len(zone))
    if glued and (not match or glued.start() <= match.start()):
        rest = "-" + glued.group("code") + re.sub(r"\s+", "", glued.group("rest")).rstrip(".")
        return glued.group("n") + rest, rest, glued.span()
    if not match:
        return "", "", None
    rest = _repair_notation(re.sub(r"\s+", "", match.group("rest")).rstrip("."))
    number = match.group("n") or ""
    notation = (number + rest) if number else ""
    return notation, rest, match.span()


# Agency abbreviations that begin with a type code: never split ("HĐND" is not "HĐ-ND").
_CODE_LIKE_AGENCIES = ("HĐND", "HĐBT", "HĐQT", "HĐTV", "BCĐ", "KHĐT", "TTCP", "CTN", "TCT",
                       "TCHQ", "TTTT", "BCA", "BCT", "BCY")  # fmt: skip
_CODES_BY_LENGTH = sorted(_TYPE_CODES, key=len, reverse=True)
_GLUED_PARTY_NUMBER = re.compile(
    r"(?<![^\W\d_])Số\s*[:.]?\s*(?P<n>\d{1,6})(?P<code>"
    + "|".join(re.escape(code) for code in _CODES_BY_LENGTH)
    + rf")(?P<rest>/{_COMPONENT}(?:/{_COMPONENT})*)"
)


def _repair_notation(rest: str) -> str:
    """Put back the hyphen between type code and issuer in "/QĐUBND" when only one fits."""
    if "-" in rest:
        return rest
    parts = rest.split("/")
    for k, part in enumerate(parts):
        if not part or part.isdigit():
            continue
        if part.startswith(_CODE_LIKE_AGENCIES):
            return rest
        splits = [
            (code, part[len(code) :])
            for code in _TYPE_CODES
            if part.startswith(code)
            and len(part) - len(code) >= 3
            and part[len(code)].isupper()
            and part[len(code) :].isalnum()
        ]
        if len(splits) == 1:
            parts[k] = "-".join(splits[0])
            return "/".join(parts)
        return rest
    return rest


def _type_from_notation(notation: str) -> str:
    """Document type from the abbreviation in a notation; "Công văn" when it has none."""
    if not notation:
        return ""
    body = notation.lstrip("0123456789")
    if body.startswith("-"):  # Party style: 464-QĐ/TU, 123-CV/TU
        code = body[1:].split("/", 1)[0]
        return _TYPE_CODES.get(code, "")
    parts = [p for p in body.split("/") if p and not p.isdigit()]
    if not parts:
        return ""
    head = parts[0].split("-", 1)
    if len(head) == 2 and head[0] in _TYPE_CODES:
        return _TYPE_CODES[head[0]]
    return "Công văn"  # 123/UBND-VX: a công văn carries no type code


def _make_date(day: str, month: str, year: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _parse_issued(zone: str) -> tuple[date | None, str, tuple[int, int] | None]:
    """(date, place, span) from "<Place>, ngày 05 tháng 12 năm 2018" in zone."""
    first: tuple[date | None, str, tuple[int, int] | None] = (None, "", None)
    for count, match in enumerate(_DATE_WORDS.finditer(zone)):
        if count >= 20:
            break
        if match.group("d"):
            found = _make_date(match.group("d"), match.group("m"), match.group("y"))
        else:
            found = _make_date(match.group("d2"), match.group("m2"), match.group("y2"))
        if found is None:
            continue
        place, start = _place_before(zone, match.start())
        if place:
            return found, place, (start, match.end())
        if first[0] is None:
            first = (found, "", match.span())
    if first[0] is None:  # a draft: "Hà Nội, ngày    tháng    năm 2024" still names the place
        for count, match in enumerate(_BLANK_DATE.finditer(zone)):
            if count >= 5:
                break
            place, start = _place_before(zone, match.start())
            if place:
                return None, place, (start, match.end())
    return first


# The date line of a draft, day and month left blank (pattern "draft").
_BLANK_DATE = re.compile(
    r"ngày[\s.…_]*tháng[\s.…_]*(?:\d{1,2}\s*)?năm\s*(?:\d{4}|[.…_]+)", re.IGNORECASE
)


# Lowercase words inside a place name: "Thành phố Hồ Chí Minh", "Thị xã Sơn Tây".
_PLACE_INNER = {"phố": "Thành", "xã": "Thị", "trấn": "Thị"}
_PLACE_ABBREVIATIONS = ("TP", "Tp", "TX", "Tx", "TT")


def _place_word(word: str) -> bool:
    """A capitalised word of a place name: "Nông", "Rang-Tháp", "R'Lấp", "TP."."""
    bare = word[:-1] if word.endswith(".") else word
    if bare in _PLACE_ABBREVIATIONS:
        return True
    if word.endswith("."):
        return False  # a full stop ends a sentence, never a place name
    parts = re.split("[-'\u2019]", bare)
    if not all(p.isalpha() and (len(p) == 1 or p[1:].islower()) for p in parts):
        return False
    return parts[0][:1].isupper() and all(p[0].isupper() for p in parts[1:] if "-" in bare)


def _place_before(zone: str, pos: int) -> tuple[str, int]:
    """The place name ("Đắk Nông", "Phan Rang-Tháp Chàm") ending with a comma before pos.

    A place never spans a full stop, nor a line break unless a two-word name was broken in
    two ("Đắk" / "Nông, ngày ..."): the last words of an abstract right above the place and
    date line ("... với LB Nga", "... Liên bang / Đức") stay in it (pattern "place-line").
    """
    offset = max(0, pos - 80)  # a place name is a few words; never rescan the whole zone
    head = zone[offset:pos].rstrip()
    if not head.endswith(","):
        return "", pos
    body = head[:-1]
    line_start = body.rfind("\n") + 1
    above_start = body.rfind("\n", 0, max(0, line_start - 1)) + 1
    above = body[above_start : line_start - 1] if line_start else ""
    words = body[line_start:].split()
    if above and " " not in above.strip() and _place_word(above.strip()) and len(words) == 1:
        words = [above.strip(), *words]  # the extractor broke the place name itself
    taken: list[str] = []
    for word in reversed(words):
        if len(taken) >= 6:
            break
        if word == "-" and taken:  # "Bà Rịa - Vũng Tàu"
            taken.append(word)
            continue
        if _PLACE_INNER.get(word) and taken:
            taken.append(word)
            continue
        if not _place_word(word):
            break
        taken.append(word)
    while taken and (taken[-1] == "-" or taken[-1] in _PLACE_INNER):
        taken.pop()
    if not taken:
        return "", pos
    taken.reverse()
    for k, word in enumerate(taken):  # a lowercase inner word needs its head word
        if word in _PLACE_INNER and (k == 0 or taken[k - 1] != _PLACE_INNER[word]):
            taken = taken[k + 1 :]
    if not taken:
        return "", pos
    place = " ".join(taken)
    start = offset + head.rfind(taken[0], 0, len(head) - 1 - len(" ".join(taken[1:])))
    return place, start


def _stamp_urgency(doc: _Doc, zone_end: int, limit: int) -> tuple[str, str]:
    """Urgency from a stamp in the header zone or a stamp line before the body."""
    best = ""
    zone = "\n".join(doc.folded_lines[:zone_end])
    for match in _URGENCY_STAMP.finditer(zone):
        best = _stricter(best, _canonical_urgency(match.group(1)))
    for i in range(zone_end, min(limit, len(doc.lines))):
        line = doc.folded_lines[i].strip(" []()*!:")
        if line and _URGENCY_STAMP.fullmatch(line):
            best = _stricter(best, _canonical_urgency(line))
    for match in _URGENCY_LABEL.finditer("\n".join(doc.folded_lines[:limit])):
        best = _stricter(best, _canonical_urgency(match.group(1)))
    return best, ("header" if best else "")


def _canonical_urgency(word: str) -> str:
    key = _collapse(fold_tones(word)).lower()
    return {"khẩn": "Khẩn", "thượng khẩn": "Thượng khẩn", "hỏa tốc": "Hỏa tốc"}.get(key, "")


def _stricter(a: str, b: str) -> str:
    return a if URGENCY_LEVELS.index(a) >= URGENCY_LEVELS.index(b) else b


_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|tl|tr|trả\s+lời|chuyển\s+tiếp|aw|wg)\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)


def urgency_from_subject(subject: str) -> str:
    """Urgency named in a mail subject ("[HỎA TỐC] ...", "Khẩn: V/v ..."), or ""."""
    text = fold_tones(unicodedata.normalize("NFC", subject or ""))
    text = _SUBJECT_PREFIX.sub("", text)
    best = ""
    for match in _URGENCY_WORD.finditer(text):
        best = _stricter(best, _canonical_urgency(match.group(1)))
    return best


def urgency_from_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[str, str]:
    """("Khẩn", header name) when Priority, X-Priority or Importance says urgent."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        key = name.strip().lower()
        val = str(value).strip().lower()
        if key == "priority" and val.startswith("urgent"):
            return "Khẩn", name
        if key == "x-priority" and val[:1] in ("1", "2"):
            return "Khẩn", name
        if key in ("importance", "x-msmail-priority") and val.startswith("high"):
            return "Khẩn", name
    return "", ""


def _vv_abstract(
    doc: _Doc,
    start: int,
    stop: int,
    zone_end: int,
    blank: Sequence[tuple[int, int]] = (),
    about: bool = False,
) -> tuple[int, str]:
    """The "V/v ..." abstract of a công văn: its line and the joined text.

    With ``about``, a line opening with "Về việc" / "VỀ VIỆC" is an abstract too (a
    document with no type heading, pattern "abstract-forms"); its text keeps that lead.

    Lines before zone_end ("Kính gửi") that are neither uppercase (mottos, stamps) nor
    the place and date continue the abstract; after it only wrapped lines do.
    """
    lines = _mask(doc.text, blank).split("\n") if blank else doc.lines
    lines = [_collapse(line) for line in lines]
    for i in range(start, stop):
        line = lines[i]
        match = _VV.search(line)
        lead = "V/v "
        if not match and about and i < zone_end:  # never a sentence of the body
            match = _ABOUT.match(line)
            lead = match.group(0).strip() + " " if match else ""
        if not match or "Căn cứ" in line[: match.start()]:
            continue
        parts = [_strip_date(line[match.end() :])]
        prev = parts[0]
        for j in range(i + 1, min(stop + 3, len(lines), i + 8)):
            nxt = lines[j]
            if not nxt:
                continue
            if not any(parts):  # "V/v" alone on its line, ": text" on the next
                nxt = nxt.lstrip(" :.-")
                if not nxt:
                    continue
            if _is_date_line(nxt) or _MOTTOS.fullmatch(nxt.strip()) or nxt == "---":
                continue
            if _BODY_START.match(nxt) or _HEADER_STOP.match(nxt) or _LEVEL_LABEL.match(nxt):
                break
            in_zone = j < zone_end and not _is_upper(nxt, 0.8) and not nxt.startswith("Số")
            if in_zone or _is_continuation(prev, nxt):
                parts.append(_strip_date(nxt))
                prev = nxt
                continue
            break
        text = _collapse(" ".join(parts))
        text = _INLINE_STOP.sub("", text).strip()
        return i, (lead + text) if text else ""
    return -1, ""


# "Độ mật: ...", "Độ khẩn: ..." lines of the header end the abstract above them
_LEVEL_LABEL = re.compile(r"^Độ\s+(?:mật|khẩn)\s*:", re.IGNORECASE)

# "Về việc ..." / "VỀ VIỆC ..." opening a line under the header, with no type heading above
_ABOUT = re.compile(r"(?:Về\s+việc|VỀ\s+VIỆC)(?![^\W\d_])\s*:?\s*")


def _strip_date(line: str) -> str:
    """The line without a "<Place>, ngày ..." issuing date merged into it.

    A date with no place before it ("Chỉ thị số 1971/CT-TTg ngày 7/11/2011 của ...") is
    part of the abstract and stays (pattern "abstract-dates").
    """
    for match in _DATE_WORDS.finditer(line):
        place, start = _place_before(line, match.start())
        if place:
            return (line[:start] + line[match.end() :]).strip()
    return line


def _is_date_line(line: str) -> bool:
    match = _DATE_WORDS.search(line)
    if not match:
        return bool(re.fullmatch(r"[^\W\d_ ][^,]{1,30},\s*ngày\b.*", line.strip()))
    _, start = _place_before(line, match.start())
    return not line[:start].strip() and not line[match.end() :].strip()


_CONNECTOR_END = re.compile(
    r"(?:\b(?:cho|của|và|về|tại|với|trên|đối\s+với|các|những|thuộc|giữa|theo|đến|từ|trong|"
    r"để|tỉnh|huyện|xã|thành\s+phố|phường|quận|năm|giai\s+đoạn|việc|dự\s+án|công\s+trình|"
    r"kế\s+hoạch|tháng|đợt|ngày|số|lĩnh\s+vực)|[,\-–])$"
)


def _is_continuation(prev: str, line: str) -> bool:
    """Does line continue the abstract that ended with prev (a wrapped line)?"""
    first = line[0]
    if first.islower() or first.isdigit() or first in "(\"“'":
        return True
    if prev and prev[-1] in ".;:!?":
        return False
    if _is_upper(prev) and _is_upper(line):
        return not _AUTHORITY.match(fold_tones(line))
    return bool(_CONNECTOR_END.search(prev.rstrip()))


def _heading_abstract(doc: _Doc, found: _Found, agency: str) -> str:
    """The abstract under a type heading, until the body, a rule or the authority line."""
    parts: list[str] = []
    if found.heading_rest:
        parts.append(found.heading_rest)
    prev = found.heading_rest
    lines_taken = 0
    run_end = _abstract_run_end(doc, found.heading_line + 1)
    for i in range(found.heading_line + 1, min(len(doc.lines), found.heading_line + 14)):
        line = doc.lines[i]
        folded = doc.folded_lines[i]
        if not line:
            continue
        if line == "---" or _HARD_STOP.match(folded):
            break
        if parts and (
            _BODY_START.match(folded) or _HEADER_STOP.match(folded) or line.endswith(":")
        ):
            break
        if _is_upper(line) and (
            _AUTHORITY.match(folded) or (agency and _collapse(folded).startswith(agency))
        ):
            if not parts or not _is_upper(prev) or _AUTHORITY.match(folded):
                found.authority = _authority_lines(doc, i)
                break
        if parts and i >= run_end and not _is_continuation(prev, line):
            break
        parts.append(line)
        prev = line
        lines_taken += 1
        if lines_taken >= 6:
            break
    text = _collapse(" ".join(parts))
    text = _INLINE_STOP.sub("", text).strip()
    return text.rstrip(" -")


_ABSTRACT_LINE = 120  # a line of a centred abstract; body paragraphs run the page's width


def _abstract_run_end(doc: _Doc, first: int) -> int:
    """The line that ends a multi-line abstract under a heading, or -1 (pattern "abstract-forms").

    An abstract may run over several lines, each starting with a capital ("Kết quả ... /
    Sáu tháng đầu năm 2022 / Phương hướng ..."), until the "Căn cứ" or "Kính gửi" line, a
    rule or the enacting authority. That holds only when every line before that end is short
    and none ends a sentence; otherwise the wrapped-line test alone decides.
    """
    taken = 0
    for i in range(first, min(len(doc.lines), first + 9)):
        line, folded = doc.lines[i], doc.folded_lines[i]
        if not line:
            continue
        if (
            line == "---"
            or _HARD_STOP.match(folded)
            or _HEADER_STOP.match(folded)
            or _BODY_START.match(folded)
            or (_AUTHORITY.match(folded) and _is_upper(line))
        ):
            return i if taken else -1
        if len(line) > _ABSTRACT_LINE or line[-1] in ".;:!?" or taken >= 6 or _is_upper(line):
            return -1
        taken += 1
    return -1


def _authority_lines(doc: _Doc, i: int) -> str:
    """The enacting authority, possibly broken over lines ("ỦY BAN NHÂN / DÂN TỈNH ...")."""
    parts = [doc.lines[i]]
    for j in range(i + 1, min(i + 3, len(doc.lines))):
        nxt = doc.lines[j]
        if nxt and _is_upper(nxt) and not _HEADER_STOP.match(nxt) and not nxt.endswith(":"):
            parts.append(nxt)
        else:
            break
    return _collapse(" ".join(parts))


def _mask(zone: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(zone)
    for start, end in spans:
        for k in range(start, end):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def _parse_agency(
    doc: _Doc, zone_end: int, remove: list[tuple[int, int]], number_span: tuple[int, int] | None
) -> tuple[str, str]:
    """(issuing agency, parent agency) from the uppercase lines of the header zone."""
    zone = "\n".join(doc.folded_lines[:zone_end])
    spans = list(remove)
    spans += [m.span() for m in _MOTTOS.finditer(zone)]
    spans += [m.span() for m in _DRAFT_STAMP.finditer(zone)]
    spans += [m.span() for m in _URGENCY_STAMP.finditer(zone)]
    for match in _VV.finditer(zone):
        end = zone.find("\n", match.start())
        spans.append((match.start(), end if end >= 0 else len(zone)))
    masked = _mask(zone, spans)
    original = _mask("\n".join(doc.lines[:zone_end]), spans)  # same length as masked
    cut = number_span[0] if number_span else len(masked)
    pieces = _upper_pieces(masked[:cut])
    kept = _upper_pieces(original[:cut])
    if not pieces and number_span:
        pieces = _upper_pieces(masked[number_span[1] :])
        kept = _upper_pieces(original[number_span[1] :])
    if not pieces:
        return "", ""
    joined = _collapse(" ".join(pieces)).strip(" -*.,")
    printed = _collapse(" ".join(kept)).strip(" -*.,")
    if len(printed) != len(joined) or len(kept) != len(pieces):
        printed, kept = joined, pieces
    return _split_levels(joined, printed, pieces, kept)


def _upper_pieces(text: str) -> list[str]:
    pieces: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip(" -*.,:|")
        if not line or line == "---" or len(line) > MAX_HEADER_LINE:
            continue
        if _is_upper(line, 0.85) and not _DATE_WORDS.search(line):
            pieces.append(line)
    return pieces


def _split_levels(
    folded: str, original: str, lines: Sequence[str] = (), printed: Sequence[str] = ()
) -> tuple[str, str]:
    """Split "UBND TỈNH ĐẮK NÔNG SỞ TÀI CHÍNH" into (issuer, parent)."""
    for k in range(1, len(lines)):
        head = _collapse(" ".join(lines[:k]))
        if _PARENT.fullmatch(head) and _UNIT.match(" " + lines[k] + " "):
            return _collapse(" ".join(printed[k:])), _collapse(" ".join(printed[:k]))
    # header lines are whole names: "BỘ NÔNG NGHIỆP / VÀ PHÁT TRIỂN NÔNG THÔN / TỔNG CỤC
    # THỦY LỢI" splits between lines, never inside "TỔNG CỤC" (pattern "agency-keyword")
    for k in range(1, len(lines)):
        head = _collapse(" ".join(lines[:k]))
        if _PARENT.match(head) and _UNIT.match(" " + lines[k] + " "):
            return _collapse(" ".join(printed[k:])), _collapse(" ".join(printed[:k]))
    parent = _PARENT.match(folded)
    if parent:
        for unit in _UNIT.finditer(folded, parent.end() - 1):
            cut = unit.start()
            if cut >= len(parent.group(0).split()[0]) + 2:
                return original[cut + 1 :].strip(), original[:cut].strip()
    return original, ""


# --------------------------------------------------------------------------- signer


def _name_of(segment: str, strict: bool) -> str:
    """A person's name if segment is one (or, in a merged line, ends with one)."""
    text = segment.strip(" .,;:*")
    if not text:
        return ""
    words = text.split()
    if _is_upper(text) and 2 <= len(words) <= 5:
        cap = [w.capitalize() for w in words]
        if cap[0] in _SURNAMES and all(w.isalpha() for w in words):
            return " ".join(cap)
        return ""
    if 2 <= len(words) <= 6 and all(_name_word(w) for w in words):
        if words[0] in _SURNAMES or (not strict and words[0] not in _NOT_NAME_START):
            return " ".join(words)
        return ""
    # merged line: "- Lưu: VT, TH.   Nguyễn Văn An" -> trailing run of name words
    tail: list[str] = []
    for word in reversed(words):
        if _name_word(word) and len(tail) < 5:
            tail.append(word)
        else:
            break
    tail.reverse()
    while tail and tail[0] not in _SURNAMES:
        tail.pop(0)
    if len(tail) >= 2:
        return " ".join(tail)
    return ""


def _name_word(word: str) -> bool:
    bare = word.replace("'", "").replace("-", "")
    if not bare.isalpha() or not bare[0].isupper():
        return False
    return len(bare) == 1 or bare[1:].islower()


def _title_in(folded: str) -> str:
    """The title part of a signature line ("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH"), or ""."""
    text = folded.strip(" *")
    if not text:
        return ""
    for match in _TITLE_PREFIX.finditer(text):
        rest = text[match.end() :].strip()
        if not rest or (_is_upper(rest) and not _NOI_NHAN.search(rest)):
            return text[match.start() :].strip()
    position = _POSITION.search(text)
    if position and _is_upper(position.group(0)) and len(position.group(0).split()) <= 6:
        before = text[: position.start()]
        if not before.strip() or not before.rstrip()[-1:].isalpha() or not _is_upper(before, 0.5):
            return position.group(0).strip()
    return ""


def _find_recipients(doc: _Doc, start: int) -> int:
    """Index of the first "Nơi nhận:" line at or after start, or -1."""
    lines = doc.lines
    for i in range(start, len(lines)):
        line = lines[i]
        if line.startswith("Nơi") and _NOI_NHAN.match(line):
            return i
        if line == "Nơi" and i + 1 < len(lines) and lines[i + 1].lower().startswith("nhận"):
            return i
    return -1


def _parse_signer(doc: _Doc, start: int, nn: int) -> tuple[str, str, str]:
    """(signer, signer title, where) from the signature block after line start.

    ``nn`` is the "Nơi nhận" line (-1 when none): the block sits around it.
    """
    if nn >= 0:
        lo, hi = max(start, nn - 15), min(len(doc.lines), nn + 60)
    else:  # no recipients' list: the block ends the document
        lo, hi = max(start, len(doc.lines) - 80), len(doc.lines)
    end = min(len(doc.lines), hi + 5)
    block = _signature_block(doc.lines[lo:end], doc.folded_lines[lo:end])
    found = _titled_signer(block, hi - lo)
    if found:
        return found[0], found[1], "signature"
    match = _SIGNED_BY.search(doc.text)
    if match:
        name = _name_of(match.group("name"), strict=False)
        if name:
            return name, "", "signature"
    name = _marked_signer(block)
    if name:
        return name, "", "signature"
    if nn >= 0:  # no titles at all (seed 000): the last name under the recipients
        lines = doc.lines
        for j in range(min(len(lines), nn + 40) - 1, nn, -1):
            name = _name_of(lines[j], strict=True) if not lines[j].startswith("-") else ""
            if name:
                return name, "", "signature"
    return "", "", ""


@dataclass(frozen=True)
class _Block:
    """The lines of a signature block, tidied: glued names split off, "(Đã ký)" removed."""

    lines: tuple[str, ...]
    folded: tuple[str, ...]
    signed: tuple[bool, ...]  # the line carried, or sits right under, a "(Đã ký)" marker


# "(Đã ký)", "(đã ký)", "Đã ký", "[Đã ký]", "(Đã ký và đóng dấu)" beside a name or alone
_SIGNED_MARK = re.compile(
    r"[\[(]?\s*đã\s+ký(?:\s+(?:số|tên|và\s+đóng\s+dấu))?\s*[\])]?", re.IGNORECASE
)


def _signature_block(raw: Sequence[str], raw_folded: Sequence[str]) -> _Block:
    """Lines as printed become lines to read (pattern "signature").

    "CHÁNH VĂN PHÒNGThái Hữu Phép" (title and name glued by the text layer) becomes two
    lines; a signed marker beside a name ("Tố Hữu (Đã ký)") is taken off and remembered.
    """
    lines: list[str] = []
    folded: list[str] = []
    signed: list[bool] = []
    marker_above = False
    for line, line_folded in zip(raw, raw_folded, strict=True):
        mark = _SIGNED_MARK.search(line) if ("ký" in line or "KÝ" in line) else None
        if mark and not _SIGNED_MARK.sub("", line).strip(" .,;:"):
            marker_above = True  # a line of its own: it marks the name below
            lines.append(line)
            folded.append(line_folded)
            signed.append(False)
            continue
        if mark and (mark.start() == 0 or mark.end() == len(line)):
            line = _collapse(_SIGNED_MARK.sub(" ", line))
            line_folded = fold_tones(line)
            is_signed = True
        else:
            is_signed = marker_above and bool(line)
        if line:
            marker_above = False
        pieces = _unglue_name(line)
        lines.extend(pieces)
        folded.extend([line_folded] if len(pieces) == 1 else [fold_tones(p) for p in pieces])
        signed.extend([is_signed] * len(pieces))
    return _Block(tuple(lines), tuple(folded), tuple(signed))


_UPPER = "".join(
    ch
    for ch in map(chr, [*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)])
    if ch.isupper()
)
_LOWER = "".join(ch.lower() for ch in _UPPER if ch.lower() != ch)
# an uppercase word running straight into a capitalised one: "PHÒNGThái"
_GLUED_NAME = re.compile(f"[{_UPPER}]{{2}}(?=[{_UPPER}][{_LOWER}])")


def _unglue_name(line: str) -> tuple[str, ...]:
    """("CHÁNH VĂN PHÒNG", "Thái Hữu Phép") from "CHÁNH VĂN PHÒNGThái Hữu Phép"."""
    if len(line) > 90:  # a title and a name: a short line
        return (line,)
    for match in _GLUED_NAME.finditer(line):
        cut = match.end()
        if _name_of(line[cut:], strict=True):
            return line[:cut].rstrip(), line[cut:]
    return (line,)


def _titled_signer(block: _Block, hi: int) -> tuple[str, str] | None:
    """(name, title) of a block "KT. CHỦ TỊCH / PHÓ CHỦ TỊCH / name", or None."""
    lines, folded = block.lines, block.folded
    i = 0
    while i < min(hi, len(lines)):
        title = (
            _title_in(folded[i]) if not _BODY_START.match(folded[i]) or "Nơi" in folded[i] else ""
        )
        if not title or (len(lines[i]) > 90 and not _TITLE_PREFIX.search(folded[i])):
            i += 1
            continue
        titles = [title]
        for j in range(i + 1, min(hi + 5, len(lines), i + 16)):
            line = lines[j]
            if not line or line == "---" or _SIGNED_NOISE.match(line):
                continue
            if _HARD_STOP.match(folded[j]) and not _NOI_NHAN.match(line):
                break
            if len(line) > 90 and not line.startswith(("-", "+", "•")):
                break
            more = _title_in(folded[j])
            if more and not line.startswith(("-", "+", "•")):
                titles.append(more)
                continue
            if _is_upper(line) and not _name_of(line, strict=True) and len(titles) < 4:
                if not line.startswith(("-", "+")):
                    titles.append(line)
                    continue
            strict = line.startswith(("-", "+", "•")) or "Nơi" in line
            name = _name_of(line, strict=strict and not block.signed[j])
            if name:
                return _wrapped_name(name, lines, j), _collapse(" ".join(titles))
            if more:
                titles.append(more)
        i += 1
    return None


def _wrapped_name(name: str, lines: Sequence[str], j: int) -> str:
    """The name with its last word when the text layer wrapped it ("Nguyễn Khắc" / "Định")."""
    for k in range(j + 1, min(len(lines), j + 3)):
        nxt = lines[k].strip(" .")
        if not nxt:
            continue
        words = name.split()
        if (
            " " not in nxt
            and _name_word(nxt)
            and nxt not in _NOT_NAME_START
            and len(words) < 4
            and name == lines[j].strip(" .")[-len(name) :]
        ):
            return f"{name} {nxt}"
        break
    return name


def _marked_signer(block: _Block) -> str:
    """The name beside a signed marker when the block has no title ("Tố Hữu (Đã ký)")."""
    for k in range(len(block.lines) - 1, -1, -1):
        if block.signed[k]:
            name = _name_of(block.lines[k], strict=False)
            if name:
                return name
    return ""


# --------------------------------------------------------------------------- deadline

_DL_DATE = (
    r"(?P<d>\d{1,2})\s*[/.-]\s*(?P<m>\d{1,2})(?:\s*[/.-]\s*(?P<y>\d{4}))?(?![/\d])"
    r"|(?P<d2>\d{1,2})\s+tháng\s+(?P<m2>\d{1,2})(?:\s+năm\s+(?P<y2>\d{4}))?"
)
_DL_TIME = r"(?:\d{1,2}\s*(?:giờ|h|g)\s*(?:\d{1,2}\s*(?:phút|p|')?)?\s*,?\s*)?"
_DEADLINE = re.compile(
    r"(?:(?:trước|chậm\s+nhất(?:\s+là)?|không\s+muộn\s+hơn|hạn\s+chót(?:\s+là)?|"
    r"hạn\s+cuối(?:\s+là)?|đến\s+hết)\s+" + _DL_TIME + r"(?:ngày\s*:?\s*)(?:" + _DL_DATE + r")"
    r"|(?<![^\W\d_])(?:thời\s+hạn|hạn)(?:\s+(?:xử\s+lý|giải\s+quyết|hoàn\s+thành|báo\s+cáo|trả\s+lời|gửi|nộp|"
    r"góp\s+ý|đăng\s+ký))?(?:\s+[^\W\d][^.;:\n]{0,40}?\s*:|\s*(?:là|:)?)\s*(?:trước\s+)?"
    + _DL_TIME
    + r"(?:ngày\s*:?\s*)?"
    r"(?:"
    + _DL_DATE.replace("?P<d>", "?P<d3>")
    .replace("?P<m>", "?P<m3>")
    .replace("?P<y>", "?P<y3>")
    .replace("?P<d2>", "?P<d4>")
    .replace("?P<m2>", "?P<m4>")
    .replace("?P<y2>", "?P<y4>")
    + r"))",
    re.IGNORECASE,
)


_DEADLINE_KEY = re.compile(r"trước|chậm|không\s+muộn|hạn|đến\s+hết", re.IGNORECASE)


def _deadline_matches(text: str) -> list[re.Match[str]]:
    """_DEADLINE matches, tried only where one of its keywords starts (much faster)."""
    out: list[re.Match[str]] = []
    end = 0
    for key in _DEADLINE_KEY.finditer(text):
        if key.start() < end:
            continue
        match = _DEADLINE.match(text, key.start())
        if match:
            out.append(match)
            end = match.end()
    return out


def _parse_deadline(text: str, issued: date | None) -> date | None:
    found: list[date] = []
    for match in _deadline_matches(text):
        groups = match.groupdict()
        for d, m, y in (
            ("d", "m", "y"),
            ("d2", "m2", "y2"),
            ("d3", "m3", "y3"),
            ("d4", "m4", "y4"),
        ):
            if groups.get(d):
                day, month, year = groups[d], groups[m], groups.get(y)
                break
        else:
            continue
        if not year:
            if issued is None:
                continue
            guess = _make_date(day, month, str(issued.year))
            if guess is not None and guess < issued:
                guess = _make_date(day, month, str(issued.year + 1))
            value = guess
        else:
            value = _make_date(day, month, year)
        if value is None or (issued is not None and value < issued):
            continue
        found.append(value)
    return min(found) if found else None


# --------------------------------------------------------------------------- entry point


def extract_metadata(
    text: str,
    subject: str = "",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    attachments: Sequence[str] = (),
) -> DocumentMetadata:
    """Read the metadata of one official document.

    ``text`` is the extracted text of the main document (or the mail body when there
    is no attachment); ``subject`` and ``headers`` are the mail's; ``attachments``
    are the file names to record. Never raises on odd input; fields not found stay
    empty ("" or None).
    """
    doc = _Doc(text or "")
    sources: dict[str, str] = {}
    found = _Found()

    limit = _nonblank_limit(doc, _HEADER_LINES)
    body_start = _find_body_start(doc, 0)
    found.heading_line, found.heading_type, found.heading_rest = _find_heading(
        doc, min(limit, body_start if body_start > 0 else limit)
    )
    if found.heading_line < 0 and body_start < limit:
        # the heading may follow a "Căn cứ" that only the merged header contains
        found.heading_line, found.heading_type, found.heading_rest = -1, "", ""
    header_end = found.heading_line if found.heading_line >= 0 else min(body_start, limit)
    found.header_end = header_end
    zone = "\n".join(doc.folded_lines[:header_end])

    number, notation, number_span = _parse_number(zone)
    if number:
        sources["number_notation"] = "header"
    issued, place, date_span = _parse_issued(zone)
    if issued:
        sources["issued_date"] = "header"
    if place and date_span:  # as printed ("Thanh Hoá"), like the agency
        place = _collapse(doc.text[date_span[0] : date_span[0] + len(place)])
        sources["issued_place"] = "header"

    remove = [s for s in (number_span, date_span) if s]
    agency, parent = _parse_agency(doc, header_end, remove, number_span)

    vv_text = ""
    if found.heading_line < 0:
        _, vv_text = _vv_abstract(
            doc,
            0,
            min(len(doc.lines), max(body_start, 1) + 2, limit),
            body_start,
            remove,
            about=bool(number_span or date_span),
        )

    doc_type, abstract = "", ""
    if found.heading_line >= 0:
        doc_type = _DOC_TYPES[found.heading_type]
        sources["doc_type"] = "heading"
        abstract = _heading_abstract(doc, found, fold_tones(agency))
        if abstract:
            sources["abstract"] = "heading"
    elif vv_text.startswith("V/v"):
        doc_type, abstract = "Công văn", vv_text
        sources["doc_type"] = sources["abstract"] = "header"
    elif vv_text:  # "Về việc ..." with no heading: the type is the notation's
        abstract = vv_text
        sources["abstract"] = "header"
        doc_type = _type_from_notation(notation)
        if doc_type:
            sources["doc_type"] = "header"
    elif notation:
        doc_type = _type_from_notation(notation)
        if doc_type:
            sources["doc_type"] = "header"

    if agency:
        sources["issuing_agency"] = "header"
    elif found.authority:
        agency = found.authority
        sources["issuing_agency"] = "heading"

    subject_clean = _SUBJECT_PREFIX.sub("", unicodedata.normalize("NFC", subject or "")).strip()
    if not number and subject_clean:
        match = _BARE_NUMBER.search(subject_clean)
        if match:
            number = match.group(0)
            sources["number_notation"] = "subject"
            if not doc_type:
                doc_type = _type_from_notation(number)
                if doc_type:
                    sources["doc_type"] = "subject"
    if not abstract and subject_clean:
        match = _VV.search(subject_clean)
        if match:
            rest = _collapse(subject_clean[match.end() :])
            if rest:
                abstract = "V/v " + rest
                sources["abstract"] = "subject"

    urgency, where = _stamp_urgency(doc, header_end, max(body_start, header_end) + 4)
    if urgency:
        sources["urgency"] = where
    by_subject = urgency_from_subject(subject)
    if by_subject and _stricter(urgency, by_subject) != urgency:
        urgency = by_subject
        sources["urgency"] = "subject"
    by_header, header_name = urgency_from_headers(headers)
    if by_header and _stricter(urgency, by_header) != urgency:
        urgency = by_header
        sources["urgency"] = "mail-header:" + header_name

    sign_from = header_end
    recipients = _find_recipients(doc, sign_from)
    signer, signer_title, where = _parse_signer(doc, sign_from, recipients)
    if signer:
        sources["signer"] = where

    # the body of the document itself: annexes after the recipients state no deadline for us
    body_end = doc.offset(recipients) if recipients >= 0 else len(doc.text)
    body_text = _collapse(doc.text[doc.offset(sign_from) : body_end])
    deadline = _parse_deadline(body_text, issued)
    if deadline:
        sources["deadline"] = "body"

    names = tuple(unicodedata.normalize("NFC", n) for n in attachments if n)
    if names:
        sources["attachments"] = "caller"

    return DocumentMetadata(
        issuing_agency=agency,
        parent_agency=parent,
        number_notation=number,
        issued_date=issued,
        issued_place=place,
        doc_type=doc_type,
        abstract=abstract,
        urgency=urgency,
        signer=signer,
        signer_title=signer_title,
        deadline=deadline,
        attachments=names,
        sources=tuple(sources.items()),
    )
