"""Find what is signed in a message: S/MIME and PGP/MIME entities, attachments, detached pairs.

Works on the raw bytes so that a multipart/signed first part is hashed exactly as it was
sent (RFC 5751 §3.1.1: the whole MIME entity, headers included, CRLF line ends), not as
Python's email package would re-serialise it.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage, Message

from mailsvc.documents.formats import leaf_file_name
from mailsvc.message import (
    HEAD_POLICY,
    decode_body,
    decoded_payload,
    delimiters,
    is_fast_tree,
    parse_head,
)
from mailsvc.signatures.policy import SignaturePolicy

MESSAGE = "(message)"
_CMS_SIG_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_CMS_MIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_PGP_SIG_TYPES = ("application/pgp-signature",)


@dataclass(frozen=True)
class DetachedSignature:
    kind: str  # "cms" or "openpgp"
    data: bytes


@dataclass(frozen=True)
class DocumentJob:
    """One document to verify in a worker; picklable.

    ``content`` is the document (for ``enveloping``: the CMS that encloses it).
    ``message_level`` marks the S/MIME or PGP/MIME signature of the message itself;
    ``whole_message`` says that its signed entity is the message's whole content (the
    top-level entity), not one part beside unsigned others.
    ``within``: SHA-256 of the content of each message-level signed entity the document
    lies in (the only message signatures that may speak for it).
    """

    name: str
    content: bytes
    detached: tuple[DetachedSignature, ...] = ()
    enveloping: bool = False
    message_level: bool = False
    whole_message: bool = False
    within: tuple[str, ...] = ()


def canonical(data: bytes) -> bytes:
    """CRLF line ends, as signed MIME entities are hashed."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def _parse(raw: bytes) -> EmailMessage:
    """One entity's headers; its body stays unparsed (split byte-exact by
    :func:`split_multipart`, decoded only for leaves), so a 200 KB attachment is not run
    through the feed parser line by line on the event loop."""
    return parse_head(raw)


def _types(part: EmailMessage) -> Message:
    """The entity's Content-Type and Content-Disposition, each parsed once by the modern
    policy, in a plain message whose ``get_content_type``, ``get_param``, ``get_boundary``
    and ``get_filename`` read those values as the entity's own would (they are
    ``email.message.Message``'s methods on the same strings); asked of the entity itself,
    each call parses its header again."""
    view = Message()
    for name in ("Content-Type", "Content-Disposition"):
        value = part.get(name)
        if value is not None:
            view[name] = str(value)
    return view


def _body(raw: bytes) -> bytes:
    m = re.search(rb"\r?\n\r?\n", raw)
    return raw[m.end() :] if m else b""


def split_multipart(raw: bytes, boundary: str) -> list[bytes]:
    """Raw bytes of each body part of a multipart entity, byte-exact (delimiters as
    :func:`mailsvc.message.delimiters` finds them; nothing after the close)."""
    body = _body(raw)
    parts: list[bytes] = []
    for (_, end, close), (following, _, _) in itertools.pairwise(delimiters(body, boundary)):
        if close:
            break
        if body.startswith(b"\r\n", end):
            end += 2
        elif body.startswith(b"\n", end):
            end += 1
        parts.append(body[end:following])
    return parts


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _signature_kind(name: str, data: bytes) -> str:
    head = data.lstrip()[:64]
    if head.startswith(b"-----BEGIN PGP") or (data[:1] and data[0] & 0x80 and data[:1] != b"\x30"):
        return "openpgp"
    if name.lower().endswith(".asc"):
        return "openpgp"
    return "cms"


# (file name, decoded bytes, ``DocumentJob.within``)
_File = tuple[str, bytes, tuple[str, ...]]


@dataclass
class _Walk:
    jobs: list[DocumentJob]
    files: list[_File]


# Nesting the walk follows at most (the limits stage refuses more than ``mime.max_depth``,
# at most 100, before any message reaches the walk; ``mailsvc verify`` has no such gate).
MAX_DEPTH = 200


class NestingTooDeep(ValueError):
    """The message nests multiparts or enclosed messages deeper than :data:`MAX_DEPTH`."""


def _walk(
    raw: bytes, out: _Walk, within: tuple[str, ...] = (), top: bool = True, depth: int = 0
) -> None:
    """``within``: the signed entities ``raw`` lies in; ``top``: ``raw`` is the message;
    ``depth``: how deep ``raw`` lies in the message."""
    if depth > MAX_DEPTH:
        raise NestingTooDeep(f"MIME entities nested more than {MAX_DEPTH} deep")
    part = _parse(raw)
    types = _types(part)
    ctype = types.get_content_type()
    if ctype == "multipart/signed":
        protocol = str(types.get_param("protocol", "", header="content-type")).lower()
        boundary = types.get_boundary()
        pieces = split_multipart(raw, boundary) if boundary else []
        if len(pieces) == 2 and protocol in _CMS_SIG_TYPES + _PGP_SIG_TYPES:
            kind = "openpgp" if protocol in _PGP_SIG_TYPES else "cms"
            signature = decode_body(_parse(pieces[1]), _body(pieces[1]))
            content = canonical(pieces[0])
            out.jobs.append(
                DocumentJob(
                    name=MESSAGE,
                    content=content,
                    detached=(DetachedSignature(kind, signature),),
                    message_level=True,
                    whole_message=top,
                    within=within,
                )
            )
            signed = (*within, hashlib.sha256(content).hexdigest())
            _walk(pieces[0], out, signed, top=False, depth=depth + 1)
            return
    if ctype in _CMS_MIME_TYPES:
        smime_type = str(types.get_param("smime-type", "", header="content-type")).lower()
        name = types.get_filename() or ""
        if smime_type in ("signed-data", "") and (not name or name.lower().endswith(".p7m")):
            # the enclosed MIME entity is walked after the worker unwraps it
            out.jobs.append(
                DocumentJob(
                    name=MESSAGE,
                    content=decode_body(part, _body(raw)),
                    enveloping=True,
                    message_level=True,
                    whole_message=top,
                    within=within,
                )
            )
            return
    if types.get_content_maintype() == "multipart":
        boundary = types.get_boundary()
        for piece in split_multipart(raw, boundary) if boundary else []:
            _walk(piece, out, within, top=False, depth=depth + 1)
        return
    if types.get_content_maintype() == "message" and ctype != "message/delivery-status":
        # A forwarded message (named .eml or not): its documents are the register's too
        # (the email package reads every message/* but delivery-status as an enclosed
        # message, from its body as sent): walked for their signatures like the top
        # message's, not taken as one opaque file.
        _walk(_body(raw), out, within, top=False, depth=depth + 1)
        return
    filename = types.get_filename() or ""
    disposition = types.get_content_disposition() or ""
    if not filename and ctype in ("text/plain", "text/html") and disposition != "attachment":
        return  # a mail body: no file (leaf_file_name says so too)
    data = decode_body(part, _body(raw))
    filename = leaf_file_name(filename, ctype, disposition, data)
    if filename:
        out.files.append((filename, data, within))


def jobs_for_files(
    files: Sequence[tuple[str, bytes]], policy: SignaturePolicy
) -> list[DocumentJob]:
    """Pair x.pdf with x.pdf.p7s / .sig / .asc; unwrap .p7m; the rest are plain documents."""
    return _jobs_for_files([(name, data, ()) for name, data in files], policy)


def _jobs_for_files(files: Sequence[_File], policy: SignaturePolicy) -> list[DocumentJob]:
    names = {name for name, _, _ in files}
    sig_suffixes = tuple(s.lower() for s in policy.detached_signature_suffixes)
    env_suffixes = tuple(s.lower() for s in policy.enveloping_suffixes)
    detached: dict[str, list[DetachedSignature]] = {}
    jobs: list[DocumentJob] = []
    for name, data, _ in files:
        lower = name.lower()
        if lower.endswith(sig_suffixes):
            base = name[: name.rfind(".")]
            if base in names:
                detached.setdefault(base, []).append(
                    DetachedSignature(_signature_kind(name, data), data)
                )
                continue
    for name, data, within in files:
        lower = name.lower()
        if lower.endswith(sig_suffixes) and name[: name.rfind(".")] in names:
            continue
        if lower.endswith(env_suffixes):
            jobs.append(DocumentJob(name=name, content=data, enveloping=True, within=within))
            continue
        jobs.append(
            DocumentJob(
                name=name, content=data, detached=tuple(detached.get(name, ())), within=within
            )
        )
    return jobs


def jobs_for_message(
    raw: bytes, policy: SignaturePolicy, within: tuple[str, ...] = ()
) -> list[DocumentJob]:
    """Message-level signatures first, then one job per attached document (every leaf
    that is a document, named or not: :func:`mailsvc.documents.formats.leaf_file_name`).
    ``within``: the signed entities ``raw`` lies in when it is the content a message-level
    ``application/pkcs7-mime`` enclosed (then its own signatures are not the message's
    whole content)."""
    out = _Walk(jobs=[], files=[])
    _walk(raw, out, within, top=not within)
    return out.jobs + _jobs_for_files(out.files, policy)


def jobs_for_parsed(raw: bytes, tree: Message | None, policy: SignaturePolicy) -> list[DocumentJob]:
    """:func:`jobs_for_message`, read from the worker's part tree of ``raw`` where that
    gives the same jobs: the attached files with their decoded bytes, which the text
    extraction has already decoded (:func:`mailsvc.message.decoded_payload`). A message
    that carries a MIME-level signature (``multipart/signed``, ``application/pkcs7-mime``:
    hashed byte-exact as sent), an enclosed message, an unusual transfer encoding or a
    tree the feed parser built is walked on its raw bytes, as before."""
    files = _files_of_tree(tree) if tree is not None and is_fast_tree(tree) else None
    if files is None:
        return jobs_for_message(raw, policy)
    return _jobs_for_files([(name, data, ()) for name, data in files], policy)


# Transfer encodings (as sent, lower-cased) that the tree's decoded payload and
# :func:`mailsvc.message.decode_body` turn into the same bytes.
_PLAIN_ENCODINGS = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})


def _raw_value(part: Message, name: str) -> str | None:
    """The first ``name`` field's value as stored (unfolded by nothing, decoded by nothing)."""
    lower = name.lower()
    for key, value in part.raw_items():
        if key.lower() == lower:
            return str(value)
    return None


def _types_of_stored(part: Message) -> Message:
    """:func:`_types` of a tree's entity: the modern policy's reading of the same stored
    field values (both policies store a field as ``header_source_parse`` cuts it), so a
    file's name is the one the raw walk gives, encoded words and RFC 2231 included; parsed
    through ``parse_head``'s policy, which keeps recurring fields parsed."""
    view = Message()
    for name in ("Content-Type", "Content-Disposition"):
        value = _raw_value(part, name)
        if value is not None:
            view[name] = str(HEAD_POLICY.header_fetch_parse(name, value))
    return view


def _files_of_tree(tree: Message) -> list[tuple[str, bytes]] | None:
    """(file name, decoded bytes) of each named leaf in the order the raw walk finds them;
    None wherever the tree could say something else than the raw walk."""
    files: list[tuple[str, bytes]] = []
    for part in tree.walk():
        types = _types_of_stored(part)
        ctype = types.get_content_type()
        if ctype == "multipart/signed" or ctype in _CMS_MIME_TYPES:
            return None
        if types.get_content_maintype() == "multipart":
            if not part.is_multipart() or types.get_boundary() != part.get_boundary():
                return None
            continue
        if part.is_multipart():
            return None  # message/rfc822: the raw walk does not enter it
        filename = types.get_filename() or ""
        if not filename and ctype in ("text/plain", "text/html"):
            if (types.get_content_disposition() or "").lower() != "attachment":
                continue  # a mail body: no file (leaf_file_name says so too)
        encoding = _raw_value(part, "Content-Transfer-Encoding") or ""
        if encoding.lower() not in _PLAIN_ENCODINGS:
            return None
        data = decoded_payload(part)
        if data is None:
            return None
        filename = leaf_file_name(filename, ctype, types.get_content_disposition() or "", data)
        if filename:
            files.append((filename, data))
    return files
