"""Text out of one file: PDF (pypdfium2, pypdf fallback), OOXML (DOCX/XLSX/PPTX), ODF, HTML.

Pure functions over bytes, run inside a worker process by :mod:`mailsvc.documents.extract`.
Every reader is bounded: page, member-size and text-length caps come from the caller, XML
with a DTD is refused (no entity expansion), zip members are read in counted chunks.
Failures raise :class:`UnreadableDocument` with a stable ``kind``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import itertools
import logging
import mimetypes
import posixpath
import re
import struct
import threading
import unicodedata
import urllib.parse
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailsvc.documents.ocr import Ocr

import compressed_rtf
import defusedxml.ElementTree as defused_et
import msoffcrypto
import olefile
import tnefparse
from defusedxml import DefusedXmlException
from striprtf.striprtf import rtf_to_text

#: Failure kinds, stable strings used by policies (``classification.yaml: unreadable``).
CORRUPT = "corrupt"
ENCRYPTED = "encrypted"
TOO_LARGE = "too-large"
TIMEOUT = "timeout"
UNSUPPORTED = "unsupported"


class UnreadableDocument(Exception):
    """A document whose text could not be read; ``kind`` is one of the constants above."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class EmbeddedFile:
    """A file carried inside another one (PDF attachment)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class FileText:
    """What one file yielded: its text, document properties and embedded files."""

    text: str
    properties: tuple[tuple[str, str], ...] = ()
    embedded: tuple[EmbeddedFile, ...] = ()
    truncated: bool = False
    pages: int = 0  # pages of a PDF (or a multi-page TIFF); 0 when the format has none
    ocr_pages: tuple[int, ...] = ()  # 1-based pages whose text came from OCR
    illegible_pages: tuple[int, ...] = ()  # pages OCR could not read (ink, no words)
    ocr_images: int = 0  # pictures on text pages read by OCR (a stamp pasted as an image)


# C0 controls except TAB and LF, DEL, byte-order marks, soft hyphens
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\u00ad]")


def normalize_text(text: str, max_chars: int | None = None) -> str:
    """NFC, LF line ends, no NULs or other C0 controls except TAB/LF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    return text


# ---------------------------------------------------------------- format detection

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
DOC = "application/msword"
OLE = "application/x-ole-storage"  # legacy .xls/.ppt and other OLE compound files
TNEF = "application/ms-tnef"  # Outlook's winmail.dat: the message's attachments inside
ZIP = "application/zip"
TAR = "application/x-tar"
RAR = "application/vnd.rar"
RTF = "application/rtf"
SEVEN_ZIP = "application/x-7z-compressed"
RFC822 = "message/rfc822"
HTML = "text/html"
PLAIN = "text/plain"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
GIF = "image/gif"
BMP = "image/bmp"
WEBP = "image/webp"
AVIF = "image/avif"
HEIC = "image/heic"  # an iPhone's photos (HEIF); read with pillow-heif
IMAGES = (PNG, JPEG, TIFF, GIF, BMP, WEBP, AVIF, HEIC)

_EXTENSIONS = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".docm": DOCX,
    ".dotx": DOCX,
    ".xlsx": XLSX,
    ".pptx": PPTX,
    ".odt": ODT,
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".zip": ZIP,
    ".rar": RAR,
    ".7z": SEVEN_ZIP,
    ".rtf": RTF,
    ".tar": TAR,
    ".tgz": TAR,
    ".tar.gz": TAR,
    ".tar.bz2": TAR,
    ".tar.xz": TAR,
    ".eml": RFC822,
    ".mht": RFC822,  # a web page saved as one MIME message (multipart/related)
    ".mhtml": RFC822,
    ".htm": HTML,
    ".html": HTML,
    ".txt": PLAIN,
    ".csv": PLAIN,
    ".xml": PLAIN,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".tif": TIFF,
    ".tiff": TIFF,
    ".gif": GIF,
    ".bmp": BMP,
    ".webp": WEBP,
    ".avif": AVIF,
    ".heic": HEIC,
    ".heif": HEIC,
}


def sniff(data: bytes, filename: str | None, declared: str) -> str:
    """The real type of a file: magic bytes first, then the name, then the declared type."""
    if b"%PDF-" in data[:1024]:
        return PDF
    return _magic(data, filename, declared) or _by_name(filename, declared)


def sniff_all(data: bytes, filename: str | None, declared: str) -> tuple[tuple[str, int], ...]:
    """Each way the file can be read, as (type, offset where that reading's bytes begin):
    :func:`sniff`'s type at 0, then, for a file that is two at once, the others. A PDF
    header within the first 1,024 bytes (where PDF readers look for it) of a file that
    starts as another type (a compound file, a ZIP, an RTF...): Word opens such a .doc as
    a .doc and a PDF reader the same bytes as a PDF. And an archive after a file's own
    bytes (:func:`appended_archives`): ``copy /b anh.jpg + ho-so.rar anh.jpg`` gives a
    picture that an image viewer shows and WinRAR or 7-Zip opens as the archive, as they
    open a self-extracting .exe. Each reading is read."""
    kind = sniff(data, filename, declared)
    readings = [(kind, 0)]
    if kind == PDF and not data.startswith(b"%PDF-"):
        other = _magic(data, filename, declared)
        if other is not None:
            readings.append((other, 0))
    if not any(_is_container(k) for k, _ in readings):
        readings += appended_archives(data)
    else:
        end = container_end(data, kind)
        if end is not None and end < len(data):
            readings += _archive_signatures(data, end)
    return tuple(readings)


# Where the archive readers find an archive that does not start the file: RAR 4, RAR 5
# and 7z by their signature anywhere (WinRAR and 7-Zip look for it), a ZIP by its end
# record at the end (zip readers find the directory from there).
_ARCHIVE_SIGNATURES = (
    (b"Rar!\x1a\x07\x00", RAR),
    (b"Rar!\x1a\x07\x01\x00", RAR),
    (b"7z\xbc\xaf\x27\x1c", SEVEN_ZIP),
)


def appended_archives(data: bytes) -> list[tuple[str, int]]:
    """The archives inside a file that is not itself a container, with the offset each
    begins at (0 for a ZIP: zip readers skip what precedes it): an archive appended to a
    picture, a PDF or a text, or the archive of a self-extracting program. Searched in the
    kinds whose own structure does not hold other files' bytes as they are (an archive's
    members, a compound file's objects and a message's parts are walked as such)."""
    found: list[tuple[str, int]] = []
    if _ends_as_zip(data):
        found.append((_sniff_zip(data), 0))
    return found + _archive_signatures(data, 1)


def _archive_signatures(data: bytes, start: int) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for signature, kind in _ARCHIVE_SIGNATURES:
        at = data.find(signature, start)
        if at > 0:
            found.append((kind, at))
    return found


_ZIP_FAMILY = (ZIP, DOCX, XLSX, PPTX)
_FREE_SECTOR = 0xFFFFFFFF


def container_end(data: bytes, kind: str) -> int | None:
    """Where a ZIP package's or a compound file's own bytes end (None: unknown, or a
    container of another kind). What follows is no member of it: WinRAR, which does not
    read compound files, opens a .doc with a RAR after it as that RAR (as it opens a
    photo with one), so the bytes after the end are searched as a non-container's are;
    the members are walked as before, and an archive stored as one is not read twice."""
    if kind in _ZIP_FAMILY or kind.startswith("application/vnd.oasis.opendocument"):
        record = data.rfind(b"PK\x05\x06", max(0, len(data) - 66_000))
        if record < 0 or record + 22 > len(data):
            return None
        (comment,) = struct.unpack_from("<H", data, record + 20)
        return min(len(data), record + 22 + comment)
    if kind in (DOC, OLE):
        try:
            with olefile.OleFileIO(data) as ole:
                used = [i for i, entry in enumerate(ole.fat) if entry != _FREE_SECTOR]
                size = ole.sectorsize
        except Exception:  # olefile raises many types on damaged files; read as before
            return None
        # sector i starts at (i + 1) * size: the header takes the first sector's room
        return (max(used) + 2) * size if used else None
    return None


def _is_container(kind: str) -> bool:
    """A type whose files hold other files' bytes as they are, walked as its members."""
    return kind in (ZIP, DOCX, XLSX, PPTX, TAR, RAR, SEVEN_ZIP, DOC, OLE, TNEF, RFC822) or (
        kind.startswith("application/vnd.oasis.opendocument")
    )


def _ends_as_zip(data: bytes) -> bool:
    """A ZIP appended to a file: zip readers find its end record at the end of the file
    (as they do for a self-extracting archive), the file's own readers its start. Only
    one whose directory zipfile reads counts (a PDF's compressed streams can hold the end
    record's four bytes by chance)."""
    if data.find(b"PK\x05\x06", max(0, len(data) - 66_000)) < 0:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return bool(zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return False


def _magic(data: bytes, filename: str | None, declared: str) -> str | None:
    head = data[:1024]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(data)
    if head.startswith(b"{\\rtf"):
        return RTF
    if head.startswith(b"Rar!\x1a\x07"):  # RAR 4 and RAR 5
        return RAR
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return SEVEN_ZIP
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return AVIF if head[8:12] in (b"avif", b"avis") else HEIC
    if _is_bmp(head):
        return BMP
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        name = (filename or "").lower()
        return DOC if name.endswith((".doc", ".dot")) or declared.lower() == DOC else OLE
    if head.startswith(b"\x78\x9f\x3e\x22"):  # 0x223E9F78, little-endian
        return TNEF
    if len(data) > 262 and data[257:262] == b"ustar":
        return TAR
    if (
        head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))
        and filename
        and ".tar" in filename.lower()
    ):
        return TAR
    return None


def _is_bmp(head: bytes) -> bool:
    """ "BM", reserved zeros, and a DIB header of one of the sizes Windows writes: a text
    that starts with "BM" is not a bitmap (it has no NUL bytes)."""
    if not head.startswith(b"BM") or len(head) < 18 or head[6:10] != b"\0\0\0\0":
        return False
    (dib,) = struct.unpack_from("<I", head, 14)
    return dib in (12, 40, 52, 56, 64, 108, 124)


# ISO base media files holding a still image: HEIF as iPhones write it, and AVIF
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
                b"avif", b"avis")  # fmt: skip


def _by_name(filename: str | None, declared: str) -> str:
    name = (filename or "").lower()
    for ext in (".tar.gz", ".tar.bz2", ".tar.xz"):
        if name.endswith(ext):
            return _EXTENSIONS[ext]
    dot = name.rfind(".")
    if dot >= 0 and name[dot:] in _EXTENSIONS:
        return _EXTENSIONS[name[dot:]]
    return declared.lower()


# What makes a leaf part a document (for the register and the signature check) whether
# or not it carries a file name, and the extension of the name it is then given.
_DOCUMENT_KINDS = {
    PDF: ".pdf",
    DOCX: ".docx",
    XLSX: ".xlsx",
    PPTX: ".pptx",
    ODT: ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.oasis.opendocument.presentation": ".odp",
    DOC: ".doc",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/rtf": ".rtf",
    "text/rtf": ".rtf",
    ZIP: ".zip",
    "application/vnd.rar": ".rar",
    "application/x-rar-compressed": ".rar",
    "application/x-7z-compressed": ".7z",
    TIFF: ".tif",
}


def document_extension(data: bytes, declared: str) -> str | None:
    """The extension of a nameless file that is a document (PDF, office, ODF, RTF,
    archives, TIFF scans), judged by its magic bytes first, then by its declared type;
    None when it is none (a picture, a calendar, an unknown type)."""
    kind = sniff(data, None, declared)
    if kind == OLE:  # legacy .xls/.ppt: the declared type tells which
        kind = declared.lower()
    return _DOCUMENT_KINDS.get(kind) or _DOCUMENT_KINDS.get(declared.lower())


def leaf_file_name(filename: str, content_type: str, disposition: str, data: bytes) -> str:
    """The name a leaf MIME part is known by as a file: its own; for a nameless part that
    is not text and is a document (``document_extension``), or that is sent as an
    attachment, a generated ``attachment.<ext>``; "" for a part that is no file (a mail
    body, an inline picture). The register and the signature walk both name files so."""
    if filename:
        return filename
    if not content_type.lower().startswith("text/"):
        ext = document_extension(data, content_type)
        if ext is not None:
            return "attachment" + ext
    if (disposition or "").lower() == "attachment":
        return "attachment" + (mimetypes.guess_extension(content_type) or ".bin")
    return ""


def _sniff_zip(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "word/document.xml" in names:
                return DOCX
            if "xl/workbook.xml" in names:
                return XLSX
            if "ppt/presentation.xml" in names:
                return PPTX
            # an ODF package saved with a password as ODF 1.4 does it (LibreOffice 24.2
            # and later) has no content.xml, one "encrypted-package" member instead
            if "mimetype" in names and ("content.xml" in names or "encrypted-package" in names):
                info = zf.getinfo("mimetype")
                if info.file_size < 200:
                    kind = zf.read(info).decode("ascii", "replace").strip()
                    if kind.startswith("application/vnd.oasis.opendocument"):
                        return kind
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return ZIP
    return ZIP


def is_extractable(kind: str) -> bool:
    return (
        kind in (PDF, DOCX, XLSX, PPTX, HTML, DOC, OLE, RTF)
        or kind.startswith("application/vnd.oasis.opendocument")
        or kind.startswith("text/")
    )


# ---------------------------------------------------------------- zip members


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    """Read one zip member, refusing encrypted members and anything over ``max_bytes``.

    The declared size is checked first and the real size is counted while reading, so a
    lying header cannot inflate past the cap (zip bomb).
    """
    if info.flag_bits & 0x1:
        raise UnreadableDocument(ENCRYPTED, f"encrypted archive member {info.filename!r}")
    if info.file_size > max_bytes:
        raise UnreadableDocument(TOO_LARGE, f"archive member of {info.file_size} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise UnreadableDocument(TOO_LARGE, "archive member inflates past the cap")
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise UnreadableDocument(CORRUPT, f"bad archive member: {exc}") from exc
    return b"".join(chunks)


def open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableDocument(CORRUPT, f"not a readable zip file: {exc}") from exc


# ---------------------------------------------------------------- XML


@dataclass(frozen=True)
class _XmlGrammar:
    paragraphs: frozenset[str]  # end of these elements ends a line
    texts: frozenset[str]  # their .text is content
    tabs: frozenset[str]
    breaks: frozenset[str]
    skips: frozenset[str]  # subtrees ignored entirely
    attributes: tuple[tuple[str, str], ...] = ()  # (tag, attribute) whose value is a line
    coded: frozenset[str] = frozenset()  # a sheet's page header/footer: text with &-codes
    # (cell, value): a cell's cached value is text when the cell is of type "str" (the
    # result of a formula such as =UPPER("mật")); other values are numbers
    formula_text: tuple[str, str] | None = None


def _q(ns: str, *names: str) -> frozenset[str]:
    return frozenset(f"{{{ns}}}{n}" for n in names)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_C = "http://schemas.openxmlformats.org/drawingml/2006/chart"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"

_WORD = _XmlGrammar(
    paragraphs=_q(_W, "p") | _q(_A, "p") | _q(_S, "si", "row") | _q(_C, "pt"),
    # p:text: a presentation comment; c:v: a chart's cached labels and values
    texts=_q(_W, "t") | _q(_A, "t") | _q(_S, "t") | _q(_P, "text") | _q(_C, "v"),
    tabs=_q(_W, "tab"),
    breaks=_q(_W, "br", "cr") | _q(_A, "br"),
    skips=_q(_MC, "Fallback") | _q(_W, "delText", "instrText"),
    # WordArt (VML): the text is the string attribute of v:textpath
    attributes=(("{urn:schemas-microsoft-com:vml}textpath", "string"),),
    coded=_q(_S, "oddHeader", "oddFooter", "evenHeader", "evenFooter")
    | _q(_S, "firstHeader", "firstFooter"),
    formula_text=(f"{{{_S}}}c", f"{{{_S}}}v"),
)
_ODF = _XmlGrammar(
    paragraphs=_q(_TEXT, "p", "h"),
    texts=frozenset(),
    tabs=_q(_TEXT, "tab"),
    breaks=_q(_TEXT, "line-break"),
    skips=_q(_TEXT, "tracked-changes", "note-citation"),
)
_ODF_SPACE = f"{{{_TEXT}}}s"


_DTD_REFUSED = "XML with a DTD or entities is refused"


def _iterparse(data: bytes) -> Iterator[tuple[str, Any]]:
    """``ET.iterparse`` through defusedxml: a DTD (and so any entity declaration) is refused
    in whatever encoding the part declares. A byte search for ``<!DOCTYPE`` missed UTF-16
    parts, whose entities expanded 1 KB into a million characters."""
    try:
        yield from defused_et.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True)
    except DefusedXmlException as exc:
        raise UnreadableDocument(CORRUPT, _DTD_REFUSED) from exc


def _fromstring(data: bytes) -> ET.Element:
    """``ET.fromstring`` through defusedxml (see ``_iterparse``)."""
    try:
        return defused_et.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise UnreadableDocument(CORRUPT, _DTD_REFUSED) from exc


def xml_text(data: bytes, grammar: _XmlGrammar, max_chars: int) -> str:
    """Text of an OOXML part, one line per paragraph, streaming, capped."""
    out: list[str] = []
    size = 0
    skipping = 0
    cell, value = grammar.formula_text or ("", "")
    text_cell = False  # inside a cell whose value is text
    try:
        for event, elem in _iterparse(data):
            tag = elem.tag
            if tag in grammar.skips:
                skipping += 1 if event == "start" else -1
                continue
            if tag == cell:
                text_cell = event == "start" and elem.get("t") == "str"
            if event == "start" or skipping:
                continue
            if tag in grammar.texts:
                piece = elem.text or ""
            elif tag in grammar.coded:
                piece = "\n" + sheet_header_text(elem.text or "") + "\n"
            elif tag == value:
                piece = "\n" + (elem.text or "") + "\n" if text_cell else ""
            elif tag in grammar.tabs:
                piece = "\t"
            elif tag in grammar.breaks or tag in grammar.paragraphs:
                piece = "\n"
            else:
                piece = ""
                for name, attribute in grammar.attributes:
                    if tag == name and elem.get(attribute):
                        piece = "\n" + str(elem.get(attribute)) + "\n"
            if piece:
                out.append(piece)
                size += len(piece)
                if size > max_chars:
                    break
            elem.clear()
    except ET.ParseError as exc:
        raise UnreadableDocument(CORRUPT, f"bad XML: {exc}") from exc
    return "".join(out)


# A sheet's page header or footer (ECMA-376 18.3.1.46): &L, &C and &R open its left,
# centre and right sections; &"font,style", &K and a colour, &<size>, and one-letter codes
# (bold, underline, page number, date, file name...) format it or insert a value; && is &.
_SHEET_HEADER_CODE = re.compile(r'&(?:"[^"]*"|K(?:[0-9A-Fa-f]{6}|\d\d[+-]\d{3})|\d+|[A-Za-z])')


# Where a legacy .xls's page header shows in its UTF-16 runs: a section code or a font.
_SHEET_HEADER_SECTION = re.compile(r'&[LCR"]')


def sheet_header_text(coded: str) -> str:
    """The text of a sheet's page header or footer as Excel prints it: its formatting
    codes taken out (``&C&"Times New Roman,Bold"&14MẬT`` is ``MẬT``), each section on a
    line of its own, a field (``&P`` page, ``&D`` date...) a space."""
    parts = coded.split("&&")
    return "&".join(_SHEET_HEADER_CODE.sub(_sheet_header_code, part) for part in parts)


def _sheet_header_code(match: re.Match[str]) -> str:
    code = match.group()
    if code in ("&L", "&C", "&R"):
        return "\n"  # a section of its own
    if len(code) == 2 and code[1] in "PNDTZFAG":
        return " "  # page, pages, date, time, path, file, sheet, picture
    return ""  # font, size, colour, bold, underline...: how the text looks


def _odf_xml_text(data: bytes, max_chars: int) -> str:
    """ODF paragraphs hold mixed content (text, spans, tails): one line per paragraph."""
    try:
        root = _fromstring(data)
    except ET.ParseError as exc:
        raise UnreadableDocument(CORRUPT, f"bad XML: {exc}") from exc
    lines: list[str] = []
    size = 0
    for elem in root.iter():
        if elem.tag in _ODF.paragraphs:
            line = _odf_inline(elem)
            lines.append(line)
            size += len(line) + 1
            if size > max_chars:
                break
    return "\n".join(lines)


def _odf_inline(elem: ET.Element) -> str:
    parts: list[str] = [elem.text or ""]
    for child in elem:
        tag = child.tag
        if tag in _ODF.skips:
            pass
        elif tag == _ODF_SPACE:
            parts.append(" " * int(child.get(f"{{{_TEXT}}}c", "1") or 1))
        elif tag in _ODF.tabs:
            parts.append("\t")
        elif tag in _ODF.breaks:
            parts.append("\n")
        elif tag in _ODF.paragraphs:
            pass  # its own line comes from root.iter()
        else:
            parts.append(_odf_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


_DC = "http://purl.org/dc/elements/1.1/"
_CP = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
_PROPERTY_TAGS = {
    f"{{{_DC}}}title": "title",
    f"{{{_DC}}}subject": "subject",
    f"{{{_DC}}}description": "description",
    f"{{{_CP}}}keywords": "keywords",
    f"{{{_META}}}keyword": "keywords",
    f"{{{_CP}}}category": "category",
}


def _properties_xml(data: bytes) -> tuple[tuple[str, str], ...]:
    try:
        root = _fromstring(data)
    except ET.ParseError:
        return ()
    out: list[tuple[str, str]] = []
    for elem in root.iter():
        key = _PROPERTY_TAGS.get(elem.tag)
        if key and elem.text and elem.text.strip():
            out.append((key, normalize_text(elem.text.strip(), 4000)))
    return tuple(out)


# ---------------------------------------------------------------- OOXML / ODF


def _ooxml_members(names: Iterable[str], kind: str) -> list[str]:
    def num(n: str) -> tuple[int, str]:
        digits = "".join(c for c in n if c.isdigit())
        return (int(digits) if digits else 0, n)

    patterns = _OOXML_PARTS.get(kind, ())
    found: list[str] = []
    for pattern in patterns:
        found += sorted((n for n in names if pattern.fullmatch(n)), key=num)
    return found


# The parts of an OOXML package whose text a reader sees, in reading order: the body,
# then what Word, Excel or PowerPoint show beside it. A stamp sits in these too: a sheet's
# page header (in its worksheet part) prints on every page, text on a slide master or
# layout shows on every slide, and comments, speaker notes, text boxes on a sheet,
# SmartArt graphics and chart titles are on screen.
_OOXML_PARTS: dict[str, tuple[re.Pattern[str], ...]] = {
    DOCX: tuple(
        re.compile(p)
        for p in (
            r"word/header\d*\.xml", r"word/document\.xml", r"word/footer\d*\.xml",
            r"word/footnotes\.xml", r"word/endnotes\.xml", r"word/comments\.xml",
            r"word/diagrams/data\d*\.xml", r"word/charts/chart\d*\.xml",
        )
    ),
    XLSX: tuple(
        re.compile(p)
        for p in (
            r"xl/sharedStrings\.xml", r"xl/worksheets/sheet\d*\.xml", r"xl/comments\d*\.xml",
            r"xl/drawings/drawing\d*\.xml", r"xl/diagrams/data\d*\.xml",
            r"xl/charts/chart\d*\.xml",
        )
    ),
    PPTX: tuple(
        re.compile(p)
        for p in (
            r"ppt/slides/slide\d*\.xml", r"ppt/slideMasters/slideMaster\d*\.xml",
            r"ppt/slideLayouts/slideLayout\d*\.xml", r"ppt/notesSlides/notesSlide\d*\.xml",
            r"ppt/comments/[^/]+\.xml", r"ppt/diagrams/data\d*\.xml",
            r"ppt/charts/chart\d*\.xml",
        )
    ),
}  # fmt: skip


# A DOCX may import content from another file shown inline as if typed there: w:altChunk,
# whose relationship (type aFChunk) names a part holding HTML, MHT, RTF, text or another
# DOCX. Word renders it in place; it is in none of the parts read above.
_ALT_CHUNK = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/aFChunk"
_PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"


def _alt_chunks(zf: zipfile.ZipFile, names: list[str]) -> list[str]:
    """The parts a DOCX's w:altChunk elements import (from the relationships of the
    document, its headers, footers, notes and comments)."""
    found: list[str] = []
    for rels in sorted(n for n in names if n.startswith("word/_rels/") and n.endswith(".rels")):
        root = _fromstring(read_member(zf, zf.getinfo(rels), 1 << 20))
        for rel in root.iter(_PACKAGE_RELS):
            if rel.get("Type") != _ALT_CHUNK or rel.get("TargetMode") == "External":
                continue
            target = rel.get("Target") or ""
            part = target.lstrip("/") if target.startswith("/") else f"word/{target}"
            part = posixpath.normpath(part)
            if part in names and part not in found:
                found.append(part)
    return found


# Files embedded as objects (Insert > Object > from file: a DOCX, a workbook, a legacy
# .doc as an OLE part): shown as an icon or a first page, opened by a double click.
_OOXML_EMBEDDED = re.compile(r"(?:word|xl|ppt)/embeddings/[^/]+")
_MAX_EMBEDDED = 50  # files embedded in one PDF or OOXML document; more: too large to read


def ooxml_text(
    data: bytes,
    kind: str,
    *,
    max_member_bytes: int,
    max_chars: int,
    max_embedded_bytes: int | None = None,
    ocr: Ocr | None = None,
) -> FileText:
    """Text of a DOCX/XLSX/PPTX (headers, footers and notes of a DOCX included), its core
    properties and the files embedded in it as objects (``embedded``, walked by the
    extraction like a PDF's; one larger than ``max_embedded_bytes`` makes the document
    too large to read). With ``ocr``, a DOCX's stamp-sized pictures at the top of page 1
    or in a page header are read too (``docx_stamp_pictures``)."""
    with open_zip(data) as zf:
        names = zf.namelist()
        texts: list[str] = []
        size = 0
        for name in _ooxml_members(names, kind):
            if not name.endswith(".xml"):
                continue
            try:
                info = zf.getinfo(name)
            except KeyError:
                continue
            chunk = xml_text(read_member(zf, info, max_member_bytes), _WORD, max_chars - size)
            texts.append(chunk)
            size += len(chunk)
            if size >= max_chars:
                break
        props: tuple[tuple[str, str], ...] = ()
        if "docProps/core.xml" in names:
            props = _properties_xml(read_member(zf, zf.getinfo("docProps/core.xml"), 1 << 20))
        objects = [n for n in names if _OOXML_EMBEDDED.fullmatch(n)]
        if kind == DOCX:
            objects += _alt_chunks(zf, names)
        if len(objects) > _MAX_EMBEDDED:  # not read: the rest would go unchecked
            raise UnreadableDocument(TOO_LARGE, f"{len(objects)} embedded files")
        embedded = [
            EmbeddedFile(
                name=name.rsplit("/", 1)[1],
                data=read_member(zf, zf.getinfo(name), max_embedded_bytes or max_member_bytes),
            )
            for name in objects
        ]
        stamps: list[str] = []
        if ocr is not None and kind == DOCX:
            stamps = _read_pictures(docx_stamp_pictures(zf, names, max_member_bytes), ocr)
            texts += stamps
    return FileText(
        text=normalize_text("\n".join(texts), max_chars),
        properties=props,
        embedded=tuple(embedded),
        truncated=size >= max_chars,
        ocr_images=len(stamps),
    )


_ODF_OBJECT = re.compile(r"(?:Object [^/]+/)+(?:styles|content)\.xml")
# An object another program made (an OLE object: a PDF or a Word document inserted in
# LibreOffice on Windows, or a DOCX's oleObject1.bin kept when LibreOffice saved it as
# ODF) is a compound file in a member "Object N" of its own, beside the ODF objects' folders.
_ODF_BINARY_OBJECT = re.compile(r"(?:Object [^/]+/)*Object [^/]+")


def odf_text(
    data: bytes,
    *,
    max_member_bytes: int,
    max_chars: int,
    max_embedded_bytes: int | None = None,
    ocr: Ocr | None = None,
) -> FileText:
    """The text of an ODF document (content, page headers and footers, embedded objects)
    and its properties. One saved with a password (its manifest says how members are
    encrypted: each XML member, or the whole package as ODF 1.4 does) is ``encrypted``:
    its text is ciphertext. With ``ocr``, a text document's stamp-sized pictures at the
    top of page 1 or in a page header are read too (``odf_stamp_pictures``)."""
    with open_zip(data) as zf:
        names = set(zf.namelist())
        if "META-INF/manifest.xml" in names:
            manifest = read_member(zf, zf.getinfo("META-INF/manifest.xml"), 1 << 20)
            if b"encryption-data" in manifest:  # manifest:encryption-data, ODF 1.2-1.4, 3.8
                raise UnreadableDocument(ENCRYPTED, "password-protected ODF document")
        if "content.xml" not in names:
            raise UnreadableDocument(CORRUPT, "ODF package without content.xml")
        texts: list[str] = []
        # styles.xml holds the page headers and footers (where a stamp may sit); objects
        # embedded in the document (Insert > Object: another text, a sheet, a chart) are
        # packages of their own in "Object N/", shown in place
        objects = sorted(
            (n for n in names if _ODF_OBJECT.fullmatch(n)), key=lambda n: (n.count("/"), n)
        )
        if len(objects) > 2 * _MAX_EMBEDDED:  # not read: the rest would go unchecked
            raise UnreadableDocument(TOO_LARGE, f"{len(objects) // 2} embedded objects")
        for name in ("styles.xml", "content.xml", *objects):
            if name in names:
                member = read_member(zf, zf.getinfo(name), max_member_bytes)
                texts.append(_odf_xml_text(member, max_chars))
        props: tuple[tuple[str, str], ...] = ()
        if "meta.xml" in names:
            props = _properties_xml(read_member(zf, zf.getinfo("meta.xml"), 1 << 20))
        binaries = sorted(n for n in names if _ODF_BINARY_OBJECT.fullmatch(n))
        if len(binaries) > _MAX_EMBEDDED:  # not read: the rest would go unchecked
            raise UnreadableDocument(TOO_LARGE, f"{len(binaries)} embedded objects")
        room = max_embedded_bytes or max_member_bytes
        embedded = tuple(
            EmbeddedFile(name, read_member(zf, zf.getinfo(name), room)) for name in binaries
        )
        stamps: list[str] = []
        if ocr is not None:
            stamps = _read_pictures(odf_stamp_pictures(zf, names, max_member_bytes), ocr)
            texts += stamps
    text = "\n".join(texts)
    return FileText(
        text=normalize_text(text, max_chars),
        properties=props,
        truncated=len(text) > max_chars,
        embedded=embedded,
        ocr_images=len(stamps),
    )


# ---------------------------------------------------------------- pictures of a stamp

# A stamp pasted as a picture into a DOCX or ODT (a scanned rubber stamp under the number,
# where box 10a puts it, or in the page header) is read by OCR like a PDF's
# (``_ocr_header_images``): pictures among the first paragraphs of the body (the header
# block: its table's paragraphs count) or in a page header, at most three, stamp-sized
# as laid out (at least 30 x 10 pt, at most 0.6 of the page width): photos in the text and
# logos cost nothing. Each is drawn at its laid-out size at the OCR resolution, on white
# (a transparent background reads as black otherwise). Pictures Pillow cannot open (EMF,
# WMF) are left, as a PDF's vector drawings are.
_TOP_PARAGRAPHS = 15
_TOP_BYTES = 512 * 1024  # of the body's XML looked at for those paragraphs
_MAX_STAMP_PICTURES = 3
_MAX_PICTURE_BYTES = 20 * 1024 * 1024
_EMU_PER_PT = 12700
_DEFAULT_PAGE_PT = 595.0  # A4


@dataclass(frozen=True)
class _Picture:
    data: bytes
    width_pt: float
    height_pt: float


def _stamp_sized(width_pt: float, height_pt: float, page_pt: float) -> bool:
    return (
        width_pt >= _MIN_IMAGE_PT[0]
        and height_pt >= _MIN_IMAGE_PT[1]
        and width_pt <= _MAX_IMAGE_SHARE * page_pt
    )


def _top_of(xml: bytes, paragraph_end: bytes) -> bytes:
    """The part of a body's XML up to the end of its first paragraphs."""
    end = 0
    for _ in range(_TOP_PARAGRAPHS):
        found = xml.find(paragraph_end, end, _TOP_BYTES)
        if found == -1:
            return xml[:_TOP_BYTES]
        end = found + len(paragraph_end)
    return xml[:end]


def _elements(xml: bytes, start: bytes, end: bytes) -> Iterator[bytes]:
    """Each ``start`` ... ``end`` span of ``xml``, each byte looked at once."""
    position = 0
    while (begin := xml.find(start, position)) != -1:
        close = xml.find(end, begin)
        if close == -1:
            return
        position = close + len(end)
        yield xml[begin:position]


_DOCX_EXTENT = re.compile(rb'<wp:extent\b[^>]*?\bcx="(\d{1,12})"[^>]*?\bcy="(\d{1,12})"')
_DOCX_BLIP = re.compile(rb'<a:blip\b[^>]*?\br:embed="([^"]{1,100})"')
_VML_IMAGE = re.compile(rb'<v:imagedata\b[^>]*?\br:id="([^"]{1,100})"')
_VML_SIZE = re.compile(rb"(width|height):\s*([0-9.]{1,12})\s*(pt|in|cm|mm|px|pc)?", re.I)
_PAGE_WIDTH_TWIPS = re.compile(rb'<w:pgSz\b[^>]*?\bw:w="(\d{1,9})"')
_LENGTH_PT = {b"pt": 1.0, b"in": 72.0, b"cm": 72 / 2.54, b"mm": 72 / 25.4, b"px": 0.75,
              b"pc": 12.0, b"": 0.75}  # fmt: skip


def _relationships(zf: zipfile.ZipFile, part: str, max_bytes: int) -> dict[str, str]:
    """A part's relationships: id -> target part name (relative targets resolved)."""
    folder, _, name = part.rpartition("/")
    rels = f"{folder}/_rels/{name}.rels"
    try:
        root = _fromstring(read_member(zf, zf.getinfo(rels), max_bytes))
    except (KeyError, ET.ParseError):
        return {}  # no pictures Word could show either
    out: dict[str, str] = {}
    for rel in root:
        target, ident = rel.get("Target") or "", rel.get("Id") or ""
        if rel.get("TargetMode") == "External" or not target or not ident:
            continue
        path = target.lstrip("/") if target.startswith("/") else f"{folder}/{target}"
        out[ident] = posixpath.normpath(path)
    return out


def _docx_pictures(xml: bytes, rels: dict[str, str]) -> Iterator[tuple[str, float, float]]:
    """(part, width pt, height pt) of each picture in a WordprocessingML fragment:
    DrawingML (``w:drawing``) and VML (``v:imagedata`` in a ``v:shape``)."""
    for drawing in _elements(xml, b"<w:drawing", b"</w:drawing>"):
        extent, blip = _DOCX_EXTENT.search(drawing), _DOCX_BLIP.search(drawing)
        if extent and blip and blip.group(1).decode("ascii", "replace") in rels:
            cx, cy = int(extent.group(1)), int(extent.group(2))
            part = rels[blip.group(1).decode("ascii", "replace")]
            yield part, cx / _EMU_PER_PT, cy / _EMU_PER_PT
    for shape in _elements(xml, b"<v:shape", b"</v:shape>"):
        image = _VML_IMAGE.search(shape)
        if image is None or image.group(1).decode("ascii", "replace") not in rels:
            continue
        head = shape[: shape.find(b">") + 1]
        size = {m.group(1).lower(): float(m.group(2)) * _LENGTH_PT[m.group(3) or b""]
                for m in _VML_SIZE.finditer(head)}  # fmt: skip
        if b"width" in size and b"height" in size:
            yield rels[image.group(1).decode("ascii", "replace")], size[b"width"], size[b"height"]


def docx_stamp_pictures(zf: zipfile.ZipFile, names: list[str], max_bytes: int) -> list[_Picture]:
    """The stamp-sized pictures at the top of a DOCX's page 1 and in its page headers."""
    if "word/document.xml" not in names:
        return []
    body = read_member(zf, zf.getinfo("word/document.xml"), max_bytes)
    page = _PAGE_WIDTH_TWIPS.search(body)
    page_pt = int(page.group(1)) / 20 if page else _DEFAULT_PAGE_PT
    rels = _relationships(zf, "word/document.xml", max_bytes)
    found = list(_docx_pictures(_top_of(body, b"</w:p>"), rels))
    headers = sorted(p for p in set(rels.values()) if re.fullmatch(r"word/header\d*\.xml", p))
    for header in headers[:6]:
        if header in names:
            xml = read_member(zf, zf.getinfo(header), max_bytes)
            found += _docx_pictures(xml, _relationships(zf, header, max_bytes))
    return _take_pictures(zf, found, page_pt)


_ODF_IMAGE = re.compile(rb'<draw:image\b[^>]*?\bxlink:href="([^"]{1,300})"')
_ODF_SIZE = re.compile(rb'\bsvg:(width|height)="([0-9.]{1,12})(pt|in|cm|mm|px|pc)?"')
_ODF_PAGE_WIDTH = re.compile(rb'\bfo:page-width="([0-9.]{1,12})(pt|in|cm|mm|px|pc)?"')


def _odf_pictures(xml: bytes) -> Iterator[tuple[str, float, float]]:
    for frame in _elements(xml, b"<draw:frame", b"</draw:frame>"):
        image = _ODF_IMAGE.search(frame)
        if image is None:
            continue
        head = frame[: frame.find(b">") + 1]
        size = {m.group(1): float(m.group(2)) * _LENGTH_PT[m.group(3) or b""]
                for m in _ODF_SIZE.finditer(head)}  # fmt: skip
        if b"width" in size and b"height" in size:
            target = image.group(1).decode("utf-8", "replace").removeprefix("./")
            yield posixpath.normpath(target), size[b"width"], size[b"height"]


def odf_stamp_pictures(zf: zipfile.ZipFile, names: set[str], max_bytes: int) -> list[_Picture]:
    """The stamp-sized pictures at the top of an ODF text's page 1 and in its page
    headers (the master pages' ``style:header``)."""
    content = read_member(zf, zf.getinfo("content.xml"), max_bytes)
    start = content.find(b"<office:text")
    if start == -1:
        return []  # a sheet or a presentation
    found = list(_odf_pictures(_top_of(content[start:], b"</text:p>")))
    page_pt = _DEFAULT_PAGE_PT
    if "styles.xml" in names:
        styles = read_member(zf, zf.getinfo("styles.xml"), max_bytes)
        width = _ODF_PAGE_WIDTH.search(styles)
        if width:
            page_pt = float(width.group(1)) * _LENGTH_PT[width.group(2) or b""]
        for header in _elements(styles, b"<style:header", b"</style:header>"):
            found += _odf_pictures(header)
    return _take_pictures(zf, found, page_pt)


def _take_pictures(
    zf: zipfile.ZipFile, found: Iterable[tuple[str, float, float]], page_pt: float
) -> list[_Picture]:
    out: list[_Picture] = []
    seen: set[str] = set()
    for part, width, height in found:
        if part in seen or not _stamp_sized(width, height, page_pt):
            continue
        seen.add(part)
        try:
            info = zf.getinfo(part)
        except KeyError:
            continue
        # a stamp-sized picture too large to read is not skipped: it would go unread
        out.append(_Picture(read_member(zf, info, _MAX_PICTURE_BYTES), width, height))
        if len(out) >= _MAX_STAMP_PICTURES:
            break
    return out


# An Enhanced Metafile (a picture Word pastes with "Paste Special > Picture (Enhanced
# Metafile)", a stamp copied from another document among them) draws its text with text
# records, which are read as they are (MS-EMF 2.3.5.8: EMR_EXTTEXTOUTW's string, UTF-16;
# EMR_EXTTEXTOUTA's, 8-bit): Pillow cannot draw an EMF here for OCR. Text given as glyph
# indices (ETO_GLYPH_INDEX) names no characters and is not read.
_EMR_EOF, _EMR_EXTTEXTOUTA, _EMR_EXTTEXTOUTW = 14, 83, 84
_ETO_GLYPH_INDEX = 0x10
_MAX_EMF_RECORDS = 200_000


def emf_text(data: bytes) -> str:
    """The text an Enhanced Metafile's text records draw, one record a line ("" when
    ``data`` is no EMF)."""
    if len(data) < 88 or data[:4] != b"\x01\x00\x00\x00" or data[40:44] != b" EMF":
        return ""
    lines: list[str] = []
    offset = 0
    for _ in range(_MAX_EMF_RECORDS):
        if offset + 8 > len(data):
            break
        kind, size = struct.unpack_from("<II", data, offset)
        if size < 8 or size % 4 or offset + size > len(data) or kind == _EMR_EOF:
            break
        if kind in (_EMR_EXTTEXTOUTA, _EMR_EXTTEXTOUTW) and size >= 76:
            chars, start, options = struct.unpack_from("<III", data, offset + 44)
            wide = kind == _EMR_EXTTEXTOUTW
            end = start + chars * (2 if wide else 1)
            if not options & _ETO_GLYPH_INDEX and 0 < start and end <= size:
                raw = data[offset + start : offset + end]
                lines.append(raw.decode("utf-16-le" if wide else "cp1258", "replace"))
        offset += size
    return "\n".join(line for line in lines if line.strip())


def _read_pictures(pictures: list[_Picture], ocr: Ocr) -> list[str]:
    """OCR of each picture at its laid-out size (see above); an EMF's text records."""
    from PIL import Image, UnidentifiedImageError

    from mailsvc.documents.ocr import without_rules

    out: list[str] = []
    dpi = ocr.limits.dpi
    for picture in pictures:
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        try:
            opened = Image.open(io.BytesIO(picture.data))
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise UnreadableDocument(TOO_LARGE, f"picture of {opened.width}x{opened.height}")
            image = opened.convert("RGBA")
        except Image.DecompressionBombError as exc:
            raise UnreadableDocument(TOO_LARGE, f"picture too large: {exc}") from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            text = emf_text(picture.data)  # an EMF's text; WMF, damaged: nothing to read
            if text:
                out.append(text)
            continue
        page = Image.new("RGBA", image.size, "white")
        page.alpha_composite(image)
        size = (
            max(1, min(4000, round(picture.width_pt / 72 * dpi))),
            max(1, min(4000, round(picture.height_pt / 72 * dpi))),
        )
        gray = page.convert("L").resize(size, Image.Resampling.LANCZOS)
        ocr.take_page()
        read = ocr.read(without_rules(gray), dpi)
        if read.text.strip():
            out.append(read.text)
    return out


# ---------------------------------------------------------------- PDF

# PDFium is not thread-safe; this lock only matters when extraction runs in threads
# (workers = 0). In a process pool each worker has its own PDFium.
_PDFIUM_LOCK = threading.Lock()
_PDF_KEYS = (("Title", "title"), ("Subject", "subject"), ("Keywords", "keywords"))


def pdf_text(
    data: bytes,
    *,
    max_pages: int,
    max_chars: int,
    max_embedded_bytes: int,
    ocr: Ocr | None = None,
) -> FileText:
    """Text of a PDF with pypdfium2; pypdf if PDFium cannot open it. With ``ocr``, pages
    without a text layer that hold an image (scans) are rendered and read by OCR."""
    try:
        with _PDFIUM_LOCK:
            return _pdfium_text(data, max_pages, max_chars, max_embedded_bytes, ocr)
    except ImportError:  # pragma: no cover - pypdfium2 is a hard dependency
        return _pypdf_text(data, max_pages, max_chars)
    except UnreadableDocument as exc:
        if exc.kind != CORRUPT:
            raise
        try:
            return _pypdf_text(data, max_pages, max_chars)
        except UnreadableDocument:
            raise exc from None


def _pdfium_text(
    data: bytes, max_pages: int, max_chars: int, max_embedded: int, ocr: Ocr | None
) -> FileText:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise UnreadableDocument(ENCRYPTED, "password-protected PDF") from exc
        raise UnreadableDocument(CORRUPT, f"PDFium cannot open the PDF: {exc}") from exc
    try:
        pages: list[str] = []
        size = 0
        count = len(pdf)
        truncated = count > max_pages
        ocr_pages: list[int] = []
        illegible: list[int] = []
        ocr_images = 0
        embedded: list[EmbeddedFile] = []
        for index in range(min(count, max_pages)):
            text = _pdfium_page_text(pdf, index, embedded, max_embedded)
            why = _needs_ocr(pdf, index, text) if ocr is not None else None
            if ocr is not None and why == _SCANNED:
                read = _ocr_page(pdf, index, ocr)
                ocr_pages.append(index + 1)
                if not read.legible:
                    illegible.append(index + 1)
                text = read.text
            elif ocr is not None and why == _OUTLINED:
                # what OCR reads beside the few letters there are; a drawing without words
                # (a chart, an emblem) is no illegible scan
                read = _ocr_page(pdf, index, ocr, drawn=True)
                ocr_pages.append(index + 1)
                text = text + "\n" + read.text
            elif ocr is not None and index == 0:
                stamps = _ocr_header_images(pdf, ocr)
                if stamps:
                    ocr_images += len(stamps)
                    text = text + "\n" + "\n".join(stamps)
            pages.append(text)
            size += len(text)
            if size > max_chars:
                truncated = True
                break
        props: list[tuple[str, str]] = []
        meta = pdf.get_metadata_dict(skip_empty=True)
        for key, name in _PDF_KEYS:
            value = meta.get(key)
            if value:
                props.append((name, normalize_text(str(value), 4000)))
        on_pages, embedded = embedded, []
        attached = pdf.count_attachments()
        if attached + len(on_pages) > _MAX_EMBEDDED:  # not read: the rest would go unchecked
            raise UnreadableDocument(TOO_LARGE, f"{attached + len(on_pages)} embedded files")
        for i in range(attached):
            att = pdf.get_attachment(i)
            blob = bytes(att.get_data())
            if len(blob) > max_embedded:  # not skipped: it would go unchecked
                raise UnreadableDocument(TOO_LARGE, f"embedded file of {len(blob)} bytes")
            embedded.append(EmbeddedFile(name=att.get_name() or f"embedded-{i + 1}", data=blob))
        # a file both listed and attached to a page (fpdf2 writes both) is one file
        listed = {(f.name, f.data) for f in embedded}
        embedded += [f for f in on_pages if (f.name, f.data) not in listed]
    except pdfium.PdfiumError as exc:
        raise UnreadableDocument(CORRUPT, f"PDFium failed: {exc}") from exc
    finally:
        pdf.close()
    return FileText(
        text=normalize_text("\n\f".join(pages), max_chars),
        properties=tuple(props),
        embedded=tuple(embedded),
        truncated=truncated,
        pages=count,
        ocr_pages=tuple(ocr_pages),
        illegible_pages=tuple(illegible),
        ocr_images=ocr_images,
    )


# Images in the header of page 1 (where box 10a puts the stamp) are read by OCR even when
# the page has a text layer: a stamp pasted as a picture. Only the top of the page, only a
# few, only stamp-sized: logos elsewhere and the seal by the signature cost nothing.
_HEADER_SHARE = 0.45  # of the page height, from the top
_MAX_HEADER_IMAGES = 3
_MIN_IMAGE_PT = (30.0, 10.0)  # width, height in points
_MAX_IMAGE_SHARE = 0.6  # of the page width


def _ocr_header_images(pdf: Any, ocr: Ocr) -> list[str]:
    import ctypes

    import pypdfium2.raw as pdfium_c

    from mailsvc.documents.ocr import without_rules

    page = pdf[0]
    boxes: list[tuple[float, float, float, float]] = []
    try:
        width, height = page.get_size()
        left, bottom, right, top = (ctypes.c_float() for _ in range(4))
        for i in range(min(pdfium_c.FPDFPage_CountObjects(page.raw), 5000)):
            obj = pdfium_c.FPDFPage_GetObject(page.raw, i)
            if pdfium_c.FPDFPageObj_GetType(obj) != pdfium_c.FPDF_PAGEOBJ_IMAGE:
                continue
            if not pdfium_c.FPDFPageObj_GetBounds(
                obj,
                ctypes.byref(left),
                ctypes.byref(bottom),
                ctypes.byref(right),
                ctypes.byref(top),
            ):
                continue
            w, h = right.value - left.value, top.value - bottom.value
            if w < _MIN_IMAGE_PT[0] or h < _MIN_IMAGE_PT[1] or w > _MAX_IMAGE_SHARE * width:
                continue
            if bottom.value < (1 - _HEADER_SHARE) * height:
                continue
            boxes.append((left.value, bottom.value, right.value, top.value))
            if len(boxes) >= _MAX_HEADER_IMAGES:
                break
        if not boxes or page.get_rotation():
            return []
        out: list[str] = []
        dpi = ocr.limits.dpi
        for x0, y0, x1, y1 in boxes:
            ocr.take_page()
            pad = 4.0
            crop = (
                max(0.0, x0 - pad),
                max(0.0, y0 - pad),
                max(0.0, width - x1 - pad),
                max(0.0, height - y1 - pad),
            )
            image = page.render(scale=dpi / 72, grayscale=True, crop=crop).to_pil()
            read = ocr.read(without_rules(image.convert("L")), dpi)
            if read.text.strip():
                out.append(read.text)
        return out
    finally:
        page.close()


# A page with fewer letters than this in its text layer is a scan when it holds an image,
# and text drawn as outlines when its paths hold curves or many segments (the outline of
# an O or a diacritic dot is curves, a letter has ten to forty segments; a table's rules
# and a header's underline are a handful of straight ones): a PDF printed with "text as
# curves", or converted to outlines by a design program, has no text layer at all while
# a reader sees every word.
_SCAN_LETTERS = 20
_OUTLINE_SEGMENTS = 400
_OUTLINE_CURVES = 12
_MAX_PAGE_OBJECTS = 5000  # looked at per page, form XObjects' objects included


_SCANNED = "scanned"
_OUTLINED = "outlined"


def _needs_ocr(pdf: Any, index: int, text: str) -> str | None:
    """Why a page must be read by OCR (``_SCANNED``: an image, ``_OUTLINED``: text drawn
    as outlines), or None."""
    if sum(1 for ch in text if ch.isalpha()) >= _SCAN_LETTERS:
        return None
    import pypdfium2.raw as pdfium_c

    page = pdf[index]
    try:
        pending = [
            pdfium_c.FPDFPage_GetObject(page.raw, i)
            for i in range(min(pdfium_c.FPDFPage_CountObjects(page.raw), _MAX_PAGE_OBJECTS))
        ]
        seen = segments = curves = 0
        bezier = pdfium_c.FPDF_SEGMENT_BEZIERTO
        while pending and seen < _MAX_PAGE_OBJECTS:
            obj = pending.pop()
            seen += 1
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                return _SCANNED
            if kind == pdfium_c.FPDF_PAGEOBJ_PATH:
                count = max(0, pdfium_c.FPDFPath_CountSegments(obj))
                segments += count
                if segments >= _OUTLINE_SEGMENTS:
                    return _OUTLINED  # (so at most that many segments are looked at)
                for k in range(count if curves < _OUTLINE_CURVES else 0):
                    segment = pdfium_c.FPDFPath_GetPathSegment(obj, k)
                    curves += pdfium_c.FPDFPathSegment_GetType(segment) == bezier
            elif kind == pdfium_c.FPDF_PAGEOBJ_FORM:
                inner = min(pdfium_c.FPDFFormObj_CountObjects(obj), _MAX_PAGE_OBJECTS - seen)
                pending += [pdfium_c.FPDFFormObj_GetObject(obj, i) for i in range(max(0, inner))]
    finally:
        page.close()
    return _OUTLINED if curves >= _OUTLINE_CURVES else None


def _ocr_page(pdf: Any, index: int, ocr: Ocr, *, drawn: bool = False) -> Any:
    """Render one page at the OCR resolution (grey) and read it (``drawn``: see
    ``Ocr.read``)."""
    ocr.take_page()
    dpi = ocr.limits.dpi
    page = pdf[index]
    try:
        if page.get_rotation():
            page.set_rotation(0)
        bitmap = page.render(scale=dpi / 72, grayscale=True, may_draw_forms=True)
        image = bitmap.to_pil()
    finally:
        page.close()
    return ocr.read(image, dpi, drawn=drawn)


def _pdfium_page_text(
    pdf: Any, index: int, attached: list[EmbeddedFile] | None = None, max_bytes: int = 0
) -> str:
    """One page's text. Annotations (stamps, comments) are read too: their /Contents, and
    their appearance streams by flattening them into the page (in memory only); the files
    attached to the page as annotations (Acrobat's "Attach File" comment: a paperclip on
    the page that opens the file) go to ``attached``. Text runs on one line that are set
    far apart (the two header columns of an official document, a stamp beside the date)
    are separated by a TAB, as the columns of a table are."""
    import pypdfium2.raw as pdfium_c

    page = pdf[index]
    comments: list[str] = []
    try:
        if page.get_rotation():
            # PDFium orders the lines of a turned page (/Rotate) bottom to top; the text
            # is the same in the page's own orientation
            page.set_rotation(0)
        annots = pdfium_c.FPDFPage_GetAnnotCount(page.raw)
        if annots > 0:
            comments, files = _annotations(pdf, page, annots, max_bytes)
            if attached is not None:
                attached += files
            if pdfium_c.FPDFPage_Flatten(page.raw, pdfium_c.FLAT_PRINT) == pdfium_c.FLATTEN_SUCCESS:
                page.close()
                page = pdf[index]
        textpage = page.get_textpage()
        try:
            text = _columned_text(textpage)
        finally:
            textpage.close()
    finally:
        page.close()
    if comments:
        text = text + "\n" + "\n".join(comments)
    return text


_MAX_COMMENTS = 200  # annotations whose comments (/Contents) are read, per page
_MAX_ANNOTATIONS = 10_000  # on one page: more is no document a reader pages through


def _annotations(
    pdf: Any, page: Any, count: int, max_bytes: int
) -> tuple[list[str], list[EmbeddedFile]]:
    """The comments (/Contents) of a page's first 200 annotations, and the files attached
    to it as file attachment annotations, looked for in every annotation (a file after
    200 others is still shown by a paperclip). An attachment annotation that names a file
    outside the PDF holds no bytes and is skipped."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    if count > _MAX_ANNOTATIONS:
        raise UnreadableDocument(TOO_LARGE, f"{count} annotations on one page")
    comments: list[str] = []
    files: list[EmbeddedFile] = []
    for i in range(count):
        annot = pdfium_c.FPDFPage_GetAnnot(page.raw, i)
        if not annot:
            continue
        try:
            size = 0
            if i < _MAX_COMMENTS:
                size = pdfium_c.FPDFAnnot_GetStringValue(annot, b"Contents", None, 0)
            if size > 2:
                buffer = ctypes.create_string_buffer(size)
                pdfium_c.FPDFAnnot_GetStringValue(
                    annot, b"Contents", ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ushort)), size
                )
                value = buffer.raw[: size - 2].decode("utf-16-le", "replace")
                if value.strip():
                    comments.append(value)
            if pdfium_c.FPDFAnnot_GetSubtype(annot) != pdfium_c.FPDF_ANNOT_FILEATTACHMENT:
                continue
            raw = pdfium_c.FPDFAnnot_GetFileAttachment(annot)
            if not raw:
                continue
            length = ctypes.c_ulong()
            pdfium_c.FPDFAttachment_GetFile(raw, None, 0, ctypes.byref(length))
            if not length.value:
                continue
            if length.value > max_bytes:  # not skipped: it would go unchecked
                raise UnreadableDocument(TOO_LARGE, f"attached file of {length.value} bytes")
            if len(files) >= _MAX_EMBEDDED:
                raise UnreadableDocument(TOO_LARGE, "more than 50 files attached to a page")
            attachment = pdfium.PdfAttachment(raw, pdf)
            name = attachment.get_name() or f"annotation-{i + 1}"
            files.append(EmbeddedFile(name=name, data=bytes(attachment.get_data())))
        finally:
            pdfium_c.FPDFPage_CloseAnnot(annot)
    return comments, files


# A gap wider than this many times the height of the character before it separates columns.
_COLUMN_GAP = 2.0


def _columned_text(textpage: Any) -> str:
    """The page's text in PDFium's order, a TAB where a space spans a column gap, a line
    break where PDFium joined two runs that are not on the same line."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    text: str = textpage.get_text_range()
    if " " not in text:
        return text
    raw = textpage.raw
    count = pdfium_c.FPDFText_CountChars(raw)
    if count != len(text):  # characters outside the BMP: indexes do not line up
        return text
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))

    def box(i: int) -> tuple[float, float, float, float] | None:
        if not pdfium_c.FPDFText_GetCharBox(
            raw, i, ctypes.byref(left), ctypes.byref(right), ctypes.byref(bottom), ctypes.byref(top)
        ):
            return None
        return left.value, right.value, bottom.value, top.value

    chars = list(text)
    start = 0
    while True:
        i = text.find(" ", start)
        if i < 0:
            break
        start = i + 1
        if i == 0 or i + 1 >= len(text) or text[i - 1] in " \r\n" or text[i + 1] in " \r\n":
            continue
        # only the spaces PDFium adds between text runs; spaces typed in the text are
        # ordinary (a column typed with many spaces is split by the marking rules)
        if not pdfium_c.FPDFText_IsGenerated(raw, i):
            continue
        before, after = box(i - 1), box(i + 1)
        if before is None or after is None:
            continue
        height = max(before[3] - before[2], after[3] - after[2], 1.0)
        gap = after[0] - before[1]
        rise = abs((after[2] + after[3]) - (before[2] + before[3])) / 2
        if rise > height or gap < -height:  # not on one line (a stamp drawn elsewhere)
            chars[i] = "\n"
        elif gap > _COLUMN_GAP * height:
            chars[i] = "\t"
    return "".join(chars)


def _pypdf_text(data: bytes, max_pages: int, max_chars: int) -> FileText:
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    # pypdf logs every repair it makes on broken files; hostile input is routine here
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise UnreadableDocument(ENCRYPTED, "encrypted PDF")
        pages: list[str] = []
        size = 0
        for index, page in enumerate(reader.pages):
            if index >= max_pages:
                break
            text = page.extract_text() or ""
            pages.append(text)
            size += len(text)
            if size > max_chars:
                break
        props: list[tuple[str, str]] = []
        meta: Any = reader.metadata or {}
        for key, name in _PDF_KEYS:
            value = meta.get("/" + key)
            if value:
                props.append((name, normalize_text(str(value), 4000)))
    except FileNotDecryptedError as exc:
        raise UnreadableDocument(ENCRYPTED, "encrypted PDF") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise UnreadableDocument(CORRUPT, f"pypdf cannot read the PDF: {exc}") from exc
    return FileText(text=normalize_text("\n\f".join(pages), max_chars), properties=tuple(props))


# ---------------------------------------------------------------- images (OCR)

# Smaller images are logos, signatures and icons: not documents, not read.
MIN_IMAGE_SIDE = 400
MAX_IMAGE_PIXELS = 60_000_000  # 8.5 x 11 in at 600 dpi is 34 Mpx


def image_text(data: bytes, ocr: Ocr) -> FileText:
    """Text of an image attachment by OCR (PNG, JPEG, TIFF, GIF, BMP, WebP, AVIF by
    Pillow; HEIC, an iPhone's photo, through pillow-heif), every frame of a TIFF, an
    animated GIF or a HEIC sequence."""
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        width, height = image.size
    except Image.DecompressionBombError as exc:
        raise UnreadableDocument(TOO_LARGE, f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # no viewer can show it either: nothing readable, as before OCR
        raise UnreadableDocument(UNSUPPORTED, f"not a decodable image: {exc}") from exc
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableDocument(TOO_LARGE, f"image of {width}x{height} pixels")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise UnreadableDocument(UNSUPPORTED, f"small image ({width}x{height}): not a document")
    texts: list[str] = []
    illegible: list[int] = []
    pages: list[int] = []
    try:
        for frame in range(frames):
            image.seek(frame)
            ocr.take_page()
            dpi = _image_dpi(image)
            read = ocr.read(image, dpi)
            pages.append(frame + 1)
            if not read.legible:
                illegible.append(frame + 1)
            texts.append(read.text)
    except (OSError, ValueError, EOFError) as exc:
        raise UnreadableDocument(CORRUPT, f"unreadable image: {exc}") from exc
    return FileText(
        text=normalize_text("\n\f".join(texts)),
        pages=frames,
        ocr_pages=tuple(pages),
        illegible_pages=tuple(illegible),
    )


_HEIF_REGISTERED = False


def _register_heif() -> None:
    """Let Pillow open HEIC/HEIF files (pillow-heif's opener), once per process."""
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _HEIF_REGISTERED = True


def _image_dpi(image: Any) -> int:
    """The resolution the image declares, else the one that makes it an A4 page."""
    declared = image.info.get("dpi")
    if declared:
        try:
            value = round(float(declared[0]))
        except (TypeError, ValueError, IndexError):
            value = 0
        if 70 <= value <= 1200:
            return value
    return max(70, min(1200, round(min(image.size) / 8.27)))


# ---------------------------------------------------------------- legacy Word/Excel (OLE)

# Word 97-2003 keeps text outside cp1252 (all Vietnamese text) as UTF-16LE, paragraphs
# ended by CR, table cells by BEL. Runs of such text are read straight from the file.
_OLE_TEXT = re.compile(
    "[\t\r\n\x07\x0b\x20-\x7e\xa0-\u024f\u0300-\u036f\u1e00-\u1eff\u2010-\u2027]{4,}"
)


def office_encrypted(data: bytes) -> bool:
    """True for a password-protected Office file in a compound (OLE) file: a DOCX/XLSX/
    PPTX saved with "Encrypt with Password" (an EncryptedPackage stream) or a legacy
    .doc/.xls/.ppt with its encryption flag set, as msoffcrypto-tool reads them. Its text
    is ciphertext: read as UTF-16 runs it would show no marking at all. False for any
    other compound file (or one msoffcrypto-tool does not know)."""
    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:  # boundary: not an Office file msoffcrypto-tool knows (a .msg, ...)
        return False


def ole_text(data: bytes, max_chars: int, *, max_embedded_bytes: int | None = None) -> FileText:
    """Best-effort text of a legacy .doc/.xls/.ppt: UTF-16LE runs, one paragraph a line;
    and the files embedded in it as objects (:func:`ole_objects`), walked by the
    extraction like a PDF's.

    Not a parser of the compound file's text: text stored as 8-bit cp1252 (pure ASCII
    paragraphs) is missed, and fragments of other streams may appear. A password-protected
    one (:func:`office_encrypted`) is ``encrypted``, not read.
    """
    if office_encrypted(data):
        raise UnreadableDocument(ENCRYPTED, "password-protected Office document")
    # Text starts at an even offset in a .doc; an .xls packs each string after a 3-byte
    # header (its length and a flag), so half of its cells start at an odd one: both
    # alignments are read (text of one alignment is no letters of ours in the other).
    aligned = data[: len(data) & ~1].decode("utf-16-le", errors="replace")
    odd = data[1 : 1 + ((len(data) - 1) & ~1)].decode("utf-16-le", errors="replace")
    runs: list[str] = []
    size = 0
    for match in itertools.chain(_OLE_TEXT.finditer(aligned), _OLE_TEXT.finditer(odd)):
        run = match.group().translate({0x0D: "\n", 0x07: "\n", 0x0B: "\n"})
        if _SHEET_HEADER_SECTION.search(run):  # an .xls sheet's page header or footer
            run = sheet_header_text(run)
        runs.append(run)
        size += len(run)
        if size > max_chars:
            break
    return FileText(
        text=normalize_text("\n".join(runs), max_chars),
        truncated=size > max_chars,
        embedded=ole_objects(data, max_embedded_bytes or len(data)),
    )


# Streams of a compound file that hold a whole file embedded as an object: an OLE
# Package (Insert > Object > from file, for any file Office has no editor for: a PDF, a
# text, an archive), an Office 2007+ document inside a legacy one ("Package"), the
# document of an object whose program keeps its own format in "CONTENTS" (Acrobat's PDF),
# and an attachment of an Outlook message saved as a .msg file (PR_ATTACH_DATA_BIN, in
# its "__attach_version1.0_#N" storage, beside the attachment's names).
_OLE_NATIVE = "\x01Ole10Native"
_MSG_ATTACHMENT = "__substg1.0_37010102"
_OLE_FILE_STREAMS = frozenset({_OLE_NATIVE, "Package", "CONTENTS", _MSG_ATTACHMENT})
# The bodies of an Outlook message saved as a .msg file that are not UTF-16 text (the
# plain body, __substg1.0_1000001F, is read with the file's UTF-16 runs): the RTF body,
# compressed (PR_RTF_COMPRESSED), and the HTML body (PR_HTML), which Outlook shows first.
_MSG_RTF = "__substg1.0_10090102"
_MSG_HTML = "__substg1.0_10130102"
# PR_ATTACH_LONG_FILENAME, then PR_ATTACH_FILENAME, in UTF-16 (001F) or 8-bit (001E)
_MSG_NAMES = ("__substg1.0_3707001F", "__substg1.0_3704001F", "__substg1.0_3707001E",
              "__substg1.0_3704001E")  # fmt: skip


def ole_objects(data: bytes, max_bytes: int) -> tuple[EmbeddedFile, ...]:
    """The files embedded as objects in a compound (OLE) file: a legacy .doc/.xls/.ppt's
    ObjectPool, or a DOCX's ``word/embeddings/oleObject1.bin`` (which is such a file).
    A compound file olefile cannot read has none (its text is read as before); an object
    larger than ``max_bytes``, or more than fifty, make it ``too-large``; an OLE Package
    whose lengths do not add up is ``corrupt``."""
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))  # bytes under 1,536 would be a path
    except Exception:  # boundary: not a compound file olefile can read
        return ()
    with ole:
        try:
            paths = [p for p in ole.listdir(streams=True, storages=False) if p]
        except Exception:  # boundary: a directory olefile cannot walk
            return ()
        found = [p for p in paths if p[-1] in _OLE_FILE_STREAMS]
        if len(found) > _MAX_EMBEDDED:
            raise UnreadableDocument(TOO_LARGE, f"{len(found)} embedded objects")
        out: list[EmbeddedFile] = []
        for path in found:
            size = ole.get_size(path)
            if size > max_bytes + 4096:
                raise UnreadableDocument(TOO_LARGE, f"embedded object of {size} bytes")
            try:
                stream = ole.openstream(path).read()
            except Exception as exc:  # boundary: a chain of sectors olefile refuses
                raise UnreadableDocument(CORRUPT, f"embedded object unreadable: {exc}") from exc
            place = "/".join(path[:-1]) or "object"
            if path[-1] == _OLE_NATIVE:
                name, content = ole_native(stream)
                out.append(EmbeddedFile(name or place, content))
            elif path[-1] == _MSG_ATTACHMENT:
                out.append(EmbeddedFile(_msg_attachment_name(ole, path[:-1]) or place, stream))
            else:
                out.append(EmbeddedFile(f"{place}/{path[-1]}", stream))
            if len(out[-1].data) > max_bytes:
                raise UnreadableDocument(TOO_LARGE, f"embedded object of {len(out[-1].data)} bytes")
        for path in paths:
            if path[-1] not in (_MSG_RTF, _MSG_HTML):
                continue
            if ole.get_size(path) > max_bytes + 4096:
                raise UnreadableDocument(TOO_LARGE, f"message body of {ole.get_size(path)} bytes")
            stream = _read_stream(ole, path)
            place = "/".join(path[:-1])
            if path[-1] == _MSG_RTF:
                out.append(
                    EmbeddedFile(_join_name(place, "body.rtf"), outlook_rtf(stream, max_bytes))
                )
            else:
                out.append(EmbeddedFile(_join_name(place, "body.html"), stream))
        if [_PPT_STREAM] in paths:
            stream = _read_stream(ole, [_PPT_STREAM])
            for index, storage in enumerate(ppt_objects(stream, max_bytes), start=1):
                out.append(EmbeddedFile(f"{_PPT_STREAM}/object {index}", storage))
            if len(out) > _MAX_EMBEDDED:
                raise UnreadableDocument(TOO_LARGE, f"{len(out)} embedded objects")
        return tuple(out)


def _join_name(place: str, name: str) -> str:
    return f"{place}/{name}" if place else name


def _read_stream(ole: olefile.OleFileIO, path: list[str]) -> bytes:
    try:
        return bytes(ole.openstream(path).read())
    except Exception as exc:  # boundary: a chain of sectors olefile refuses
        raise UnreadableDocument(CORRUPT, f"{'/'.join(path)} unreadable: {exc}") from exc


# A legacy PowerPoint file (.ppt, .pps) keeps each embedded object's storage, a compound
# file, in an ExOleObjStg record of its "PowerPoint Document" stream (MS-PPT 2.10.34),
# zlib-compressed when the record's instance is 1 (the size it inflates to first): not a
# stream the compound file's directory lists, so neither olefile's walk nor the UTF-16
# runs saw inside it. Record header: version and instance (2 bytes), type 0x1011, length.
_PPT_STREAM = "PowerPoint Document"
_PPT_OBJECT = re.compile(rb"[\x00\x10]\x00\x11\x10", re.DOTALL)
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


# A real .ppt has an ExOleObjStg header where it has an object; other bytes hold the four
# bytes by chance about once in 2 GB. More than this many is a file built to make the
# search below slow, not a presentation.
_PPT_MAX_HEADERS = 1000


def ppt_objects(stream: bytes, max_bytes: int) -> list[bytes]:
    """The compound files of the objects embedded in a .ppt's "PowerPoint Document"
    stream. PowerPoint finds its records through the persist directory's offsets, not by
    reading them one after another, so every ExOleObjStg record header is looked for: one
    whose body is (or inflates to) a compound file is an object; bytes that only look like
    a header (they neither inflate nor start a compound file) are not, and hide nothing
    PowerPoint could show either. An object over ``max_bytes``, more than fifty, or more
    than :data:`_PPT_MAX_HEADERS` headers, are ``too-large``. Each header costs a look at
    a few bytes (no copy of the stream after it)."""
    out: list[bytes] = []
    view = memoryview(stream)
    for seen, match in enumerate(_PPT_OBJECT.finditer(stream), start=1):
        if seen > _PPT_MAX_HEADERS:
            raise UnreadableDocument(TOO_LARGE, f"more than {_PPT_MAX_HEADERS} object headers")
        start = match.start()
        if start + 8 > len(stream):
            break
        (length,) = struct.unpack_from("<I", stream, start + 4)
        body = view[start + 8 : start + 8 + length]
        if stream[start] == 0x00:  # stored as it is
            if body[:8] != _CFB_MAGIC:
                continue
            if len(body) > max_bytes:
                raise UnreadableDocument(TOO_LARGE, f"embedded object of {len(body)} bytes")
            storage = bytes(body)
        else:
            storage = _inflate_ppt_object(body, max_bytes)
            if not storage:
                continue
        out.append(storage)
        if len(out) > _MAX_EMBEDDED:
            raise UnreadableDocument(TOO_LARGE, f"more than {_MAX_EMBEDDED} embedded objects")
    return out


def _inflate_ppt_object(body: memoryview, max_bytes: int) -> bytes:
    """A compressed ExOleObjStg's compound file, or b"" when the bytes are not one: its
    first kilobyte must inflate to a compound file's signature before the whole body is
    inflated (up to ``max_bytes`` and no further)."""
    if len(body) < 6 or body[4] & 0x0F != 8 or (body[4] << 8 | body[5]) % 31:
        return b""  # no zlib header after the size: not a compressed object
    try:
        head = zlib.decompressobj().decompress(body[4:1028], len(_CFB_MAGIC))
    except zlib.error:
        return b""
    if head != _CFB_MAGIC:
        return b""
    (declared,) = struct.unpack_from("<I", body, 0)
    if declared > max_bytes:
        raise UnreadableDocument(TOO_LARGE, f"embedded object of {declared} bytes")
    try:
        storage = zlib.decompressobj().decompress(body[4:], max_bytes + 1)
    except zlib.error:
        return b""  # PowerPoint cannot inflate it either
    if len(storage) > max_bytes:
        raise UnreadableDocument(TOO_LARGE, f"embedded object of more than {max_bytes} bytes")
    return storage


def _msg_attachment_name(ole: olefile.OleFileIO, storage: list[str]) -> str:
    """The file name Outlook shows for a .msg attachment (its storage's name streams)."""
    for stream in _MSG_NAMES:
        path = [*storage, stream]
        if not ole.exists(path) or ole.get_size(path) > 4096:
            continue
        try:
            raw = ole.openstream(path).read()
        except Exception:  # boundary: a name stream olefile refuses: the file stays
            continue
        codec = "utf-16-le" if stream.endswith("F") else "cp1258"
        return raw.decode(codec, errors="replace").rstrip("\x00")
    return ""


def ole_native(stream: bytes) -> tuple[str, bytes]:
    """The file name and content an ``\\x01Ole10Native`` stream holds (MS-OLEDS 2.3.6;
    the three layouts Apache POI reads): a packaged file (label, path, command, then
    its size and bytes), or the bytes alone after the size (and the flags). Raises
    ``corrupt`` when a length points past the stream."""
    try:
        (total,) = struct.unpack_from("<I", stream, 0)
        body = stream[4 : 4 + total]
        if total > len(stream) - 4:
            raise UnreadableDocument(CORRUPT, "OLE Package longer than its stream")
        (flags,) = struct.unpack_from("<H", body, 0)
        if flags != 2:  # "unparsed": the data follows the size
            return "", body
        if len(body) < 3 or body[2] < 0x20:  # "compact": the data follows the flags
            return "", body[2:]
        label, pos = _asciiz(body, 2)
        path, pos = _asciiz(body, pos)
        pos += 4  # flags and an unknown field
        (command,) = struct.unpack_from("<I", body, pos)
        pos += 4 + command
        (size,) = struct.unpack_from("<I", body, pos)
        pos += 4
    except struct.error as exc:
        raise UnreadableDocument(CORRUPT, "OLE Package cut short") from exc
    if pos + size > len(body):
        raise UnreadableDocument(CORRUPT, "OLE Package's file longer than the package")
    name = label or path.replace("\\", "/").rsplit("/", 1)[-1]
    return name, body[pos : pos + size]


def _asciiz(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\0", pos, pos + 1024)
    if end < 0:
        raise UnreadableDocument(CORRUPT, "OLE Package name without its end")
    # ANSI in the writer's code page: cp1252 keeps every byte (a name is only a label)
    return data[pos:end].decode("cp1252", errors="replace"), end + 1


@dataclass(frozen=True)
class TnefContent:
    """What a TNEF stream (Outlook's ``winmail.dat``) carries: its attachments (name,
    bytes) and the message's body as plain text and as HTML, when present."""

    files: tuple[EmbeddedFile, ...]
    body: str = ""
    html: str = ""
    rtf: bytes = b""  # the RTF body Outlook shows, decompressed (:func:`outlook_rtf`)


def tnef_content(data: bytes, *, max_files: int, max_bytes: int) -> TnefContent:
    """The attachments and bodies of a TNEF stream, read with tnefparse. Outlook sends
    a message in "Rich Text Format" to others as a ``winmail.dat`` part: Outlook shows its
    attachments as the message's own, other clients a ``winmail.dat`` file. Raises
    ``corrupt`` when tnefparse cannot read it, ``too-large`` past ``max_files``
    attachments or ``max_bytes`` in all."""
    _count_tnef_attributes(data)
    try:
        tnef = tnefparse.TNEF(data, do_checksum=False)
    except Exception as exc:  # boundary: tnefparse raises what its parsing meets
        raise UnreadableDocument(CORRUPT, f"TNEF unreadable: {type(exc).__name__}") from exc
    if len(tnef.attachments) > max_files:
        raise UnreadableDocument(TOO_LARGE, f"{len(tnef.attachments)} TNEF attachments")
    files: list[EmbeddedFile] = []
    total = 0
    for attachment in tnef.attachments:
        content = attachment.data if isinstance(attachment.data, bytes) else b""
        total += len(content)
        if total > max_bytes:
            raise UnreadableDocument(TOO_LARGE, f"TNEF attachments over {max_bytes} bytes")
        files.append(EmbeddedFile(_tnef_name(attachment), content))
    # PR_RTF_COMPRESSED, kept by tnefparse as it is (its ``rtfbody`` would inflate it
    # without a bound): the body of a "Rich Text Format" message as Outlook shows it
    compressed = getattr(tnef, "_rtfbody", None)
    if isinstance(compressed, list):
        compressed = compressed[0] if compressed else None
    rtf = outlook_rtf(compressed, max_bytes) if isinstance(compressed, bytes) else b""
    return TnefContent(tuple(files), _tnef_text(tnef.body), _tnef_text(tnef.htmlbody), rtf)


# An RTF body inflated in pure Python costs 0.3 to 0.6 s of CPU per MB; Outlook keeps
# pictures and objects as attachments, so a body of a few hundred KB is already long.
# LZFu turns 17 bytes into at most 136 whatever size the header declares: a compressed
# body of 1 MB inflates to 8 MB at most (some 5 s), which the bound on the input keeps.
MAX_RTF_BODY = 4 << 20
MAX_RTF_COMPRESSED = 1 << 20


def outlook_rtf(data: bytes, max_bytes: int = MAX_RTF_BODY) -> bytes:
    """An RTF body as Outlook stores it (PR_RTF_COMPRESSED, MS-OXRTFCP: LZFu-compressed,
    or "MELA", stored), inflated with compressed_rtf. Raises ``too-large`` when its
    declared or real size passes ``max_bytes`` or :data:`MAX_RTF_BODY`, or its compressed
    size :data:`MAX_RTF_COMPRESSED`; ``corrupt`` when it cannot be read (a wrong CRC, an
    unknown kind)."""
    limit = min(max_bytes, MAX_RTF_BODY)
    if len(data) < 16:
        raise UnreadableDocument(CORRUPT, "compressed RTF body cut short")
    compressed_size, raw_size = struct.unpack_from("<II", data)
    packed = min(compressed_size, len(data))
    if raw_size > limit or packed > min(limit, MAX_RTF_COMPRESSED + 12):
        raise UnreadableDocument(TOO_LARGE, f"RTF body of {max(raw_size, packed)} bytes")
    try:
        rtf = bytes(compressed_rtf.decompress(data))
    except Exception as exc:  # boundary: compressed_rtf raises a bare Exception
        raise UnreadableDocument(CORRUPT, f"compressed RTF body unreadable: {exc}") from exc
    if len(rtf) > limit:
        raise UnreadableDocument(TOO_LARGE, f"RTF body of {len(rtf)} bytes")
    return rtf


# A winmail.dat holds a few dozen attributes, a few more per attachment. tnefparse copies
# the rest of the stream for each one: 80,000 one-byte attributes (960 KB) took it 1.35 s.
_TNEF_MAX_ATTRIBUTES = 5000


def _count_tnef_attributes(data: bytes) -> None:
    """Walk the attribute lengths (no copy) and refuse a stream of more than
    ``_TNEF_MAX_ATTRIBUTES`` as ``too-large``, before tnefparse reads it."""
    offset, count = 6, 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<I", data, offset + 5)
        offset += 11 + length
        count += 1
        if count > _TNEF_MAX_ATTRIBUTES:
            detail = f"TNEF of more than {_TNEF_MAX_ATTRIBUTES} attributes"
            raise UnreadableDocument(TOO_LARGE, detail)


def _tnef_name(attachment: Any) -> str:
    try:
        name = attachment.long_filename()
    except (UnicodeDecodeError, AttributeError):  # an 8-bit name in the sender's code page
        name = getattr(attachment, "_name", "")  # the raw title tnefparse keeps
    if isinstance(name, bytes):
        name = name.decode("cp1258", errors="replace")
    return str(name or "").strip("\x00")


def _tnef_text(value: object) -> str:
    if isinstance(value, bytes):
        return decode_text(value, None)
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- uuencoded files

# A file uuencoded into a text body ("begin 644 bao-cao.pdf" ... "end"), as mail programs
# sent attachments before MIME and some still do: Thunderbird and Outlook show it as an
# attachment of the message.
_UU_BEGIN = re.compile(rb"^begin [0-7]{3,4} ([^\r\n]+?)\r?$", re.MULTILINE)
_UU_END = re.compile(rb"^end\r?$", re.MULTILINE)


def uuencoded_files(text: bytes, max_bytes: int) -> tuple[EmbeddedFile, ...]:
    """The files uuencoded in a text body, each with the name its ``begin`` line gives. A
    ``begin`` line followed by a line that does not decode is prose, not a file; a later
    line that does not decode is ``corrupt`` (as for Python's uu module, a line whose
    length character claims less than it carries is cut to it, as encoders pad); more
    than fifty files, or more than ``max_bytes`` in all, ``too-large``. A block without
    its ``end`` line runs to the next ``begin`` line or the end of the text (each line is
    read once)."""
    out: list[EmbeddedFile] = []
    total = 0
    begin = _UU_BEGIN.search(text)
    while begin is not None:
        following = _UU_BEGIN.search(text, begin.end())
        limit = following.start() if following else len(text)
        end = _UU_END.search(text, begin.end(), limit)  # within this block only
        block = text[begin.end() : end.start() if end else limit]
        current, begin = begin, following
        pieces: list[bytes] = []
        for line in block.split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            piece = _uu_line(line)
            if piece is None and not pieces:
                break  # "begin 2024 ..." in a text: no file follows
            if piece is None:
                raise UnreadableDocument(CORRUPT, "uuencoded line unreadable")
            pieces.append(piece)
            total += len(piece)
            if total > max_bytes:
                raise UnreadableDocument(TOO_LARGE, f"uuencoded files over {max_bytes} bytes")
        if not pieces:
            continue
        name = current.group(1).decode("utf-8", "replace").strip()
        out.append(EmbeddedFile(name, b"".join(pieces)))
        if len(out) > _MAX_EMBEDDED:
            raise UnreadableDocument(TOO_LARGE, f"more than {_MAX_EMBEDDED} uuencoded files")
    return tuple(out)


def _uu_line(line: bytes) -> bytes | None:
    """One uuencoded line's bytes, or None when it is not one."""
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        size = (((line[0] - 32) & 63) * 4 + 5) // 3
        try:
            return binascii.a2b_uu(line[:size])
        except binascii.Error:
            return None


# ---------------------------------------------------------------- data: URIs

# A picture or a file written into an HTML body as a data: URI (RFC 2397): an <img src>
# the mail program shows in the message, a link, an object, a CSS background. A quoted
# value runs to its closing quote (base64 may be broken over lines), an unquoted one to
# white space or the tag's end.
_DATA_URI = re.compile(
    rb"(?:\b(?:src|href|data|background)\s*=\s*|url\(\s*)"
    rb"(?:\"\s*(data:[^\"]*)\"|'\s*(data:[^']*)'|(data:[^\s>)]*))",
    re.IGNORECASE,
)
_DATA_URI_PARTS = re.compile(rb"data:([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)?((?:;[^,;]*)*),(.*)", re.S)
_DATA_URI_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
                        "image/webp": ".webp", "image/bmp": ".bmp", "image/tiff": ".tif",
                        "application/pdf": ".pdf", "text/plain": ".txt",
                        "text/html": ".html"}  # fmt: skip


def data_uri_files(html: bytes, max_bytes: int) -> tuple[EmbeddedFile, ...]:
    """The files written into an HTML text as data: URIs, named ``data-uri-N`` with the
    extension of their type. A base64 payload that does not decode is ``corrupt``; more
    than fifty, or more than ``max_bytes`` in all, ``too-large``."""
    out: list[EmbeddedFile] = []
    total = 0
    for match in _DATA_URI.finditer(html):
        parts = _DATA_URI_PARTS.fullmatch(match.group(1) or match.group(2) or match.group(3))
        if parts is None:
            continue  # "data:" without a comma: no payload
        kind = (parts.group(1) or b"text/plain").decode("ascii").lower()
        params, payload = parts.group(2).lower(), parts.group(3)
        if b";base64" in params:
            try:
                data = base64.b64decode(re.sub(rb"\s+", b"", payload), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise UnreadableDocument(CORRUPT, f"data: URI unreadable: {exc}") from exc
        else:
            data = urllib.parse.unquote_to_bytes(payload)
        total += len(data)
        if total > max_bytes:
            raise UnreadableDocument(TOO_LARGE, f"data: URIs over {max_bytes} bytes")
        name = f"data-uri-{len(out) + 1}{_DATA_URI_EXTENSIONS.get(kind, '')}"
        out.append(EmbeddedFile(name, data))
        if len(out) > _MAX_EMBEDDED:
            raise UnreadableDocument(TOO_LARGE, f"more than {_MAX_EMBEDDED} data: URIs")
    return tuple(out)


# ---------------------------------------------------------------- calendar attachments

CALENDAR = "text/calendar"
# A file written into an iCalendar object (RFC 5545 §3.8.1.1: ``ATTACH;ENCODING=BASE64;
# VALUE=BINARY;FMTTYPE=application/pdf;X-FILENAME=qd.pdf:JVBERi0...``): Outlook shows it
# as an attachment of the meeting. Found on the unfolded text (a content line continues
# on lines that start with a space or a tab); an ATTACH without ENCODING=BASE64 is a URI.
# A parameter value is quoted or has no quote: a value both ways would let a line of quoted
# values without its colon be tried 2^n ways.
_ICS_FOLD = re.compile(rb"\r?\n[ \t]")
_ICS_ATTACH = re.compile(
    rb'^ATTACH((?:;[A-Za-z0-9-]+=(?:"[^"\r\n]*"|[^";:\r\n]*))*):', re.IGNORECASE | re.MULTILINE
)
_ICS_PARAM = re.compile(rb'(?i);([A-Za-z0-9-]+)=("[^"\r\n]*"|[^";:\r\n]*)')
_ICS_NAMES = (b"X-FILENAME", b"FILENAME", b"X-ORACLE-FILENAME", b"X-APPLE-FILENAME")


def has_calendar_attachment(text: bytes) -> bool:
    """Whether an iCalendar text may carry an inline file (a cheap look first)."""
    return re.search(rb"(?im)^attach;", text) is not None


def calendar_files(text: bytes, max_bytes: int) -> tuple[EmbeddedFile, ...]:
    """The files written into an iCalendar text as base64 ``ATTACH`` values, each with
    the name its ``X-FILENAME``/``FILENAME`` parameter gives (else ``calendar-N`` with
    the extension of its ``FMTTYPE``). A value that does not decode is ``corrupt``; more
    than fifty, or more than ``max_bytes`` in all, ``too-large``."""
    unfolded = _ICS_FOLD.sub(b"", text)
    out: list[EmbeddedFile] = []
    total = 0
    for match in _ICS_ATTACH.finditer(unfolded):
        params = {
            key.upper(): value.strip(b'"') for key, value in _ICS_PARAM.findall(match.group(1))
        }
        if params.get(b"ENCODING", b"").upper() != b"BASE64":
            continue  # a URI: nothing inside the calendar
        end = unfolded.find(b"\n", match.end())
        value = unfolded[match.end() : end if end != -1 else len(unfolded)]
        try:
            data = base64.b64decode(re.sub(rb"\s+", b"", value), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UnreadableDocument(CORRUPT, f"calendar attachment unreadable: {exc}") from exc
        if not data:
            continue  # an empty value: no file
        total += len(data)
        if total > max_bytes:
            raise UnreadableDocument(TOO_LARGE, f"calendar attachments over {max_bytes} bytes")
        name = next((params[key] for key in _ICS_NAMES if params.get(key)), b"").decode(
            "utf-8", "replace"
        )
        if not name:
            kind = params.get(b"FMTTYPE", b"").decode("ascii", "replace").lower()
            name = f"calendar-{len(out) + 1}{_DATA_URI_EXTENSIONS.get(kind, '')}"
        out.append(EmbeddedFile(name, data))
        if len(out) > _MAX_EMBEDDED:
            raise UnreadableDocument(TOO_LARGE, f"more than {_MAX_EMBEDDED} calendar attachments")
    return tuple(out)


# ---------------------------------------------------------------- HTML

_BLOCK_TAGS = frozenset(
    "p div br tr li ul ol h1 h2 h3 h4 h5 h6 table blockquote pre hr section article "
    "header footer center title dt dd".split()
)
_SKIP_TAGS = frozenset(("script", "style", "head", "template"))


class _HtmlToText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")
        elif tag == "td" or tag == "th":
            self.out.append("\t")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


_RTF_CODEPAGE = re.compile(rb"\\ansicpg(\d{3,5})")
# Groups striprtf leaves out as "destinations" although Word shows their text: page
# headers and footers, footnotes, comments (``\annotation``), and text boxes (a shape's
# text, inside an ignorable ``{\*\shpinst}``): where a classification stamp often stands.
# Renamed to a word it does not know, so their text is kept; the shapes' properties
# (``\sn``/``\sv``) stay out.
_RTF_PRINTED = re.compile(
    r"(?:\\\*)?\\(?:header[lrf]?|footer[lrf]?|footnote|annotation|shpgrp|shpinst|shptxt|shp)"
    r"(?![a-zA-Z])"
)


def rtf_text(data: bytes, max_chars: int, *, max_embedded_bytes: int | None = None) -> FileText:
    """The text of an RTF document (Word's "Rich Text Format"), by striprtf: ``\\uN``
    escapes (how Word writes Vietnamese) and ``\\'xx`` bytes in the document's code page
    (``\\ansicpg``, default cp1252); page headers, footers, footnotes, comments and text
    boxes included; pictures, fields' instructions and other destinations left out. The
    files embedded in it as objects (:func:`rtf_objects`) are walked like a PDF's."""
    m = _RTF_CODEPAGE.search(data[:4096])
    encoding = f"cp{int(m.group(1))}" if m else "cp1252"
    try:
        codecs.lookup(encoding)
    except LookupError:  # striprtf would fall back to UTF-8: Windows-1252 is the default
        encoding = "cp1252"
        data = _RTF_CODEPAGE.sub(rb"\\ansicpg1252", data)
    source = _RTF_PRINTED.sub(r"\\mailsvcprinted ", data.decode(encoding, "replace"))
    try:
        text = rtf_to_text(source, encoding=encoding, errors="replace")
    except Exception as exc:  # boundary: striprtf on hostile escapes and braces
        raise UnreadableDocument(CORRUPT, f"RTF cannot be read: {exc}") from exc
    objects = rtf_objects(data, max_embedded_bytes or len(data))
    return FileText(normalize_text(text, max_chars), embedded=objects)


# An object inserted into an RTF document (Insert > Object > Create from file) is an OLE 1
# object written as hex in an ``{\*\objdata ...}`` group (MS-OLEDS 2.2.4): a header (OLE
# version, format 2 = embedded, class name, topic, item), then the native data's size and
# bytes: an OLE Package (the packaged file) for class "Package", a compound file for an
# Office document or Acrobat's PDF object.
_RTF_OBJDATA = re.compile(rb"\\objdata(?![a-zA-Z])")
_RTF_NOT_HEX = re.compile(rb"[^0-9A-Fa-f]")
_OLE1_EMBEDDED = 2


def rtf_objects(data: bytes, max_bytes: int) -> tuple[EmbeddedFile, ...]:
    """The files embedded as objects in an RTF document: the packaged file of a
    "Package", the compound file of any other class (walked as such). An object whose
    lengths do not add up is ``corrupt``; one over ``max_bytes``, or more than fifty,
    ``too-large``. Linked objects (their data elsewhere) have none."""
    out: list[EmbeddedFile] = []
    matches = list(_RTF_OBJDATA.finditer(data))
    for index, match in enumerate(matches):
        # the group's hex runs to its "}", and never past the next \objdata: each byte once
        limit = matches[index + 1].start() if index + 1 < len(matches) else len(data)
        end = data.find(b"}", match.end(), limit)
        digits = _RTF_NOT_HEX.sub(b"", data[match.end() : end if end >= 0 else limit])
        if len(digits) // 2 > max_bytes + 4096:
            raise UnreadableDocument(TOO_LARGE, f"embedded object of {len(digits) // 2} bytes")
        found = _ole1_object(bytes.fromhex(digits[: len(digits) & ~1].decode("ascii")))
        if found is None:
            continue
        if len(found.data) > max_bytes:
            raise UnreadableDocument(TOO_LARGE, f"embedded object of {len(found.data)} bytes")
        out.append(found)
        if len(out) > _MAX_EMBEDDED:
            raise UnreadableDocument(TOO_LARGE, f"more than {_MAX_EMBEDDED} embedded objects")
    return tuple(out)


def _ole1_object(raw: bytes) -> EmbeddedFile | None:
    """An OLE 1 object's file (see :func:`rtf_objects`); None for a linked one."""
    try:
        _version, kind = struct.unpack_from("<II", raw, 0)
        if kind != _OLE1_EMBEDDED:
            return None
        pos = 8
        names: list[str] = []
        for _ in range(3):  # class, topic, item: length (NUL included), then the bytes
            (length,) = struct.unpack_from("<I", raw, pos)
            if length > 4096:
                raise UnreadableDocument(CORRUPT, "OLE 1 object name too long")
            names.append(raw[pos + 4 : pos + 4 + length].rstrip(b"\0").decode("cp1252"))
            pos += 4 + length
        (size,) = struct.unpack_from("<I", raw, pos)
    except struct.error as exc:
        raise UnreadableDocument(CORRUPT, "OLE 1 object cut short") from exc
    native = raw[pos + 4 : pos + 4 + size]
    if len(native) < size:
        raise UnreadableDocument(CORRUPT, "OLE 1 object's data shorter than it says")
    if names[0] == "Package":  # the packager's data, without the stream's own size field
        name, content = ole_native(struct.pack("<I", len(native)) + native)
        return EmbeddedFile(name or "object", content)
    return EmbeddedFile(names[0] or "object", native)


def html_text(html: str, max_chars: int) -> str:
    """Visible text of an HTML body; block elements end lines, whitespace runs collapse."""
    parser = _HtmlToText()
    parser.feed(html[: max_chars * 4])
    parser.close()
    lines = (
        "\t".join(" ".join(cell.split()) for cell in line.split("\t")).strip("\t")
        for line in "".join(parser.out).split("\n")
    )
    return normalize_text("\n".join(_squeeze(lines)), max_chars)


def _squeeze(lines: Iterator[str]) -> Iterator[str]:
    blank = False
    for line in lines:
        if line:
            blank = False
            yield line
        elif not blank:
            blank = True
            yield ""


def decode_text(data: bytes, charset: str | None) -> str:
    """``data`` in the charset the sender declared, else UTF-8, else Windows-1258. A
    declared charset is the sender's text: besides unknown names (LookupError), Python
    raises ValueError for a name holding NUL and UnicodeError (a ValueError) for a
    surrogate in it or from codecs such as idna or punycode, even with "replace"."""
    for encoding in (charset, "utf-8"):
        if not encoding:
            continue
        try:
            return data.decode(encoding)
        except (LookupError, ValueError):
            continue
    return data.decode("cp1258", "replace")
