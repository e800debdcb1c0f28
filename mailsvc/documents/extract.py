"""Text extraction from a whole message: subject, bodies, attachments, archives, nested mail.

One extraction per message serves every stage that reads text (classification, metadata):

    extractor = TextExtractor(executor=pool, limits=ExtractionLimits())
    text = await extractor.extract(inbound)      # ExtractedText, cached by sha256 of the bytes
    for part in text.parts: ...                  # DocumentPart(source, filename, ..., text)

The heavy work (MIME decoding, unzipping, PDF/DOCX/ODT parsing) runs in ``executor``, in one
call per message (:func:`extract_message_bytes`). Every step is bounded by
:class:`ExtractionLimits`: sizes, counts, nesting depth, pages, characters and CPU time. A
timeout raises :class:`ExtractionError`; when the executor can recycle its workers
(:class:`mailsvc.documents.pool.WorkerPool`) the stuck worker is killed.

What is walked (depth-first, in MIME order):
- the Subject of the message (source ``subject``);
- inline ``text/plain`` and ``text/html`` parts without a file name (source ``body``);
- every other leaf part is an attachment: its file name (source ``filename``), its text when it
  is PDF, DOCX/XLSX/PPTX, ODF, HTML or text (``attachment``) and its document properties
  (``pdf-metadata`` for PDF Title/Subject/Keywords, ``doc-metadata`` for OOXML/ODF);
- ``message/rfc822`` parts (forwarded mail, ``.eml`` files) are walked like the top message;
- zip, tar, RAR and 7z archives (RAR and 7z by libarchive), and files embedded in PDFs
  and in DOCX/XLSX/PPTX (objects), are opened and their members walked;
- signed and compressed CMS (opaque S/MIME, ``x.pdf.p7m``) are opened and what they enclose
  walked (``ExtractedText.enclosed`` keeps it for the virus scan); an encrypted one, a
  PGP/MIME ``multipart/encrypted`` message and an encrypted OpenPGP file are failures of
  kind ``encrypted``;
- nesting stops at ``max_depth``; limits that are hit are reported as failures, never ignored.
Kinds we cannot read (small images, unknown types) are listed in ``skipped``.
"""

from __future__ import annotations

import asyncio
import email
import email.errors
import email.header
import email.policy
import hashlib
import io
import logging
import pickle
import signal
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from functools import cached_property
from types import FrameType
from typing import Any, Protocol

import libarchive

from mailsvc.documents import cms as cms_files
from mailsvc.documents import formats
from mailsvc.documents.formats import (
    CORRUPT,
    ENCRYPTED,
    TIMEOUT,
    TOO_LARGE,
    UNSUPPORTED,
    UnreadableDocument,
    normalize_text,
)
from mailsvc.documents.ocr import ILLEGIBLE, Ocr, OcrLimits
from mailsvc.errors import MailsvcError
from mailsvc.message import InboundMessage, decoded_payload, parse_tree
from mailsvc.originator import Originator, read_originator

log = logging.getLogger(__name__)

__all__ = [
    "CORRUPT",
    "ENCRYPTED",
    "TIMEOUT",
    "TOO_LARGE",
    "UNSUPPORTED",
    "DocumentPart",
    "ExtractedText",
    "ExtractionError",
    "ExtractionFailure",
    "ExtractionLimits",
    "RawDocument",
    "Source",
    "TextExtractor",
    "extract_message_bytes",
    "iter_document_parts",
    "iter_documents",
]


class Source:
    """Where a piece of text came from (``DocumentPart.source``)."""

    SUBJECT = "subject"
    BODY = "body"
    ATTACHMENT = "attachment"  # text of an attached (or archived, or embedded) file
    FILENAME = "filename"  # the file name of an attachment or archive member
    PDF_METADATA = "pdf-metadata"  # PDF Title / Subject / Keywords
    DOC_METADATA = "doc-metadata"  # DOCX/ODT core properties: title, subject, keywords


class ExtractionError(MailsvcError):
    """The message's text could not be extracted at all (timeout, worker crash)."""


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on one message's extraction. Picklable; passed to the worker."""

    timeout_s: float = 10.0  # wall time per message (OCR included), enforced by the caller
    cpu_s: float = 8.0  # CPU time per message inside the worker (main thread only)
    max_depth: int = 4  # message → attachment → archive → member → ...
    max_documents: int = 500  # parts of all kinds per message
    max_file_bytes: int = 50 << 20  # one attachment or archive member, decoded
    max_expanded_bytes: int = 200 << 20  # all archive members of one message together
    max_pdf_pages: int = 300
    max_text_chars: int = 2_000_000  # per part
    max_xml_bytes: int = 64 << 20  # one XML member of a DOCX/ODT package
    memory_bytes: int = 1 << 30  # RLIMIT_AS for pool workers (see pool.WorkerPool)
    # scanned PDF pages and images; the service sets timeout_s to cover ocr.timeout_s
    ocr: OcrLimits = field(default_factory=OcrLimits)


@dataclass(frozen=True)
class DocumentPart:
    """One piece of text found in a message. Stable API, also used by the metadata stage.

    ``location`` says where it sits without quoting content: ``subject``, ``body 1``,
    ``attachment 2``, ``attachment 2 > member 3``, ``attachment 1 > message > body 1``.
    ``depth`` is 0 for the message itself and its direct attachments.
    ``sha256`` is of the decoded file bytes for attachments (the same hash the store uses),
    of the UTF-8 text otherwise. ``properties`` holds (name, value) pairs for metadata parts.
    """

    source: str
    filename: str | None
    content_type: str
    sha256: str
    text: str
    location: str = ""
    depth: int = 0
    properties: tuple[tuple[str, str], ...] = ()
    truncated: bool = False
    pages: int = 0  # pages of a PDF or TIFF, 0 for formats without pages
    ocr_pages: tuple[int, ...] = ()  # 1-based pages whose text was read by OCR
    ocr_images: int = 0  # pictures on text pages read by OCR (stamps in the header)

    @property
    def text_source(self) -> str:
        """ "text layer", "OCR", "text layer + OCR (pages 2, 3)" or "text layer + OCR of
        1 image(s)"."""
        if self.ocr_images and not self.ocr_pages:
            return f"text layer + OCR of {self.ocr_images} image(s)"
        if not self.ocr_pages:
            return "text layer" if self.source == Source.ATTACHMENT else self.source
        if self.pages and len(self.ocr_pages) >= self.pages:
            return "OCR"
        listed = ", ".join(str(p) for p in self.ocr_pages)
        return f"text layer + OCR (pages {listed})"

    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class ExtractionFailure:
    """A part whose text could not be read; ``kind`` is corrupt/encrypted/too-large/timeout."""

    location: str
    kind: str
    content_type: str
    sha256: str
    detail: str = ""


@dataclass(frozen=True)
class ExtractedText:
    """Everything readable in one message."""

    message_sha256: str
    parts: tuple[DocumentPart, ...]
    failures: tuple[ExtractionFailure, ...] = ()
    skipped: tuple[ExtractionFailure, ...] = ()  # kinds we do not read (small images, ...)
    elapsed_ms: float = 0.0
    # What signed or compressed CMS parts (opaque S/MIME, x.pdf.p7m) enclose: in the
    # message as sent it is DER that clamd does not open, so the antivirus stage scans
    # these too (mailsvc.documents.cms)
    enclosed: tuple[bytes, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.failures

    def by_source(self, *sources: str) -> tuple[DocumentPart, ...]:
        return tuple(p for p in self.parts if p.source in sources)

    @property
    def subject(self) -> str:
        for part in self.parts:
            if part.source == Source.SUBJECT and part.depth == 0:
                return part.text
        return ""

    @property
    def body_text(self) -> str:
        """The top-level bodies: text/plain when present, else the HTML's text."""
        bodies = [p for p in self.parts if p.source == Source.BODY and p.depth == 0]
        plain = [p.text for p in bodies if p.content_type == "text/plain"]
        return "\n".join(plain or [p.text for p in bodies])

    def attachments(self, *, top_level: bool = True) -> tuple[DocumentPart, ...]:
        return tuple(
            p
            for p in self.parts
            if p.source == Source.ATTACHMENT and (p.depth == 0 or not top_level)
        )

    def main_attachment(self) -> DocumentPart | None:
        """The first top-level PDF with text, else the first DOCX/ODT, else any with text."""
        atts = [p for p in self.attachments() if p.text.strip()]
        for wanted in (formats.PDF, formats.DOCX, formats.ODT):
            for part in atts:
                if part.content_type == wanted:
                    return part
        return atts[0] if atts else None

    def properties_of(self, part: DocumentPart) -> dict[str, str]:
        """PDF/DOCX/ODT properties (title, subject, keywords) of an attachment part."""
        for p in self.parts:
            if (
                p.source in (Source.PDF_METADATA, Source.DOC_METADATA)
                and p.sha256 == part.sha256
                and p.location == part.location
            ):
                return dict(p.properties)
        return {}


@dataclass(frozen=True)
class RawDocument:
    """A leaf of the walk before text extraction: text for subject/body, bytes for files."""

    source: str
    location: str
    depth: int
    content_type: str
    filename: str | None = None
    data: bytes = b""
    text: str | None = None
    charset: str | None = None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- walking


@dataclass
class _Budget:
    limits: ExtractionLimits
    documents: int = 0
    expanded: int = 0
    failures: list[ExtractionFailure] = field(default_factory=list)
    skipped: list[ExtractionFailure] = field(default_factory=list)
    enclosed: list[bytes] = field(default_factory=list)  # ExtractedText.enclosed
    ocr: Ocr | None = None
    # set when the worker's CPU alarm fired: a parser may have turned the alarm's exception
    # into one of its own (ctypes raises ArgumentError when it fires inside an argument's
    # conversion) or swallowed it (a finaliser), and the boundary must not call that corrupt
    cpu_deadline_hit: bool = False

    def __post_init__(self) -> None:
        if self.ocr is None and self.limits.ocr.enabled:
            self.ocr = Ocr(self.limits.ocr)

    def take(self, location: str) -> bool:
        self.documents += 1
        if self.documents > self.limits.max_documents:
            if self.documents == self.limits.max_documents + 1:
                self.fail(location, TOO_LARGE, "", b"", "too many parts")
            return False
        return True

    def fail(self, location: str, kind: str, ctype: str, data: bytes, detail: str) -> None:
        self.failures.append(ExtractionFailure(location, kind, ctype, _sha(data), detail))


def iter_documents(
    msg: Message, limits: ExtractionLimits, budget: _Budget | None = None
) -> Iterator[RawDocument]:
    """Walk a parsed message and yield its documents (before text extraction).

    Archives and nested messages are expanded here (bounded by ``limits``); PDFs' embedded
    files are expanded later, by :func:`extract_message_bytes`, when the PDF is parsed.
    """
    yield from _walk_message(msg, "", 0, budget or _Budget(limits))


def _join(prefix: str, name: str) -> str:
    return f"{prefix} > {name}" if prefix else name


def _walk_message(msg: Message, prefix: str, depth: int, budget: _Budget) -> Iterator[RawDocument]:
    subject = _header_text(msg, "Subject")
    if subject and budget.take(prefix):
        loc = _join(prefix, "subject")
        yield RawDocument(Source.SUBJECT, loc, depth, "text/plain", text=subject)
    counters = {"body": 0, "attachment": 0}
    yield from _walk_part(msg, prefix, depth, budget, counters)


def _header_text(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError):
        return ""
    if not value:
        return ""
    if isinstance(value, email.header.Header):  # compat32: raw 8-bit or folded encoded words
        pieces = []
        for chunk, charset in email.header.decode_header(value):
            if isinstance(chunk, bytes):
                pieces.append(_decode_8bit(chunk, charset))
            else:
                pieces.append(chunk)
        text = "".join(pieces)
    else:
        text = decode_words(str(value))
    return " ".join(normalize_text(text, 10_000).split())


def _decode_8bit(data: bytes, charset: str | None) -> str:
    for encoding in (charset, "utf-8"):
        if encoding and encoding != "unknown-8bit":
            try:
                return data.decode(encoding)
            except (LookupError, ValueError):  # see formats.decode_text
                continue
    return data.decode("cp1258", "replace")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded (compat32 messages keep them); raw 8-bit UTF-8 (kept
    by compat32 as surrogate escapes) decoded; other text unchanged."""
    if not value.isascii():
        value = _decode_8bit(value.encode("utf-8", "surrogateescape"), None)
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError, email.errors.HeaderParseError):
        return value


def _walk_part(
    part: Message, prefix: str, depth: int, budget: _Budget, counters: dict[str, int]
) -> Iterator[RawDocument]:
    ctype = part.get_content_type()
    if ctype == "message/rfc822" or (part.is_multipart() and ctype.startswith("message/")):
        counters["attachment"] += 1
        loc = _join(prefix, f"attachment {counters['attachment']}")
        filename = _filename(part)
        if filename and budget.take(loc):
            yield RawDocument(Source.FILENAME, loc, depth, ctype, filename=filename)
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            if depth + 1 > budget.limits.max_depth:
                budget.fail(loc, TOO_LARGE, ctype, b"", "nesting too deep")
            else:
                yield from _walk_message(inner, _join(loc, "message"), depth + 1, budget)
        return
    if ctype == "multipart/encrypted":  # RFC 1847 (PGP/MIME): nothing here holds the key
        counters["attachment"] += 1
        loc = _join(prefix, f"attachment {counters['attachment']}")
        protocol = str(part.get_param("protocol", "") or "")
        budget.fail(loc, ENCRYPTED, ctype, b"", f"encrypted message ({protocol or ctype})")
        return
    if part.is_multipart():
        payload = part.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _walk_part(sub, prefix, depth, budget, counters)
        return
    filename = _filename(part)
    disposition = (part.get_content_disposition() or "").lower()
    if ctype in ("text/plain", "text/html") and not filename and disposition != "attachment":
        counters["body"] += 1
        loc = _join(prefix, f"body {counters['body']}")
        if budget.take(loc):
            data = _decoded(part)
            text = formats.decode_text(data, part.get_content_charset())
            yield RawDocument(Source.BODY, loc, depth, ctype, text=text, data=data)
            if _PGP_BEGIN in data:  # inline OpenPGP: mail clients show what it encloses
                block = data[data.index(_PGP_BEGIN) :]
                if cms_files.is_encrypted_pgp(block, None):
                    budget.fail(loc, ENCRYPTED, _PGP_TYPE, block, "encrypted OpenPGP message")
                elif cms_files.is_plain_pgp(block):
                    yield from _walk_pgp(block, None, loc, depth, budget)
            if b"begin " in data:  # uuencoded files: mail programs show them as attachments
                yield from _walk_uuencoded(data, loc, depth, budget)
            if ctype == "text/html" and b"data:" in data:  # pictures and files written in
                yield from _walk_data_uris(data, loc, depth, budget)
        return
    counters["attachment"] += 1
    loc = _join(prefix, f"attachment {counters['attachment']}")
    data = _decoded(part)
    yield from _walk_file(data, filename, ctype, loc, depth, budget, part.get_content_charset())


def _walk_uuencoded(data: bytes, loc: str, depth: int, budget: _Budget) -> Iterator[RawDocument]:
    """The files uuencoded in a text body, each walked as an attachment one level down."""
    yield from _walk_written_files(
        data, loc, depth, budget, formats.uuencoded_files, "text/x-uuencode", "uuencoded"
    )


def _walk_data_uris(data: bytes, loc: str, depth: int, budget: _Budget) -> Iterator[RawDocument]:
    """The pictures and files written into an HTML body as data: URIs, each walked as an
    attachment one level down (an image by OCR when it is large enough to be a page)."""
    yield from _walk_written_files(
        data, loc, depth, budget, formats.data_uri_files, "text/html", "data URI"
    )


def _walk_written_files(
    data: bytes,
    loc: str,
    depth: int,
    budget: _Budget,
    find: Callable[[bytes, int], tuple[formats.EmbeddedFile, ...]],
    kind: str,
    label: str,
) -> Iterator[RawDocument]:
    limits = budget.limits
    room = min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded)
    try:
        files = find(data, max(room, 0))
    except UnreadableDocument as exc:
        budget.fail(loc, exc.kind, kind, data, str(exc))
        return
    if files and depth + 1 > limits.max_depth:
        budget.fail(loc, TOO_LARGE, kind, data, "nesting too deep")
        return
    for index, found in enumerate(files, start=1):
        budget.expanded += len(found.data)
        name = normalize_text(found.name, 1000)
        where = _join(loc, f"{label} {index}")
        yield from _walk_file(
            found.data, name, "application/octet-stream", where, depth + 1, budget
        )


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, IndexError, TypeError, LookupError):
        return None
    if name and "\ufffd" in str(name):  # compat32 mangles raw 8-bit parameters
        name = _filename_8bit(part) or name
    if not name:
        return None
    return normalize_text(decode_words(str(name)), 1000).strip() or None


def part_filename(part: Message) -> str:
    """A part's file name from a compat32 parse, decoded (RFC 2047/2231, raw UTF-8), NFC."""
    return _filename(part) or ""


def _filename_8bit(part: Message) -> str | None:
    """The file name from a raw 8-bit (UTF-8) Content-Disposition or Content-Type."""
    for key, raw in part.raw_items():
        if key.lower() in ("content-disposition", "content-type") and not str(raw).isascii():
            probe = Message()
            probe[key] = decode_words(str(raw))
            name = probe.get_filename()
            if name:
                return str(name)
    return None


def _decoded(part: Message) -> bytes:
    return decoded_payload(part) or b""


def _walk_file(
    data: bytes,
    filename: str | None,
    declared: str,
    loc: str,
    depth: int,
    budget: _Budget,
    charset: str | None = None,
) -> Iterator[RawDocument]:
    """One file (attachment, archive member, embedded file): its name, then its content."""
    limits = budget.limits
    if filename and budget.take(loc):
        yield RawDocument(Source.FILENAME, loc, depth, declared, filename=filename)
    if len(data) > limits.max_file_bytes:
        budget.fail(loc, TOO_LARGE, declared, data[:0], f"{len(data)} bytes")
        return
    if cms_files.is_cms(data):
        yield from _walk_cms(data, filename, loc, depth, budget)
        return
    if cms_files.is_encrypted_pgp(data, filename):
        budget.fail(loc, ENCRYPTED, "application/pgp-encrypted", data, "encrypted OpenPGP message")
        return
    if cms_files.is_plain_pgp(data):
        yield from _walk_pgp(data, filename, loc, depth, budget)
        return
    readings = formats.sniff_all(data, filename, declared)
    yield from _walk_kind(data, readings[0][0], filename, loc, depth, budget, charset)
    for kind, start in readings[1:]:  # a polyglot's other reading: one level down
        if depth + 1 > limits.max_depth:
            budget.fail(loc, TOO_LARGE, kind, data, "nesting too deep")
            return
        where = _join(loc, f"read as {kind}" + (f" from byte {start}" if start else ""))
        yield from _walk_kind(data[start:], kind, filename, where, depth + 1, budget, charset)


def _walk_kind(
    data: bytes,
    kind: str,
    filename: str | None,
    loc: str,
    depth: int,
    budget: _Budget,
    charset: str | None,
) -> Iterator[RawDocument]:
    """A file's content read as ``kind``."""
    limits = budget.limits
    if kind in (
        formats.ZIP, formats.TAR, formats.RFC822, formats.RAR, formats.SEVEN_ZIP, formats.TNEF
    ):  # fmt: skip
        if depth + 1 > limits.max_depth:
            budget.fail(loc, TOO_LARGE, kind, data, "nesting too deep")
            return
        if kind == formats.TNEF:
            yield from _walk_tnef(data, loc, depth + 1, budget)
        elif kind == formats.RFC822:
            inner = parse_tree(data)
            yield from _walk_message(inner, _join(loc, "message"), depth + 1, budget)
        elif kind == formats.ZIP:
            yield from _walk_zip(data, loc, depth + 1, budget)
        elif kind == formats.TAR:
            yield from _walk_tar(data, loc, depth + 1, budget)
        else:
            yield from _walk_libarchive(data, kind, loc, depth + 1, budget)
        return
    readable = formats.is_extractable(kind) or (kind in formats.IMAGES and limits.ocr.enabled)
    if not readable:
        if data:
            budget.skipped.append(ExtractionFailure(loc, UNSUPPORTED, kind, _sha(data)))
        return
    if budget.take(loc):
        yield RawDocument(
            Source.ATTACHMENT, loc, depth, kind, filename=filename, data=data, charset=charset
        )
    if kind == formats.HTML and b"data:" in data:  # an HTML file's written-in pictures
        yield from _walk_data_uris(data, loc, depth, budget)
    if kind == formats.CALENDAR and formats.has_calendar_attachment(data):
        yield from _walk_written_files(  # files inlined in a meeting invitation
            data, loc, depth, budget, formats.calendar_files, kind, "calendar attachment"
        )


_CMS_TYPE = "application/pkcs7-mime"
_PGP_BEGIN = b"-----BEGIN PGP MESSAGE-----"


def _walk_cms(
    data: bytes, filename: str | None, loc: str, depth: int, budget: _Budget
) -> Iterator[RawDocument]:
    """A CMS file: what a signed or compressed one encloses is walked (a MIME entity like
    a message, anything else as the file the name without ``.p7m`` names) and kept for
    the virus scan; an encrypted one is a failure of kind ``encrypted`` (its content
    cannot be checked); a detached signature or an unparsable one is skipped, as before."""
    limits = budget.limits
    room = min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded)
    try:
        opened = cms_files.open_cms(data, max(room, 0))
    except UnreadableDocument as exc:
        if exc.kind == CORRUPT:  # no client can open it either: nothing is hidden in it
            budget.skipped.append(ExtractionFailure(loc, UNSUPPORTED, _CMS_TYPE, _sha(data)))
        else:
            budget.fail(loc, exc.kind, _CMS_TYPE, data, str(exc))
        return
    if opened.kind == cms_files.ENCRYPTED:
        detail = f"encrypted CMS ({opened.content_type}): its content cannot be checked"
        budget.fail(loc, ENCRYPTED, _CMS_TYPE, data, detail)
        return
    if opened.kind not in (cms_files.SIGNED, cms_files.COMPRESSED):
        budget.skipped.append(ExtractionFailure(loc, UNSUPPORTED, _CMS_TYPE, _sha(data)))
        return
    if depth + 1 > limits.max_depth:
        budget.fail(loc, TOO_LARGE, _CMS_TYPE, data, "nesting too deep")
        return
    content = opened.content
    budget.expanded += len(content)
    budget.enclosed.append(content)
    inner = _join(loc, "enclosed")
    if cms_files.is_mime_entity(content):
        yield from _walk_message(parse_tree(content), inner, depth + 1, budget)
        return
    name = filename
    if name and name.lower().endswith((".p7m", ".p7z")):
        name = name[:-4] or None
    yield from _walk_file(content, name, "application/octet-stream", inner, depth + 1, budget)


_PGP_TYPE = "application/pgp-signature"


def _walk_pgp(
    data: bytes, filename: str | None, loc: str, depth: int, budget: _Budget
) -> Iterator[RawDocument]:
    """An OpenPGP message that is signed or compressed (a ``.gpg`` file, or a ``BEGIN PGP
    MESSAGE`` block that a mail client shows decoded): what it encloses is walked as the
    file its literal packet names and kept for the virus scan, as for CMS."""
    limits = budget.limits
    room = min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded)
    if depth + 1 > limits.max_depth:
        budget.fail(loc, TOO_LARGE, _PGP_TYPE, data, "nesting too deep")
        return
    try:
        content, name = cms_files.open_pgp(data, max(room, 0))
    except UnreadableDocument as exc:
        if exc.kind == CORRUPT:  # gpg finds nothing in it: no client shows anything either
            budget.skipped.append(ExtractionFailure(loc, UNSUPPORTED, _PGP_TYPE, _sha(data)))
        else:
            budget.fail(loc, exc.kind, _PGP_TYPE, data, str(exc))
        return
    budget.expanded += len(content)
    budget.enclosed.append(content)
    if not name or name == "_CONSOLE":
        stem = filename or ""
        name = stem[:-4] if stem.lower().endswith((".gpg", ".pgp", ".asc")) else ""
    inner = _join(loc, "enclosed")
    yield from _walk_file(content, name or None, "text/plain", inner, depth + 1, budget)


def _walk_zip(data: bytes, loc: str, depth: int, budget: _Budget) -> Iterator[RawDocument]:
    limits = budget.limits
    try:
        zf = formats.open_zip(data)
    except UnreadableDocument as exc:
        budget.fail(loc, exc.kind, formats.ZIP, data, str(exc))
        return
    with zf:
        for index, info in enumerate(zf.infolist(), start=1):
            if info.is_dir():
                continue
            mloc = _join(loc, f"member {index}")
            room = min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded)
            try:
                blob = formats.read_member(zf, info, max(room, 0))
            except UnreadableDocument as exc:
                budget.fail(mloc, exc.kind, "application/octet-stream", b"", str(exc))
                if budget.documents > limits.max_documents:
                    return
                continue
            budget.expanded += len(blob)
            name = normalize_text(info.filename, 1000)
            yield from _walk_file(blob, name, "application/octet-stream", mloc, depth, budget)
            if budget.documents > limits.max_documents:
                return


def _walk_tnef(data: bytes, loc: str, depth: int, budget: _Budget) -> Iterator[RawDocument]:
    """Outlook's ``winmail.dat``: its body (what Outlook shows as the message) and each
    attachment, walked like a zip's members, within the same bounds."""
    limits = budget.limits
    room = min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded)
    try:
        content = formats.tnef_content(data, max_files=limits.max_documents, max_bytes=room)
    except UnreadableDocument as exc:
        budget.fail(loc, exc.kind, formats.TNEF, data, str(exc))
        return
    for text, kind in ((content.body, "text/plain"), (content.html, formats.HTML)):
        if text:
            raw = text.encode("utf-8")
            where = _join(loc, "body" if kind == "text/plain" else "html body")
            yield from _walk_file(raw, None, kind, where, depth, budget, "utf-8")
    if content.rtf:  # what Outlook shows of a "Rich Text Format" message
        yield from _walk_file(content.rtf, None, formats.RTF, _join(loc, "rtf body"), depth, budget)
    for index, member in enumerate(content.files, start=1):
        budget.expanded += len(member.data)
        name = normalize_text(member.name, 1000)
        mloc = _join(loc, f"member {index}")
        yield from _walk_file(member.data, name, "application/octet-stream", mloc, depth, budget)
        if budget.documents > limits.max_documents:
            return


def _walk_tar(data: bytes, loc: str, depth: int, budget: _Budget) -> Iterator[RawDocument]:
    limits = budget.limits
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        budget.fail(loc, CORRUPT, formats.TAR, data, f"bad tar: {exc}")
        return
    with tf:
        index = 0
        try:
            for info in tf:
                if not info.isfile():
                    continue
                index += 1
                mloc = _join(loc, f"member {index}")
                room = min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded)
                if info.size > room:
                    budget.fail(mloc, TOO_LARGE, "application/octet-stream", b"", "member too big")
                    continue
                fh = tf.extractfile(info)
                blob = fh.read(room + 1) if fh else b""
                budget.expanded += len(blob)
                name = normalize_text(info.name, 1000)
                yield from _walk_file(blob, name, "application/octet-stream", mloc, depth, budget)
                if budget.documents > limits.max_documents:
                    return
        except (tarfile.TarError, OSError, EOFError) as exc:
            budget.fail(loc, CORRUPT, formats.TAR, data, f"bad tar: {exc}")


# libarchive hands out a stored member of an encrypted RAR as it is (ciphertext, which reads
# as no marking); the entry's flag says it is encrypted. libarchive-c does not wrap
# archive_entry_is_encrypted (libarchive >= 3.2): bound here with its own helper.
_entry_is_encrypted = libarchive.ffi.ffi(
    "entry_is_encrypted", [libarchive.ffi.c_archive_entry_p], libarchive.ffi.c_int
)


def _walk_libarchive(
    data: bytes, kind: str, loc: str, depth: int, budget: _Budget
) -> Iterator[RawDocument]:
    """RAR (4 and 5) and 7z archives, read by libarchive: each member's bytes, bounded like
    a zip's (``max_file_bytes`` each, ``max_expanded_bytes`` in all, read block by block
    and stopped past the bound, never inflated whole); a member libarchive cannot read
    makes the archive unreadable: ``encrypted`` when it says so, else ``corrupt``."""
    limits = budget.limits
    # The one format the magic names, no filter: with every reader on, libarchive gives
    # the archive to the reader that bids highest, and the zip reader outbids RAR's when
    # a stored member is a zip (a DOCX): the member's parts were read instead of it.
    if kind == formats.SEVEN_ZIP:
        reader = "7zip"
    else:
        reader = "rar5" if data.startswith(b"Rar!\x1a\x07\x01\x00") else "rar"
    try:
        with libarchive.memory_reader(data, format_name=reader, filter_name="none") as archive:
            index = 0
            for entry in archive:
                # every entry with data but directories and links: an unpacker on Windows
                # writes a member of an unknown type (a Unix mode of 0) as a file
                if entry.isdir or entry.issym or entry.islnk:
                    continue
                index += 1
                mloc = _join(loc, f"member {index}")
                if _entry_is_encrypted(entry._entry_p):
                    budget.fail(mloc, ENCRYPTED, kind, b"", "encrypted archive member")
                    continue
                room = max(
                    min(limits.max_file_bytes, limits.max_expanded_bytes - budget.expanded), 0
                )
                blob = bytearray()
                for block in entry.get_blocks():
                    blob += block
                    if len(blob) > room:
                        break
                if len(blob) > room:
                    budget.fail(mloc, TOO_LARGE, "application/octet-stream", b"", "member too big")
                    continue
                budget.expanded += len(blob)
                name = normalize_text(entry.pathname or "", 1000)
                yield from _walk_file(
                    bytes(blob), name, "application/octet-stream", mloc, depth, budget
                )
                if budget.documents > limits.max_documents:
                    return
    except (libarchive.ArchiveError, UnicodeDecodeError, ValueError) as exc:
        unreadable = ENCRYPTED if "ncrypt" in str(exc) else CORRUPT
        budget.fail(loc, unreadable, kind, data, f"{kind}: {exc}")


# ---------------------------------------------------------------- text of one document


def _text_parts(raw: RawDocument, budget: _Budget) -> Iterator[DocumentPart]:
    limits = budget.limits
    if raw.source == Source.FILENAME:
        name = raw.filename or ""
        sha = _sha(name.encode())
        yield DocumentPart(
            Source.FILENAME, name, raw.content_type, sha, name, raw.location, raw.depth
        )
        return
    if raw.source == Source.SUBJECT:
        text = raw.text or ""
        yield DocumentPart(
            Source.SUBJECT, None, "text/plain", _sha(text.encode()), text, raw.location, raw.depth
        )
        return
    if raw.source == Source.BODY:
        text = raw.text or ""
        if raw.content_type == "text/html":
            text = formats.html_text(text, limits.max_text_chars)
        else:
            text = normalize_text(text, limits.max_text_chars)
        yield DocumentPart(
            Source.BODY, None, raw.content_type, _sha(raw.data), text, raw.location, raw.depth
        )
        return
    kind = raw.content_type
    sha = _sha(raw.data)
    try:
        result = _file_text(raw.data, kind, raw.charset, limits, budget.ocr)
    except UnreadableDocument as exc:
        if exc.kind == UNSUPPORTED:  # e.g. a logo: not a document
            budget.skipped.append(ExtractionFailure(raw.location, UNSUPPORTED, kind, sha))
            return
        budget.fail(raw.location, exc.kind, kind, raw.data, str(exc))
        return
    except MemoryError:
        budget.fail(raw.location, TOO_LARGE, kind, raw.data, "out of memory")
        return
    except Exception as exc:  # boundary: third-party parsers on hostile input
        if budget.cpu_deadline_hit:
            raise _CpuDeadline() from exc
        log.debug("reading %s at %s failed", kind, raw.location, exc_info=True)
        budget.fail(raw.location, CORRUPT, kind, raw.data, f"{type(exc).__name__}: {exc}")
        return
    yield DocumentPart(
        Source.ATTACHMENT,
        raw.filename,
        kind,
        sha,
        result.text,
        raw.location,
        raw.depth,
        truncated=result.truncated,
        pages=result.pages,
        ocr_pages=result.ocr_pages,
        ocr_images=result.ocr_images,
    )
    if result.illegible_pages:
        listed = ", ".join(str(p) for p in result.illegible_pages[:10])
        budget.fail(raw.location, ILLEGIBLE, kind, raw.data, f"no legible text on page(s) {listed}")
    if result.properties:
        source = Source.PDF_METADATA if kind == formats.PDF else Source.DOC_METADATA
        text = "\n".join(value for _, value in result.properties)
        yield DocumentPart(
            source, raw.filename, kind, sha, text, raw.location, raw.depth, result.properties
        )
    for index, embedded in enumerate(result.embedded, start=1):
        eloc = _join(raw.location, f"embedded {index}")
        if raw.depth + 1 > limits.max_depth:
            budget.fail(eloc, TOO_LARGE, kind, b"", "nesting too deep")
            break
        name = normalize_text(embedded.name, 1000)
        for inner in _walk_file(
            embedded.data, name, "application/octet-stream", eloc, raw.depth + 1, budget
        ):
            yield from _text_parts(inner, budget)


def _file_text(
    data: bytes, kind: str, charset: str | None, limits: ExtractionLimits, ocr: Ocr | None
) -> formats.FileText:
    if kind == formats.PDF:
        return formats.pdf_text(
            data,
            max_pages=limits.max_pdf_pages,
            max_chars=limits.max_text_chars,
            max_embedded_bytes=limits.max_file_bytes,
            ocr=ocr,
        )
    if kind in formats.IMAGES:
        if ocr is None:
            raise UnreadableDocument(UNSUPPORTED, "OCR is off")
        return formats.image_text(data, ocr)
    if kind in (formats.DOCX, formats.XLSX, formats.PPTX):
        return formats.ooxml_text(
            data,
            kind,
            max_member_bytes=limits.max_xml_bytes,
            max_chars=limits.max_text_chars,
            max_embedded_bytes=limits.max_file_bytes,
            ocr=ocr,
        )
    if kind.startswith("application/vnd.oasis.opendocument"):
        return formats.odf_text(
            data,
            max_member_bytes=limits.max_xml_bytes,
            max_chars=limits.max_text_chars,
            max_embedded_bytes=limits.max_file_bytes,
            ocr=ocr,
        )
    if kind in (formats.DOC, formats.OLE):
        return formats.ole_text(
            data, limits.max_text_chars, max_embedded_bytes=limits.max_file_bytes
        )
    if kind == formats.RTF:
        return formats.rtf_text(
            data, limits.max_text_chars, max_embedded_bytes=limits.max_file_bytes
        )
    text = formats.decode_text(data, charset)
    if kind == formats.HTML:
        return formats.FileText(formats.html_text(text, limits.max_text_chars))
    return formats.FileText(normalize_text(text, limits.max_text_chars))


# ---------------------------------------------------------------- the worker entry point


class _CpuDeadline(BaseException):  # not caught by per-document boundaries
    pass


_CPU_ALARM_REPEAT_S = 0.01


def extract_message_bytes(raw: bytes, limits: ExtractionLimits) -> ExtractedText:
    """Parse ``raw`` and extract every document's text. Runs in a worker (picklable I/O).

    In the main thread of a worker process a CPU-time alarm (``limits.cpu_s``) interrupts
    runaway Python-level work; the caller's wall-clock timeout covers the rest.
    """
    return _extract(raw, limits)[0]


def _extract(raw: bytes, limits: ExtractionLimits) -> tuple[ExtractedText, Message | None]:
    started = time.perf_counter()
    budget = _Budget(limits)
    parts: list[DocumentPart] = []
    msg: Message | None = None
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "ITIMER_PROF"
    )
    previous = None

    def on_cpu_deadline(signum: int, frame: FrameType | None) -> None:
        budget.cpu_deadline_hit = True
        raise _CpuDeadline()

    if use_alarm:
        previous = signal.signal(signal.SIGPROF, on_cpu_deadline)
        # fires again every 10 ms of CPU until disarmed, in case a parser swallowed it
        signal.setitimer(signal.ITIMER_PROF, limits.cpu_s, _CPU_ALARM_REPEAT_S)
    try:
        try:
            # compat32 (the modern policy's header objects cost ~40 ms per message here,
            # and the walk only needs types, names and decoded payloads), built without
            # feeding the bodies through the feed parser line by line: the same tree, 7x
            # cheaper
            msg = parse_tree(raw)
            for doc in iter_documents(msg, limits, budget):
                parts.extend(_text_parts(doc, budget))
        finally:  # disarmed before anything else runs (the alarm repeats)
            if use_alarm:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.signal(signal.SIGPROF, previous)
        if budget.cpu_deadline_hit:  # swallowed by a parser, yet the budget was spent
            raise _CpuDeadline()
    except _CpuDeadline:
        budget.fail("message", TIMEOUT, "message/rfc822", raw, f"over {limits.cpu_s} s of CPU")
        msg = None
    text = ExtractedText(
        message_sha256=_sha(raw),
        parts=tuple(parts),
        failures=tuple(budget.failures),
        skipped=tuple(budget.skipped),
        elapsed_ms=(time.perf_counter() - started) * 1000,
        enclosed=tuple(budget.enclosed),
    )
    return text, msg


# ------------------------------------------------ one parse for every stage's CPU work


@dataclass(frozen=True)
class MessageView:
    """The message as the worker parsed it, once: the raw bytes, the part tree (compat32:
    types, names and decoded payloads) and every document's text. Handed to each stage's
    analysis function (``AnalysisTask``) in the same worker call."""

    raw: bytes
    message: Message | None  # None when parsing overran its CPU budget
    text: ExtractedText
    direction: str  # mailsvc.message.Direction value
    # From/Sender/Reply-To as the SMTP process parsed them (``InboundMessage.originator``)
    # before the message came here: the same bytes, so not parsed a second time.
    parsed_originator: Originator | None = None

    @cached_property
    def originator(self) -> Originator:
        """The originator fields: the SMTP process's parse, or parsed here (bounded)."""
        if self.parsed_originator is not None:
            return self.parsed_originator
        return read_originator(self.raw)


# (stage name, a picklable function of (view, argument), its argument)
AnalysisTask = tuple[str, Callable[[MessageView, Any], Any], Any]


@dataclass(frozen=True)
class Analysis:
    """What one worker call learnt about a message: the text and each stage's result
    (``results[stage]``), or why a stage's function failed (``failures[stage]``)."""

    text: ExtractedText
    results: Mapping[str, Any] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)

    def result(self, stage: str) -> Any:
        """The stage's result; raises ExtractionError when its function failed."""
        if stage in self.failures:
            raise ExtractionError(f"{stage} analysis failed: {self.failures[stage]}")
        return self.results.get(stage)


# The task lists a worker has unpickled, by their pickled bytes (TextExtractor._task_blob).
_LOADED_TASKS: OrderedDict[bytes, tuple[AnalysisTask, ...]] = OrderedDict()
_LOADED_MAX = 4


def _load_tasks(blob: bytes) -> tuple[AnalysisTask, ...]:
    tasks = _LOADED_TASKS.get(blob)
    if tasks is None:
        tasks = pickle.loads(blob)  # our own process pickled it
        _LOADED_TASKS[blob] = tasks
        while len(_LOADED_TASKS) > _LOADED_MAX:
            _LOADED_TASKS.popitem(last=False)
    return tasks


def analyse_message_bytes(
    raw: bytes,
    limits: ExtractionLimits,
    tasks: Sequence[AnalysisTask] | bytes,
    direction: str,
    originator: Originator | None = None,
) -> Analysis:
    """The worker entry point: parse once, extract, then run each stage's function on
    the same view (picklable I/O). ``tasks``: the list, or the list pickled by the caller
    (:class:`TextExtractor` sends it so: unpickled once per worker, not per message).
    ``originator``: the fields already parsed from ``raw`` by the caller, if it has them."""
    if isinstance(tasks, bytes):
        tasks = _load_tasks(tasks)
    text, msg = _extract(raw, limits)
    view = MessageView(raw, msg, text, direction, originator)
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for name, fn, arg in tasks:
        try:
            results[name] = fn(view, arg)
        except Exception as exc:  # boundary: one stage's failure is that stage's error
            failures[name] = f"{type(exc).__name__}: {exc}"
    return Analysis(text, results, failures)


def iter_document_parts(msg: Message, limits: ExtractionLimits) -> Iterator[DocumentPart]:
    """Synchronous, in-process: every DocumentPart of ``msg`` (failures are not reported).

    For tools and tests. The service uses :class:`TextExtractor`, which runs the same code in
    a worker under a timeout and reports failures.
    """
    budget = _Budget(limits)
    for doc in iter_documents(msg, limits, budget):
        yield from _text_parts(doc, budget)


# ---------------------------------------------------------------- async facade with a cache


class Recyclable(Protocol):
    def recycle(self) -> None: ...


class TextExtractor:
    """Runs :func:`extract_message_bytes` in ``executor`` with a timeout; caches by sha256.

    Concurrent calls for the same message share one extraction (the in-flight future is
    cached), so the classification and metadata stages pay for it once. ``executor=None``
    uses the event loop's default thread pool (tests, ``workers = 0``); then a stuck
    document cannot be killed, only abandoned.
    """

    def __init__(
        self,
        executor: Executor | None,
        limits: ExtractionLimits | None = None,
        *,
        cache_size: int = 64,
    ) -> None:
        self.executor = executor
        self.limits = limits or ExtractionLimits()
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], asyncio.Future[Analysis]] = OrderedDict()
        self._tasks: list[tuple[str, Callable[[MessageView, Any], Any], Any, bool]] = []
        # The task list pickled, with the arguments it was pickled from (see _task_blob).
        self._pickled: tuple[tuple[Any, ...], bytes] | None = None

    def add_task(
        self,
        stage: str,
        fn: Callable[[MessageView, Any], Any],
        arg: Any,
        *,
        per_call: bool = False,
    ) -> None:
        """Run ``fn(view, arg)`` in the same worker call as the extraction, on the same
        parse; its result is ``Analysis.result(stage)``. Stages call this when built.
        ``per_call``: ``arg`` is a function called for each analysis (its value is what
        the worker gets: e.g. the trust material's current version)."""
        task = (stage, fn, arg, per_call)
        self._tasks = [t for t in self._tasks if t[0] != stage] + [task]
        self._pickled = None
        self._cache.clear()

    def _task_list(self) -> tuple[AnalysisTask, ...]:
        return tuple(
            (name, fn, arg() if per_call else arg) for name, fn, arg, per_call in self._tasks
        )

    def _task_blob(self) -> bytes:
        """The task list pickled: once, and again only when a per-call argument changes
        (a new object: the trust material reloaded). Pickling the stages' arguments (the
        spam policy, the marking detector, the signature policy) for every message cost
        the SMTP process 0.1 ms and the worker 0.13 ms to unpickle."""
        args = tuple(arg() if per_call else arg for _name, _fn, arg, per_call in self._tasks)
        if self._pickled is not None and _same_objects(self._pickled[0], args):
            return self._pickled[1]
        tasks = tuple((t[0], t[1], arg) for t, arg in zip(self._tasks, args, strict=True))
        blob = pickle.dumps(tasks, protocol=pickle.HIGHEST_PROTOCOL)
        self._pickled = (args, blob)
        return blob

    def cached(self, msg: InboundMessage) -> Analysis | None:
        """The analysis of ``msg`` if a stage already had it made, else None (no work)."""
        future = self._cache.get((msg.sha256, msg.direction.value))
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        return future.result()

    async def extract(self, msg: InboundMessage | EmailMessage | bytes) -> ExtractedText:
        """Text of every document in ``msg``; raises :class:`ExtractionError`."""
        return (await self.analyse(msg)).text

    async def analyse(self, msg: InboundMessage | EmailMessage | bytes) -> Analysis:
        """The text and every registered stage function's result for ``msg``, from one
        worker call shared by all concurrent callers; raises :class:`ExtractionError`."""
        originator: Originator | None = None
        if isinstance(msg, InboundMessage):
            raw, key = msg.raw, (msg.sha256, msg.direction.value)
            # Already parsed (the limits stage does it): the worker uses it. Not parsed
            # here when it is not: this runs on the event loop.
            originator = msg.originator_if_parsed
        else:
            raw = msg if isinstance(msg, bytes) else msg.as_bytes()
            key = (_sha(raw), "")
        cached = self._cache.get(key)
        if cached is not None and not (cached.done() and cached.exception() is not None):
            self._cache.move_to_end(key)
            return await asyncio.shield(cached)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Analysis] = loop.create_future()
        self._cache[key] = future
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        try:
            result = await self._run(raw, key[1], originator)
        except BaseException as exc:
            self._cache.pop(key, None)
            if not future.done():
                future.set_exception(
                    exc if isinstance(exc, ExtractionError) else ExtractionError(str(exc))
                )
                future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        future.set_result(result)
        return result

    async def _run(
        self, raw: bytes, direction: str, originator: Originator | None = None
    ) -> Analysis:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(
            self.executor,
            analyse_message_bytes,
            raw,
            self.limits,
            self._task_blob() if self.executor is not None else self._task_list(),
            direction,
            originator,
        )
        try:
            return await asyncio.wait_for(work, self.limits.timeout_s)
        except TimeoutError:
            log.warning("text extraction timed out after %.1f s", self.limits.timeout_s)
            recycle = getattr(self.executor, "recycle", None)
            if callable(recycle):
                recycle()
            raise ExtractionError(
                f"text extraction timed out after {self.limits.timeout_s} s"
            ) from None
        except BrokenExecutor as exc:
            log.warning("text extraction worker died: %s", exc)
            raise ExtractionError(f"text extraction worker died: {exc}") from exc
        except MemoryError as exc:
            raise ExtractionError("text extraction ran out of memory") from exc

    def clear(self) -> None:
        self._cache.clear()


def _same_objects(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """The same objects, one by one (one level into tuples: a per-call argument is often
    a fresh tuple of the same objects; strings and numbers by value)."""
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if type(a) is tuple and type(b) is tuple:
            if len(a) != len(b) or not all(map(_same, a, b)):
                return False
        elif not _same(a, b):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and type(a) in (str, bytes, int) and a == b)


def failure_kinds(text: ExtractedText) -> Sequence[str]:
    return sorted({f.kind for f in text.failures})
