"""MetadataStage: what the official document in a message says about itself.

Reads the main document — the register's main file (``main_attachment``: the same file
whose signature gives the entry its legal value), and only that file even when it has no
text; without a main file, a scanned image or the mail body — with
:func:`mailsvc.documents.metadata.extract_metadata`, together with the subject and the
Priority/X-Priority/Importance headers. The agency identifier (mã định danh) comes from the
directory entry of the sender's domain.

One finding per message, always with a :class:`DocumentMetadata` payload:

- ``pass`` / ``document-metadata``: the text looks like an official document;
- ``none`` / ``not-an-official-document``: it does not (the payload still carries urgency
  from the subject or headers, the attachments and the agency);
- ``none`` / ``extraction-failed``: the text could not be extracted (the classification
  stage reports that as an error and decides; missing metadata never refuses a message).

The stage never fails a message: metadata feed the register and the clerk's headers.
The signer found here is the one printed in the signature block; the register prefers the
name in the signing certificate when the signatures stage validated one.
"""

from __future__ import annotations

import email.header
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from email.message import Message
from typing import Any, Protocol

from mailsvc.documents import cms, formats
from mailsvc.documents.extract import (
    Analysis,
    DocumentPart,
    ExtractedText,
    ExtractionError,
    MessageView,
    Source,
)
from mailsvc.documents.formats import UnreadableDocument
from mailsvc.documents.language import detect_language
from mailsvc.documents.metadata import DocumentMetadata, extract_metadata
from mailsvc.documents.words import search_words
from mailsvc.interfaces import Directory
from mailsvc.message import InboundMessage
from mailsvc.register.attachments import AttachmentInput, main_attachment
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)

NAME = "metadata"
MAIN_TYPES = (formats.PDF, formats.DOCX, formats.ODT)
SIGNATURE_SUFFIXES = (".p7s", ".p7m", ".p7b", ".sig", ".asc", ".gpg", ".pgp")
PRIORITY_HEADERS = ("Priority", "X-Priority", "Importance", "X-MSMail-Priority")
_INLINE_LIMIT = 200_000  # characters; longer texts are read in the executor
SEARCH_TEXT_LIMIT = 100_000  # characters of the document handed to the register's search index


class Extractor(Protocol):
    """What the stage needs of :class:`mailsvc.documents.extract.TextExtractor`."""

    def add_task(self, stage: str, fn: Callable[[MessageView, Any], Any], arg: Any) -> None: ...

    async def analyse(self, msg: InboundMessage) -> Analysis: ...


def main_document(text: ExtractedText, main: AttachmentInput | None) -> DocumentPart | None:
    """The part the metadata are read from. With a main file (``main_attachment``: the
    register's main document, whose signature gives the entry its legal value): its text
    (for an enveloping ``x.pdf.p7m``, the text of the document it encloses, which its
    signature covers), or None when it has none (a scan without a text layer); never
    another part. Without one: the first scanned image (PNG/JPEG/TIFF) whose OCR found
    text."""
    if main is not None:
        wanted = {main.sha256} | _enclosed_sha256(main)
        # by its bytes, at any depth: inside a forwarded message or opaque S/MIME too
        for part in text.attachments(top_level=False):
            if part.sha256 in wanted and part.text.strip():
                return part
        return None
    for part in text.attachments(top_level=True):
        name = (part.filename or "").lower()
        if name.endswith(SIGNATURE_SUFFIXES) or not part.text.strip():
            continue
        if part.content_type in formats.IMAGES:
            return part
    return None


def _enclosed_sha256(main: AttachmentInput) -> set[str]:
    """The SHA-256 of what a signed CMS main file (``x.pdf.p7m``) encloses, if it is one."""
    if main.data is None or not cms.is_cms(main.data):
        return set()
    try:
        opened = cms.open_cms(main.data, len(main.data))
    except UnreadableDocument:
        return set()
    return {hashlib.sha256(opened.content).hexdigest()} if opened.kind == cms.SIGNED else set()


def attachment_names(text: ExtractedText) -> tuple[str, ...]:
    """File names of the top-level attachments, in MIME order, without repeats."""
    names: list[str] = []
    for part in text.parts:
        if part.source == Source.FILENAME and part.depth == 0 and part.filename:
            if part.filename not in names:
                names.append(part.filename)
    return tuple(names)


def priority_headers(msg: Message) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in PRIORITY_HEADERS:
        try:
            values = msg.get_all(name) or []
        except (ValueError, IndexError, TypeError):
            continue
        out.extend((name, str(value)) for value in values)
    return out


@dataclass(frozen=True)
class Reading:
    """What the worker read (an analysis task): the metadata without the directory's
    agency, and where they were read ("attachment 1", "body", "none")."""

    meta: DocumentMetadata
    where: str


# A plain mail's body is read as a document only when its first lines show one of these:
# a number and notation ("Số: 15/QĐ-UBND", "35/2018/NĐ-CP"), a date line ("ngày 5 tháng
# 12 năm 2026"), the national motto, or a dated "dd/mm/yyyy".
# The lookahead lets the engine skip, at one class test a position, the places where no
# clue can start (a digit, "ngày", "cộng"): half the time of trying each alternative at
# every character. Every clue but the motto has a digit: without one, only the motto is
# looked for.
_DOCUMENT_CLUES = re.compile(
    r"(?=[\dcn])(?:\d+\s*/\s*[0-9A-ZĐ]|ngày\s+\d{1,2}\s+tháng\s+\d{1,2}\s+năm\s+\d{4}"
    r"|cộng\s+h(?:oà|òa)\s+xã\s+hội|\d{1,2}/\d{1,2}/\d{4})",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_MOTTO = re.compile(r"cộng\s+h(?:oà|òa)\s+xã\s+hội", re.IGNORECASE)
_CLUE_LINES = 60
_CLUE_CHARS = 4000  # a document's header block is short; a long one-line mail is not read


def looks_like_document(text: str) -> bool:
    """Whether a mail body may be an official document (its first lines show a clue);
    a plain mail skips the metadata reader altogether."""
    head = unicodedata.normalize("NFC", "\n".join(text[:_CLUE_CHARS].splitlines()[:_CLUE_LINES]))
    if _DIGIT.search(head) is None:
        return _MOTTO.search(head) is not None
    return _DOCUMENT_CLUES.search(head) is not None


def read_metadata(view: MessageView, _arg: object = None) -> Reading:
    """The metadata of the message's main document, else of its body when the body looks
    like a document (``looks_like_document``); subject and priority headers always."""
    text = view.text
    subject = _decoded(view.message, "Subject") if view.message is not None else ""
    headers = priority_headers(view.message) if view.message is not None else []
    names = attachment_names(text)
    main_file = main_attachment(view.message) if view.message is not None else None
    main = main_document(text, main_file)
    if main_file is not None:
        # The main file's text or nothing: the mail body (or another attachment) must
        # not lend its number and abstract to the document whose signature is judged.
        if main is None:
            meta = extract_metadata("", subject, headers, names)
            return Reading(replace(meta, sha256=main_file.sha256), "none")
        meta = extract_metadata(main.text, subject, headers, names)
        meta = replace(
            meta,
            pages=main.pages,
            language=detect_language(main.text),
            text=search_words(main.text[:SEARCH_TEXT_LIMIT]),
            sha256=main_file.sha256,
        )
        return Reading(meta, main.location or "attachment")
    body = text.body_text
    candidates: list[tuple[str, str]] = []
    if main is not None:
        candidates.append((main.location or "attachment", main.text))
    if body.strip() and (main is not None or looks_like_document(body)):
        candidates.append(("body", body))
    if not candidates:
        meta = extract_metadata("", subject, headers, names)
        where = "body" if body.strip() else "none"
        return Reading(replace(meta, text=body[:SEARCH_TEXT_LIMIT]), where)
    meta = extract_metadata(candidates[0][1], subject, headers, names)
    where, read = candidates[0]
    if not meta.is_official and len(candidates) > 1:
        other = extract_metadata(candidates[1][1], subject, headers, names)
        if other.is_official:
            meta, (where, read) = other, candidates[1]
    pages = main.pages if main is not None and where == main.location else 0
    meta = replace(
        meta,
        pages=pages,
        language=detect_language(read),
        text=search_words((main.text if main is not None else body)[:SEARCH_TEXT_LIMIT]),
        sha256=main.sha256 if main is not None and where == main.location else "",
    )
    return Reading(meta, where)


def _decoded(message: Message, name: str) -> str:
    """A header field of a compat32 parse, RFC 2047 decoded, on one line."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    return text.replace("\r", "").replace("\n", " ").strip()


class MetadataStage:
    name = NAME
    description = "Reads number, date, type, abstract, urgency and signer of official documents"

    def __init__(
        self, extractor: Extractor, directory: Directory, executor: Executor | None = None
    ) -> None:
        """``extractor`` is the shared TextExtractor (its cache makes the text free here);
        ``executor`` reads unusually long texts off the event loop (None: default pool)."""
        self.extractor = extractor
        self.directory = directory
        self.executor = executor
        extractor.add_task(self.name, read_metadata, None)

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        agency_code, agency_name = self._agency(msg)
        try:
            reading: Reading | None = (await self.extractor.analyse(msg)).result(self.name)
        except ExtractionError as exc:
            meta = extract_metadata("", _subject(msg), priority_headers(msg.headers))
            meta = replace(meta, agency_code=agency_code, agency_name=agency_name)
            return (self._finding(Status.NONE, "extraction-failed", meta, str(exc), "none"),)
        if reading is None:  # the extractor's caller registered no metadata task
            raise ExtractionError("metadata analysis did not run")
        meta = replace(reading.meta, agency_code=agency_code, agency_name=agency_name)
        if meta.is_official:
            detail = f"{meta.doc_type or 'document'} {meta.number_notation or '(no number)'}"
            return (self._finding(Status.PASS, "document-metadata", meta, detail, reading.where),)
        return (
            self._finding(
                Status.NONE, "not-an-official-document", meta, "no official layout", reading.where
            ),
        )

    def _agency(self, msg: InboundMessage) -> tuple[str, str]:
        domain = msg.from_address.rpartition("@")[2] or msg.sender_domain
        if not domain:
            return "", ""
        try:
            agency = self.directory.agency_for_domain(domain)
        except Exception:  # boundary: the directory is an adapter; metadata stay optional
            log.warning("directory lookup failed for %s", domain, exc_info=True)
            return "", ""
        if agency is None:
            return "", ""
        return agency.code, agency.name

    def _finding(
        self, status: Status, reason: str, meta: DocumentMetadata, detail: str, where: str
    ) -> Finding:
        return Finding(
            stage=self.name,
            status=status,
            reason=reason,
            detail=detail,
            payload=replace(meta, document=where),
        )


def _subject(msg: InboundMessage) -> str:
    return msg.subject.replace("\n", " ").strip()
