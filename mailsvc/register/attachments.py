"""The files of a message with their roles (main / annex / signature), for the register.

Apart from mailsvc.register.recorder because ``attachments_task`` runs in the worker pool
(on the worker's parse of the message): importing this module costs the email package
only, not SQLAlchemy or the database models (mailsvc.documents.pool.PRELOAD). The
recorder and mailsvc.register.registration re-export its names.
"""

from __future__ import annotations

import hashlib
import unicodedata
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage, Message
from pathlib import PurePosixPath

from mailsvc.documents import cms
from mailsvc.documents.extract import ExtractionLimits, MessageView, part_filename
from mailsvc.documents.formats import UnreadableDocument, leaf_file_name
from mailsvc.message import decoded_payload, parse_tree

_MAX_CMS_CONTENT = ExtractionLimits().max_file_bytes


@dataclass(frozen=True)
class AttachmentInput:
    """One file of a document. ``data`` None keeps only its hash (refused documents)."""

    filename: str
    content_type: str
    sha256: str
    size: int
    role: str = "annex"  # main | annex | signature
    data: bytes | None = None


DOCUMENT_EXTENSIONS = frozenset(
    {
        ".pdf", ".p7m", ".doc", ".docx", ".odt", ".rtf", ".xls", ".xlsx", ".ods",
        ".ppt", ".pptx", ".odp", ".zip", ".rar", ".7z", ".xml", ".tif", ".tiff",
    }
)  # fmt: skip
SIGNATURE_EXTENSIONS = frozenset({".p7s", ".sig", ".asc"})
SIGNATURE_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
# Preferred main document, in order (the rest are annexes).
MAIN_EXTENSIONS = (".pdf", ".p7m", ".docx", ".doc", ".odt", ".rtf")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "")


def _extension(filename: str) -> str:
    return PurePosixPath(filename.lower()).suffix


_CMS_MIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
# Opaque S/MIME inside opaque S/MIME ... opened this deep at most (the limits stage bounds
# MIME nesting, not what a CMS encloses).
_MAX_ENCLOSED = 4


def _leaves(part: Message, enclosed: int = 0) -> Iterator[tuple[Message, bool]]:
    """Leaf parts with a flag: True when it is the signature part of multipart/signed.
    An opaque S/MIME entity is replaced by the MIME entity it encloses (:func:`_opened`)."""
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        signed = part.get_content_type() == "multipart/signed"
        for index, child in enumerate(children):
            if signed and index == 1:
                yield child, True
            else:
                yield from _leaves(child, enclosed)
        return
    inner = _opened(part) if enclosed < _MAX_ENCLOSED else None
    if inner is not None:
        yield from _leaves(inner, enclosed + 1)
    else:
        yield part, False


def _opened(part: Message) -> Message | None:
    """The MIME entity an opaque S/MIME part (``application/pkcs7-mime``, signed or
    compressed data) encloses, parsed; None for any other part, and for a ``.p7m`` whose
    content is a file (``x.pdf.p7m``: kept as the file it is). The documents inside are
    the ones the clerk's mail client shows and the signature check validates (the engine
    walks the same content), so they, not ``smime.p7m``, are the entry's files."""
    if part.get_content_type() not in _CMS_MIME_TYPES:
        return None
    data = decoded_payload(part)
    if not data or not cms.is_cms(data):
        return None
    try:
        opened = cms.open_cms(data, _MAX_CMS_CONTENT)
    except UnreadableDocument:
        return None
    if opened.kind not in (cms.SIGNED, cms.COMPRESSED) or not cms.is_mime_entity(opened.content):
        return None
    return parse_tree(opened.content)


ATTACHMENTS = "attachments"  # the analysis task's name (Analysis.results)


def attachments_task(view: MessageView, _arg: object = None) -> list[AttachmentInput] | None:
    """``attachments_in`` as an analysis task: on the worker's parse of the message."""
    return attachments_in(view.message) if view.message is not None else None


_FOUND: weakref.WeakKeyDictionary[Message, tuple[AttachmentInput, ...]] = (
    weakref.WeakKeyDictionary()
)


def attachments_in(message: Message) -> list[AttachmentInput]:
    """The files of a parsed message (modern or compat32 policy), roles decided here.
    Worked out once per message object: in the worker the metadata stage (the main
    document) and the register's reading (every file) ask for the same message."""
    try:
        return list(_FOUND[message])
    except KeyError:
        pass
    found = _attachments_in(message)
    _FOUND[message] = tuple(found)
    return found


def _attachments_in(message: Message) -> list[AttachmentInput]:
    found: list[AttachmentInput] = []
    for part, is_message_signature in _leaves(message):
        if is_message_signature:
            continue
        filename = (
            nfc(str(part.get_filename() or ""))
            if isinstance(part, EmailMessage)
            else (part_filename(part))
        )
        data = decoded_payload(part)
        if data is None:
            continue
        content_type = part.get_content_type()
        # A nameless PDF (DOCX, ...) is a document all the same: the signature walk
        # names it the same way and gives it its own report.
        filename = leaf_file_name(
            filename, content_type, part.get_content_disposition() or "", data
        )
        if not filename:
            continue
        ext = _extension(filename)
        role = (
            "signature"
            if ext in SIGNATURE_EXTENSIONS or content_type in SIGNATURE_TYPES
            else "annex"
        )
        found.append(
            AttachmentInput(
                filename=filename,
                content_type=content_type,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                role=role,
                data=data,
            )
        )
    main = _main_index(found)
    if main is not None:
        item = found[main]
        found[main] = AttachmentInput(
            item.filename, item.content_type, item.sha256, item.size, "main", item.data
        )
    return found


def main_attachment(message: Message) -> AttachmentInput | None:
    """The message's main document: the one file whose signature gives a register entry
    its legal value and whose text gives it its number, abstract and search text (the
    metadata stage reads this file, by its SHA-256, and no other). None: no document."""
    return next((a for a in attachments_in(message) if a.role == "main"), None)


def _main_index(items: Sequence[AttachmentInput]) -> int | None:
    """The main document's rule, the only one: the first file by type preference
    (MAIN_EXTENSIONS), then the first other document type, in MIME order."""
    for ext in MAIN_EXTENSIONS:
        for index, item in enumerate(items):
            if item.role != "signature" and _extension(item.filename) == ext:
                return index
    for index, item in enumerate(items):
        if item.role != "signature" and _extension(item.filename) in DOCUMENT_EXTENSIONS:
            return index
    return None
