"""LimitsStage: refuse hostile structure before any other stage parses the message.

The check walks the raw bytes itself, iteratively, instead of asking the ``email``
package to parse them: a message built to blow up a parser (thousands of nested
parts, megabyte header lines, zip bombs) must not reach one. Every loop is bounded by
a policy limit, so the work is at most linear in the message size times
``mime.max_depth``, plus the archive bytes the policy allows:

- MIME: entities counted as they are found (``mime-parts-exceeded``), nesting of
  multipart/* and message/* (``mime-depth-exceeded``), and a part whose content is not in
  the message (``mime-fragment``: message/partial, one fragment of a message sent in
  several; message/external-body, a body kept elsewhere).
- Headers of every entity: block size (``header-too-large``), one physical line
  (``header-line-too-long``), number of fields (``header-fields-exceeded``).
- Decoded size of base64 / quoted-printable parts, each and in total
  (``decoded-size-exceeded``).
- Archives (zip, including Office/OpenDocument files, and gzip), from their metadata
  and bounded streaming reads, never a full decompression into memory: declared
  uncompressed total and per-member ratio (``archive-bomb``), members
  (``archive-entries-exceeded``), archive-in-archive depth (``archive-nesting-exceeded``),
  a nested archive too big to inspect (``archive-nested-too-large``), an archive that
  cannot be read (``archive-unreadable``) or is encrypted (``archive-encrypted``), each
  as the policy says.

- The top-level header section read as every reader reads it, and its originator
  fields (mailsvc.originator): white space before a field name's colon
  (``header-name-whitespace``), a line that is not a field (``header-field-malformed``),
  control characters (``header-control-character``), anything but exactly one From:
  (``from-count``) naming exactly one mailbox (``from-mailbox-count``), Sender/Reply-To
  twice (``originator-repeated``), an originator field over 2 KiB
  (``address-header-too-large``) or one the parser cannot read (``address-header-unparsable``).
- Attachment file names with direction overrides, invisible characters, controls or
  bytes that are not UTF-8 (``file-name-deceptive``).

The first limit exceeded ends the walk with one ``fail`` Finding whose payload, a
``LimitBreach``, names the limit (``limit``: the policy key, ``maximum``, ``observed``,
``part``: the MIME path such as ``1.2`` and, for archives, the ``member``). A message
within the limits gets a ``pass`` Finding whose payload is its ``LimitCounters``.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import email
import email.policy
import io
import re
import struct
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import IO, Any

from mailsvc.message import InboundMessage
from mailsvc.policy.limits import LimitsPolicy
from mailsvc.verdict import Finding, Status

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
EOCD = b"PK\x05\x06"
CENTRAL_ENTRY = b"PK\x01\x02"
EOCD_SEARCH = 65_535 + 22
READ_CHUNK = 64 * 1024

_QUOTE_OR_ESCAPE = re.compile(rb'["\\]')
# Header values whose file names can only be printable ASCII: no control, tab or 8-bit
# byte, no RFC 2047 encoded word ("=?") and no RFC 2231 parameter ("*"). Read without
# the email package's parser (0.15 ms a part), which file_name_problem needs otherwise.
_PRINTABLE = bytes(range(0x20, 0x7F))


def _plain_field(value: bytes) -> bool:
    return not value.translate(None, _PRINTABLE) and b"=?" not in value and b"*" not in value


# message/ types whose content is not in the message (RFC 2046 5.2.2, 5.2.3)
_NOT_HERE = (b"partial", b"external-body")


@dataclass(frozen=True)
class LimitBreach:
    """The first limit a message exceeded."""

    reason: str
    limit: str  # the policy key, e.g. "mime.max_depth"
    maximum: float
    observed: float
    part: str = ""  # MIME path: "" for the message, "1.2" for the second part of the first
    member: str = ""  # archive member path, "outer.zip/inner.zip/file"
    note: str = ""  # a rule rather than a size: what was found

    def describe(self) -> str:
        where = f" in part {self.part or 'top'}" + (f" member {self.member}" if self.member else "")
        if self.note:
            return f"{self.limit}{where}: {self.note}"
        return f"{self.limit} exceeded{where}: {self.observed:g} > {self.maximum:g}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "limit": self.limit,
            "maximum": self.maximum,
            "observed": self.observed,
            "part": self.part,
        }
        if self.member:
            out["member"] = self.member
        return out


@dataclass(frozen=True)
class LimitCounters:
    """What the walk counted in a message within the limits."""

    parts: int = 0
    decoded_bytes: int = 0
    archives: int = 0
    archive_entries: int = 0
    archive_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "parts": self.parts,
            "decoded_bytes": self.decoded_bytes,
            "archives": self.archives,
            "archive_entries": self.archive_entries,
            "archive_bytes": self.archive_bytes,
        }


class _Exceeded(Exception):
    """Ends the walk at the first breach (internal to this module)."""

    def __init__(self, breach: LimitBreach) -> None:
        super().__init__(breach.describe())
        self.breach = breach


@dataclass
class _Entity:
    buf: bytes
    start: int
    end: int
    depth: int
    path: str
    default_type: bytes = b"text/plain"


@dataclass
class _Headers:
    content_type: bytes = b""
    encoding: bytes = b""
    disposition: bytes = b""
    body_start: int = 0


@dataclass
class _Budget:
    parts: int = 0
    decoded: int = 0
    archive_bytes: int = 0
    archive_entries: int = 0
    archives: int = 0
    notes: list[str] = field(default_factory=list)


class ArchiveMet(Exception):
    """The walk met an archive while told to leave them (``check_limits(archives=False)``):
    reading an archive's members is for a thread, not the event loop."""


def check_limits(
    raw: bytes, policy: LimitsPolicy, *, archives: bool = True
) -> tuple[LimitBreach | None, dict[str, int]]:
    """Walk ``raw`` under ``policy``; return the first breach (or None) and counters.
    With ``archives`` False, raise :class:`ArchiveMet` on the first archive instead of
    reading its members (the caller walks again where it may take the time).

    A plain function of bytes and a picklable policy, so it can run in a process pool.
    """
    walker = _Walker(policy, archives=archives)
    try:
        walker.walk(raw)
    except _Exceeded as exc:
        return exc.breach, walker.counters()
    return None, walker.counters()


class _Walker:
    def __init__(self, policy: LimitsPolicy, *, archives: bool = True) -> None:
        self.p = policy
        self.b = _Budget()
        self.archives = archives

    def counters(self) -> dict[str, int]:
        return {
            "parts": self.b.parts,
            "decoded_bytes": self.b.decoded,
            "archives": self.b.archives,
            "archive_entries": self.b.archive_entries,
            "archive_bytes": self.b.archive_bytes,
        }

    def _fail(
        self,
        reason: str,
        limit: str,
        maximum: float,
        observed: float,
        part: str,
        member: str = "",
    ) -> None:
        raise _Exceeded(LimitBreach(reason, limit, maximum, observed, part, member[:300]))

    # --- MIME ----------------------------------------------------------------

    def walk(self, raw: bytes) -> None:
        self.b.parts = 1
        stack = [_Entity(raw, 0, len(raw), 0, "")]
        while stack:
            entity = stack.pop()
            headers = self._headers(entity)
            self._check_file_name(headers, entity.path)
            ctype, params = _content_type(headers.content_type, entity.default_type)
            maintype, _, subtype = ctype.partition(b"/")
            if maintype == b"multipart" and params.get(b"boundary"):
                default = b"message/rfc822" if subtype == b"digest" else b"text/plain"
                children = list(self._multipart(entity, headers.body_start, params[b"boundary"]))
                for start, end, index in reversed(children):
                    path = f"{entity.path}.{index}" if entity.path else str(index)
                    stack.append(_Entity(entity.buf, start, end, entity.depth + 1, path, default))
            elif maintype == b"message" and subtype in _NOT_HERE:
                # RFC 2046 5.2.2-5.2.3: a fragment of a message whose other fragments come
                # in other messages, or a body kept elsewhere (a URL, a file): what the
                # recipient reassembles or fetches is never checked here
                self._fail("mime-fragment", "mime.fragments", 0, 1, entity.path)
            elif maintype == b"message" and subtype in (b"rfc822", b"global"):
                self._count_child(entity)
                buf, start, end = entity.buf, headers.body_start, entity.end
                if _encoding(headers.encoding) in (b"base64", b"quoted-printable"):
                    buf = self._decode(entity, headers)
                    start, end = 0, len(buf)
                path = f"{entity.path}.1" if entity.path else "1"
                stack.append(_Entity(buf, start, end, entity.depth + 1, path))
            else:
                data = self._decode(entity, headers)
                self._inspect_leaf(data, entity.path)

    def _check_file_name(self, headers: _Headers, path: str) -> None:
        if b"name" not in headers.disposition.lower() and b"name" not in (
            headers.content_type.lower()
        ):
            return
        problem = file_name_problem(headers.disposition, headers.content_type)
        if problem:
            raise _Exceeded(
                LimitBreach("file-name-deceptive", "file_names", 0, 0, path, note=problem[:200])
            )

    def _count_child(self, parent: _Entity) -> None:
        self.b.parts += 1
        if self.b.parts > self.p.mime.max_parts:
            self._fail(
                "mime-parts-exceeded", "mime.max_parts", self.p.mime.max_parts, self.b.parts,
                parent.path,
            )  # fmt: skip
        if parent.depth + 1 > self.p.mime.max_depth:
            self._fail(
                "mime-depth-exceeded", "mime.max_depth", self.p.mime.max_depth, parent.depth + 1,
                parent.path,
            )  # fmt: skip

    def _headers(self, entity: _Entity) -> _Headers:
        limits = self.p.headers
        buf, pos, end = entity.buf, entity.start, entity.end
        out = _Headers()
        fields = 0
        current: bytes | None = None  # name of the field being unfolded, if wanted
        values: dict[bytes, bytearray] = {}
        while pos < end:
            nl = buf.find(b"\n", pos, min(end, pos + limits.max_line_bytes + 2))
            line_end = nl if nl != -1 else min(end, pos + limits.max_line_bytes + 2)
            line = buf[pos:line_end].rstrip(b"\r")
            if len(line) > limits.max_line_bytes:
                self._fail(
                    "header-line-too-long", "headers.max_line_bytes", limits.max_line_bytes,
                    _line_length(buf, pos, end), entity.path,
                )  # fmt: skip
            next_pos = line_end + 1 if nl != -1 else end
            if not line:  # the blank line ending the header block
                pos = next_pos
                break
            if line[:1] in (b" ", b"\t"):
                if fields == 0:  # continuation with nothing before it: no headers here
                    break
                if current is not None:
                    values[current] += line
            else:
                name, colon, value = line.partition(b":")
                if not colon or not name or b" " in name.strip() or b"\t" in name:
                    break  # not a header line: the body starts here (as the email package does)
                fields += 1
                if fields > limits.max_fields:
                    self._fail(
                        "header-fields-exceeded", "headers.max_fields", limits.max_fields, fields,
                        entity.path,
                    )  # fmt: skip
                key = name.strip().lower()
                if key in (b"content-type", b"content-transfer-encoding", b"content-disposition"):
                    current = None if key in values else key
                    if current is not None:
                        values[current] = bytearray(value)
                else:
                    current = None
            if next_pos - entity.start > limits.max_bytes:
                self._fail(
                    "header-too-large", "headers.max_bytes", limits.max_bytes,
                    next_pos - entity.start, entity.path,
                )  # fmt: skip
            pos = next_pos
        out.body_start = pos
        out.content_type = bytes(values.get(b"content-type", b"")).strip()
        out.encoding = bytes(values.get(b"content-transfer-encoding", b"")).strip()
        out.disposition = bytes(values.get(b"content-disposition", b"")).strip()
        return out

    def _multipart(self, entity: _Entity, body_start: int, boundary: bytes) -> Iterator[
        tuple[int, int, int]
    ]:  # fmt: skip
        """Yield (start, end, index) of each body part, counting and bounding them."""
        buf, end = entity.buf, entity.end
        marker = b"--" + boundary
        pos = body_start
        part_start: int | None = None
        index = 0
        while pos < end:
            hit = buf.find(marker, pos, end)
            if hit == -1:
                break
            pos = hit + len(marker)
            if hit != body_start and buf[hit - 1 : hit] != b"\n":
                continue  # not at the start of a line
            closing = buf[pos : pos + 2] == b"--"
            tail = buf[pos + 2 if closing else pos : pos + 2 + 200]
            if tail.strip(b" \t")[:1] not in (b"\r", b"\n", b""):
                continue  # "--boundary" followed by more text: a longer boundary
            if part_start is not None:
                part_end = hit - 1 if hit > part_start else part_start
                if part_end > part_start and buf[part_end - 1 : part_end] == b"\r":
                    part_end -= 1
                index += 1
                self._count_child(entity)
                yield part_start, max(part_start, part_end), index
            if closing:
                return
            nl = buf.find(b"\n", pos, end)
            part_start = end if nl == -1 else nl + 1
            pos = part_start
        if part_start is not None and part_start < end:  # no closing delimiter
            index += 1
            self._count_child(entity)
            yield part_start, end, index

    def _decode(self, entity: _Entity, headers: _Headers) -> bytes:
        body = entity.buf[headers.body_start : entity.end]
        encoding = _encoding(headers.encoding)
        if encoding == b"base64":
            data = _b64decode(body)
        elif encoding == b"quoted-printable":
            data = binascii.a2b_qp(body)
        else:
            data = body
        self._count_decoded(len(data), entity.path)
        return data

    def _count_decoded(self, size: int, path: str) -> None:
        limits = self.p.decoded
        if size > limits.max_part_bytes:
            self._fail(
                "decoded-size-exceeded", "decoded.max_part_bytes", limits.max_part_bytes, size,
                path,
            )  # fmt: skip
        self.b.decoded += size
        if self.b.decoded > limits.max_total_bytes:
            self._fail(
                "decoded-size-exceeded", "decoded.max_total_bytes", limits.max_total_bytes,
                self.b.decoded, path,
            )  # fmt: skip

    # --- archives ------------------------------------------------------------

    def _inspect_leaf(self, data: bytes, path: str) -> None:
        kind = _archive_kind(data)
        if kind is None:
            return
        if not self.archives:
            raise ArchiveMet(path)
        stack: list[tuple[bytes, str, int, str]] = [(data, kind, 1, "")]
        while stack:
            blob, blob_kind, depth, member = stack.pop()
            self.b.archives += 1
            if blob_kind == "zip":
                stack.extend(self._zip(blob, depth, path, member))
            else:
                stack.extend(self._gzip(blob, depth, path, member))

    def _nested(self, head: bytes, size: int, depth: int, path: str, member: str) -> str | None:
        """The kind of a nested archive (or None), after checking depth and size limits."""
        kind = _archive_kind(head)
        if kind is None:
            return None
        arch = self.p.archives
        if depth + 1 > arch.max_depth:
            self._fail(
                "archive-nesting-exceeded", "archives.max_depth", arch.max_depth, depth + 1, path,
                member,
            )  # fmt: skip
        if size > arch.max_nested_bytes:
            self._fail(
                "archive-nested-too-large", "archives.max_nested_bytes", arch.max_nested_bytes,
                size, path, member,
            )  # fmt: skip
        return kind

    def _add_archive_bytes(self, size: int, compressed: int, path: str, member: str) -> None:
        arch = self.p.archives
        self.b.archive_bytes += size
        if self.b.archive_bytes > arch.max_total_bytes:
            self._fail(
                "archive-bomb", "archives.max_total_bytes", arch.max_total_bytes,
                self.b.archive_bytes, path, member,
            )  # fmt: skip
        if size > arch.ratio_min_bytes:
            ratio = size / compressed if compressed > 0 else float("inf")
            if ratio > arch.max_ratio:
                self._fail(
                    "archive-bomb", "archives.max_ratio", arch.max_ratio, round(ratio, 1), path,
                    member,
                )  # fmt: skip

    def _unreadable(self, path: str, member: str, why: str) -> None:
        if self.p.archives.refuse_unreadable:
            self._fail("archive-unreadable", "archives.refuse_unreadable", 0, 1, path, member)
        self.b.notes.append(f"unreadable archive {member or path}: {why}")

    def _zip(self, blob: bytes, depth: int, path: str, outer: str) -> list[
        tuple[bytes, str, int, str]
    ]:  # fmt: skip
        arch = self.p.archives
        # Count central-directory entries before zipfile builds an object for each.
        declared = blob.count(CENTRAL_ENTRY)
        if self.b.archive_entries + declared > arch.max_entries:
            self._fail(
                "archive-entries-exceeded", "archives.max_entries", arch.max_entries,
                self.b.archive_entries + declared, path, outer,
            )  # fmt: skip
        try:
            archive = zipfile.ZipFile(io.BytesIO(blob))
        except (
            zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            NotImplementedError, RuntimeError,
        ) as exc:  # fmt: skip
            self._unreadable(path, outer, str(exc))
            return []
        nested: list[tuple[bytes, str, int, str]] = []
        with archive:
            for info in archive.infolist():
                self.b.archive_entries += 1
                member = f"{outer}/{info.filename}" if outer else info.filename
                if self.b.archive_entries > arch.max_entries:
                    self._fail(
                        "archive-entries-exceeded", "archives.max_entries", arch.max_entries,
                        self.b.archive_entries, path, member,
                    )  # fmt: skip
                self._add_archive_bytes(info.file_size, info.compress_size, path, member)
                if info.is_dir() or info.file_size < 4:
                    continue
                if info.flag_bits & 0x1:
                    if arch.refuse_encrypted:
                        self._fail(
                            "archive-encrypted", "archives.refuse_encrypted", 0, 1, path, member
                        )
                    continue
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    # bzip2/lzma decompress whole input chunks at once: not read here
                    # (clamd still unpacks them under its own limits).
                    self.b.notes.append(f"member not inspected ({info.compress_type}): {member}")
                    continue
                try:
                    with archive.open(info) as handle:
                        head = handle.read(8)
                        kind = self._nested(head, info.file_size, depth, path, member)
                        if kind is None:
                            continue
                        inner = head + _bounded_read(handle, arch.max_nested_bytes - len(head))
                except (
                    zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                    NotImplementedError, RuntimeError,
                ) as exc:  # fmt: skip
                    self._unreadable(path, member, str(exc))
                    continue
                nested.append((inner, kind, depth + 1, member))
        return nested

    def _gzip(self, blob: bytes, depth: int, path: str, outer: str) -> list[
        tuple[bytes, str, int, str]
    ]:  # fmt: skip
        arch = self.p.archives
        member = f"{outer}/(gzip)" if outer else "(gzip)"
        self.b.archive_entries += 1
        if self.b.archive_entries > arch.max_entries:
            self._fail(
                "archive-entries-exceeded", "archives.max_entries", arch.max_entries,
                self.b.archive_entries, path, member,
            )  # fmt: skip
        inflater = zlib.decompressobj(wbits=31)
        produced = 0
        consumed = 0
        head = bytearray()
        keep = bytearray()
        keeping = True
        view = memoryview(blob)
        try:
            offset = 0
            while offset < len(view) and not inflater.eof:
                chunk = view[offset : offset + READ_CHUNK]
                offset += len(chunk)
                pending: bytes | memoryview = chunk
                while pending and not inflater.eof:
                    before = len(pending)
                    out = inflater.decompress(pending, READ_CHUNK)
                    pending = inflater.unconsumed_tail
                    consumed = offset - len(pending) - len(inflater.unused_data)
                    produced += len(out)
                    self._check_stream(produced, consumed, path, member)
                    if len(head) < 8:
                        head += out[: 8 - len(head)]
                        if len(head) >= 8 and _archive_kind(bytes(head)) is None:
                            keeping = False  # not an archive inside: nothing to keep
                    if keeping:
                        keep += out
                        if len(keep) > arch.max_nested_bytes:
                            keeping = False
                            keep.clear()
                    if not out and len(pending) >= before:
                        break  # no progress: truncated or corrupt stream
        except zlib.error as exc:
            self._unreadable(path, member, str(exc))
            return []
        self._add_archive_bytes(produced, max(consumed, 1), path, member)
        kind = self._nested(bytes(head), produced, depth, path, member)
        if kind is None:
            return []
        return [(bytes(keep), kind, depth + 1, member)]

    def _check_stream(self, produced: int, consumed: int, path: str, member: str) -> None:
        """Stop a gzip stream as soon as its output passes a limit."""
        arch = self.p.archives
        if self.b.archive_bytes + produced > arch.max_total_bytes:
            self._fail(
                "archive-bomb", "archives.max_total_bytes", arch.max_total_bytes,
                self.b.archive_bytes + produced, path, member,
            )  # fmt: skip
        if produced > arch.ratio_min_bytes and produced / max(consumed, 1) > arch.max_ratio:
            self._fail(
                "archive-bomb", "archives.max_ratio", arch.max_ratio,
                round(produced / max(consumed, 1), 1), path, member,
            )  # fmt: skip


def _bounded_read(handle: IO[bytes], limit: int) -> bytes:
    out = bytearray()
    while len(out) <= limit:
        piece = handle.read(min(READ_CHUNK, limit + 1 - len(out)))
        if not piece:
            break
        out += piece
    return bytes(out)


def _archive_kind(data: bytes) -> str | None:
    if data[:4] in ZIP_MAGIC:
        return "zip"
    if data[:2] == GZIP_MAGIC:
        return "gzip"
    # A zip with something in front (self-extracting, polyglot): an end record at the tail.
    if len(data) >= 22 and data.rfind(EOCD, max(0, len(data) - EOCD_SEARCH)) != -1:
        tail = data.rfind(EOCD, max(0, len(data) - EOCD_SEARCH))
        if len(data) - tail >= 22:
            entries, cd_size, _offset = struct.unpack("<HII", data[tail + 10 : tail + 20])
            if entries and cd_size and cd_size <= len(data):
                return "zip"
    return None


def file_name_problem(disposition: bytes, content_type: bytes) -> str:
    """Why an attachment's file name (Content-Disposition filename, Content-Type name,
    RFC 2231/2047 decoded) must not be shown to a clerk, or "".

    Direction overrides and isolates (``hoa-don-\u202efdp.exe`` reads "hoa-don-exe.pdf"),
    zero-width and other invisible format characters, controls (CR/LF, NUL) and names
    that are not valid UTF-8 are refused: none belongs in an official document's name.
    """
    if _plain_field(disposition) and _plain_field(content_type):
        return ""  # printable ASCII, nothing encoded: so is every name read from them
    return _parsed_name_problem(disposition, content_type)


def _parsed_name_problem(disposition: bytes, content_type: bytes) -> str:
    """:func:`file_name_problem` on the names as the email package reads them."""
    head = b"Content-Disposition: " + disposition + b"\r\nContent-Type: " + content_type
    try:
        part = email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.default)
        names = [part.get_filename(), part.get_param("name")]
    except (RecursionError, ValueError, TypeError, IndexError, AttributeError, LookupError):
        return "file name cannot be parsed"
    for name in names:
        if not isinstance(name, str):
            continue
        try:  # raw 8-bit names arrive as surrogate escapes: they must be UTF-8
            text = name.encode("utf-8", "surrogateescape").decode("utf-8")
        except UnicodeError:
            return "file name is not valid UTF-8"
        if "\ufffd" in text:
            return "file name is not valid UTF-8"
        for char in text:
            if unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs"):
                return f"U+{ord(char):04X} ({unicodedata.name(char, 'control')}) in file name"
    return ""


def _content_type(value: bytes, default: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """The lower-cased type and parameters, parsed in one linear pass (no backtracking)."""
    main, _, _ = value.partition(b";")
    ctype = main.strip().lower()
    if b"/" not in ctype:
        ctype = default
    params: dict[bytes, bytes] = {}
    n = len(value)
    i = len(main)
    eq = -1
    while i < n:
        if eq <= i:  # (kept while skipping parameters without "=": no rescans)
            eq = value.find(b"=", i + 1)
        if eq == -1:
            break
        semi = value.find(b";", i + 1, eq)
        if semi != -1:  # a parameter without "=": skip it
            i = semi
            continue
        name = value[i + 1 : eq].strip().lower()
        j = eq + 1
        while j < n and value[j : j + 1] in (b" ", b"\t"):
            j += 1
        if value[j : j + 1] == b'"':
            out = bytearray()
            k = j + 1
            while k < n:
                hit = _QUOTE_OR_ESCAPE.search(value, k)
                if hit is None:
                    out += value[k:]
                    k = n
                    break
                out += value[k : hit.start()]
                if hit.group() == b"\\":
                    out += value[hit.start() + 1 : hit.start() + 2]
                    k = hit.start() + 2
                else:
                    k = hit.start() + 1
                    break
            raw = bytes(out)
            semi = value.find(b";", k)
        else:
            semi = value.find(b";", j)
            raw = value[j : n if semi == -1 else semi].strip()
        params.setdefault(name, raw)
        if semi == -1:
            break
        i = semi
    boundary = params.get(b"boundary", b"")
    if len(boundary) > 200:  # RFC 2046: at most 70 characters
        params[b"boundary"] = boundary[:200]
    return ctype, params


def _b64decode(body: bytes) -> bytes:
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        # Broken padding: decode what is whole, as mail clients do.
        clean = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        clean = clean[: len(clean) - len(clean) % 4]
        try:
            return binascii.a2b_base64(clean)
        except binascii.Error:
            return b""


def _encoding(value: bytes) -> bytes:
    return value.strip().lower().strip(b'"')


def _count_whitespace(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") + data.count(b" ") + data.count(b"\t")


def _line_length(buf: bytes, pos: int, end: int) -> int:
    nl = buf.find(b"\n", pos, end)
    return (nl if nl != -1 else end) - pos


# A message this small, whose header section ends within HEAD_INLINE_BYTES, is walked on
# the event loop: the walk and the originator parse cost less than the hand-off to a thread
# and back (some 70 µs of CPU and two wake-ups). Bounded: the walk of 64 KB is linear, an
# archive sends it to a thread (ArchiveMet), and the originator fields fit in the header
# section (a hostile field of 2 KB, the most that is parsed, takes about 3 ms).
INLINE_BYTES = 64 * 1024
HEAD_INLINE_BYTES = 8 * 1024


def _inline(raw: bytes) -> bool:
    return len(raw) <= INLINE_BYTES and (
        raw.find(b"\n\r\n", 0, HEAD_INLINE_BYTES) != -1
        or raw.find(b"\n\n", 0, HEAD_INLINE_BYTES) != -1
    )


def _check_and_read_originator(
    msg: InboundMessage, policy: LimitsPolicy, *, archives: bool = True
) -> tuple[LimitBreach | None, dict[str, int]]:
    """:func:`check_limits`, then, when the message is within limits, its originator
    fields parsed (``msg.originator`` caches them)."""
    breach, counters = check_limits(msg.raw, policy, archives=archives)
    if breach is None:
        _ = msg.originator
    return breach, counters


class LimitsStage:
    """Checks the message's structure against ``policy``; runs first, as a gate.

    ``executor``: where the CPU-bound walk runs (None: the loop's default thread pool;
    a ProcessPoolExecutor works too, the walk is a picklable function).
    """

    name = "limits"
    description = "Refuses hostile structure: MIME depth and parts, headers, sizes, archive bombs"

    def __init__(self, policy: LimitsPolicy, executor: Executor | None = None) -> None:
        self._policy = policy
        self._executor = executor

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        started = time.perf_counter()
        walked: tuple[LimitBreach | None, dict[str, int]] | None = None
        if self._executor is None and _inline(msg.raw):
            with contextlib.suppress(ArchiveMet):
                walked = _check_and_read_originator(msg, self._policy, archives=False)
        if walked is not None:
            breach, counters = walked
        elif self._executor is None:
            # One trip to a thread for both: the walk, then (within limits) the parse of
            # From:/Sender:/Reply-To:, cached on the message for every later reader.
            breach, counters = await asyncio.to_thread(
                _check_and_read_originator, msg, self._policy
            )
        else:
            loop = asyncio.get_running_loop()
            breach, counters = await loop.run_in_executor(
                self._executor, check_limits, msg.raw, self._policy
            )
            if breach is None:
                # In a thread (not the stage's executor, which may be a process pool).
                await asyncio.to_thread(lambda: msg.originator)
        if breach is None:
            originator = msg.originator  # parsed above, off the event loop
            if originator.problem is not None:
                return (
                    Finding(
                        stage=self.name,
                        status=Status.FAIL,
                        reason=originator.problem.reason,
                        detail=originator.problem.detail,
                        payload=LimitBreach(
                            reason=originator.problem.reason,
                            limit="headers.originator",
                            maximum=0,
                            observed=0,
                            note=originator.problem.detail,
                        ),
                    ),
                )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if breach is None:
            return (
                Finding(
                    stage=self.name,
                    status=Status.PASS,
                    reason="within-limits",
                    detail=f"{elapsed_ms:.1f} ms",
                    payload=LimitCounters(**counters),
                ),
            )
        return (
            Finding(
                stage=self.name,
                status=Status.FAIL,
                reason=breach.reason,
                detail=f"{breach.describe()} ({elapsed_ms:.1f} ms)",
                payload=breach,
            ),
        )
