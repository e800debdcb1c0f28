"""InboundMessage: the envelope, the raw bytes and a parsed view. Read-only."""

from __future__ import annotations

import binascii
import email
import email.policy
import hashlib
import itertools
import quopri
import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from email import errors
from email.message import EmailMessage, Message
from email.parser import BytesParser
from enum import Enum
from functools import cached_property, lru_cache
from typing import Any

from mailsvc.originator import Originator, read_originator

# Decoded payloads of parsed parts, shared by the readers of one parse in a worker (text
# extraction, the register's attachments, spam rules): a 200 KB base64 document is decoded
# once, not once per reader. Keyed by the part object; gone with the parse.
_DECODED: weakref.WeakKeyDictionary[Message, bytes | None] = weakref.WeakKeyDictionary()


def decoded_payload(part: Message) -> bytes | None:
    """``part.get_payload(decode=True)`` if it is bytes (None for a multipart), computed
    once per part object. Exceptions propagate and are not remembered."""
    try:
        return _DECODED[part]
    except KeyError:
        pass
    data = part.get_payload(decode=True)
    result = data if isinstance(data, bytes) else None
    _DECODED[part] = result
    return result


class Direction(str, Enum):
    INBOUND = "inbound"  # from another MTA on port 25
    SUBMISSION = "submission"  # from an authenticated official
    FETCHED = "fetched"  # pulled from an external mailbox


@dataclass(frozen=True)
class InboundMessage:
    queue_id: str
    mail_from: str  # "" for the null sender
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime  # UTC, timezone-aware
    client_ip: str = ""
    client_helo: str = ""
    authenticated_as: str | None = None
    direction: Direction = Direction.INBOUND
    tls: bool = False
    # MAIL FROM exactly as the client sent it (mail_from is lower-cased); SPF macros
    # such as %{l} keep its case. "" means the same as mail_from.
    mail_from_as_sent: str = ""

    @cached_property
    def parsed(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @cached_property
    def headers(self) -> EmailMessage:
        """The top-level header block only (cheap: the body is not parsed)."""
        return parse_head(self.raw)

    @cached_property
    def is_plain_text(self) -> bool:
        """One text/plain entity, not an attachment: no files, documents or status parts
        (the register and the exchange readers skip the full parse)."""
        head = self.headers
        return (
            head.get_content_type() == "text/plain"
            and head.get_content_disposition() != "attachment"
            and not head.get_filename()
        )

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @cached_property
    def message_id(self) -> str:
        """Message-ID as the modern policy reads it, stripped; as written (unfolded)
        when that parser fails on it. A plain ``<left@right>`` reads as written, so it is
        taken as is: parsing a field that is new with every message costs 0.3 ms (the
        header memo cannot help it)."""
        written = _written(self.headers, "Message-ID")
        if written is not None and _PLAIN_MESSAGE_ID.fullmatch(written.strip()):
            return written.strip()
        return field_text(self.headers, "Message-ID").strip()

    @cached_property
    def subject(self) -> str:
        """The Subject, decoded (RFC 2047) as the modern policy reads it; "" when absent or
        unreadable. Parsed once: the notice, the register and the metadata stage read it."""
        try:
            return str(self.headers.get("Subject", "") or "")
        except (ValueError, IndexError, TypeError):
            return ""

    @property
    def sender_domain(self) -> str:
        return self.mail_from.rpartition("@")[2].lower()

    @cached_property
    def originator(self) -> Originator:
        """From/Sender/Reply-To parsed once, bounded (mailsvc.originator). The first
        access parses: make it off the event loop (the handler and the limits stage do)."""
        return read_originator(self.raw)

    @property
    def originator_if_parsed(self) -> Originator | None:
        """``originator`` if something has parsed it already, else None (no work)."""
        parsed = self.__dict__.get("originator")
        return parsed if isinstance(parsed, Originator) else None

    @property
    def from_address(self) -> str:
        """The address in From:, lower-cased, or "" when missing or unparsable."""
        return self.originator.from_address


# msg-id (RFC 5322 §3.6.4) with dot-atom-text on both sides, no comment, quote, literal,
# white space or encoded word: the modern policy's reading of such a value is the value.
_PLAIN_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/^_`{|}~.-]+>")

def _written(head: Message, name: str) -> str | None:
    """The first ``name`` field of ``head`` as written (folded), or None."""
    wanted = name.lower()
    return next((v for n, v in head.raw_items() if n.lower() == wanted), None)


def field_text(head: Message, name: str) -> str:
    """The first ``name`` field as text: the modern policy's reading, or the field as
    written (unfolded) when that parser fails on it. It raises IndexError or
    AttributeError on some hostile address and Message-ID values ("To: <",
    "Message-ID: <@b>"): a reader that must not fail (a transaction, a DSN, the CLI)
    reads fields through here. "" when absent."""
    try:
        return str(head.get(name, "") or "")
    except (errors.HeaderParseError, IndexError, AttributeError, ValueError, TypeError):
        written = _written(head, name) or ""
        return "".join(written.splitlines())


_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """An entity's header block and its body, byte-exact (no blank line: all head)."""
    m = _END_OF_HEAD.search(raw)
    return (raw[: m.start()], raw[m.end() :]) if m else (raw, b"")


# Fields kept parsed: at most this many, each of at most this many characters. A parsed
# field costs up to ~2.2 KB of objects per character (a To: of one-letter addresses), so
# the bound is what a hostile sender can make the process hold: 64 x 100 x 2.2 KB, 14 MB.
_MEMO_FIELDS = 64
_MEMO_VALUE_MAX = 100


@lru_cache(maxsize=_MEMO_FIELDS)
def _field(name: str, value: str) -> Any:
    return email.policy.default.header_fetch_parse(name, value)


class _MemoPolicy(email.policy.EmailPolicy):
    """The default policy, except that a short field is parsed once per (name, value).

    The modern policy builds a new header object at every access (``get``,
    ``get_content_type``, ``get_filename``, ``get_all``...): on the message path
    ``InboundMessage.headers`` is asked for Content-Type three times by one check, and the
    same From:, Content-Type:, MIME-Version: and Date: values recur from message to
    message. Header objects are immutable and a pure function of name and value, so the
    last few are kept (bounded LRU: see ``_MEMO_FIELDS``); longer values are parsed at
    every access, as before."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name") or len(value) > _MEMO_VALUE_MAX:
            return super().header_fetch_parse(name, value)
        return _field(name, value)


HEAD_POLICY = _MemoPolicy()
_HEAD_PARSER = BytesParser(policy=HEAD_POLICY)


def parse_head(raw: bytes) -> EmailMessage:
    """The header block of an entity as a message with an empty body (the modern policy,
    fields parsed once: :class:`_MemoPolicy`).

    ``headersonly`` parsing still walks every body line; cutting the bytes first keeps a
    300 KB attachment out of the feed parser altogether.
    """
    head, _ = split_head(raw)
    msg = _HEAD_PARSER.parsebytes(head, headersonly=True)
    assert isinstance(msg, EmailMessage)
    return msg


def decode_body(part: EmailMessage, body: bytes) -> bytes:
    """The body bytes of a leaf entity after its Content-Transfer-Encoding."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte == "base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:  # bad padding: let the email package be lenient
            full = email.message_from_bytes(
                bytes(part) + b"\r\n" + body, policy=email.policy.default
            )
            payload = full.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    return body


# ------------------------------------------------------------- the worker's one parse


class _Irregular(Exception):
    """The fast parse declines: the feed parser decides what this message means."""


_HEADS = BytesParser(policy=email.policy.compat32)
_MAX_DEPTH = 20  # the feed parser has no limit; ours falls back to it beyond this


def delimiters(body: bytes, boundary: str) -> list[tuple[int, int, bool]]:
    """Each delimiter line of ``boundary`` in ``body``: (start, end, close).

    A delimiter is ``--boundary`` at the start of a line, optionally ``--`` (the close),
    optional spaces or tabs, then the end of the line; ``start`` includes the line break
    before it, which belongs to the delimiter (RFC 2046 §5.1.1), ``end`` stops before the
    line break that ends it. Found with ``bytes.find``: a regular expression over a 300 KB
    body cost milliseconds per message.
    """
    delim = b"--" + boundary.encode("ascii", "replace")
    found: list[tuple[int, int, bool]] = []
    i = body.find(delim)
    while i >= 0:
        if i == 0 or body[i - 1] == 0x0A:
            end = i + len(delim)
            close = body.startswith(b"--", end)
            if close:
                end += 2
            while end < len(body) and body[end] in b" \t":
                end += 1
            if end == len(body) or body.startswith(b"\n", end) or body.startswith(b"\r\n", end):
                start = i
                if i >= 1:
                    start = i - 2 if i >= 2 and body[i - 2] == 0x0D else i - 1
                found.append((start, end, close))
        i = body.find(delim, i + len(delim))
    return found


def _after_line_break(body: bytes, end: int) -> int:
    if body.startswith(b"\r\n", end):
        return end + 2
    if body.startswith(b"\n", end):
        return end + 1
    return end


def parse_tree(raw: bytes) -> Message:
    """The message's part tree (compat32), as ``email.message_from_bytes`` builds it.

    The feed parser reads a body line by line in Python: about 5 ms for a 300 KB message
    with a base64 document, most of the worker's parse. Here each entity's header block
    goes through the same parser alone, multipart bodies are cut at their delimiters with
    ``bytes.find`` and a leaf's body becomes its payload in one piece, so the tree (headers,
    payloads, preambles, epilogues) is the feed parser's own for a well-formed message.
    Anything the fast path does not model exactly (bare CR line breaks, a header block with
    defects, a multipart without its boundary or its closing delimiter, nested boundaries
    that overlap, digests, ``message/*`` other than rfc822, deep nesting) is handed to the
    feed parser, so a hostile message cannot make the two readings differ.
    """
    tree = fast_tree(raw)
    return tree if tree is not None else email.message_from_bytes(raw, policy=email.policy.compat32)


def fast_tree(raw: bytes) -> Message | None:
    """:func:`parse_tree`'s fast path alone: None where it leaves the message to the feed
    parser."""
    if raw.count(b"\r") != raw.count(b"\r\n"):
        return None
    try:
        tree = _entity(raw, (), 0)
    except _Irregular:
        return None
    _FAST.add(tree)
    return tree


# Roots built by the fast path: their multipart children were cut at the delimiters that
# :func:`delimiters` finds, as the S/MIME walk (mailsvc.signatures.smime) cuts them.
_FAST: weakref.WeakSet[Message] = weakref.WeakSet()


def is_fast_tree(tree: Message) -> bool:
    """True when ``tree`` is the root of a tree :func:`fast_tree` built (not the feed
    parser's: that one splits irregular multiparts by rules of its own)."""
    return tree in _FAST


def _entity(raw: bytes, outer: tuple[str, ...], depth: int) -> Message:
    if depth > _MAX_DEPTH:
        raise _Irregular
    if raw.startswith(b"\n") or raw.startswith(b"\r\n"):
        raise _Irregular  # no header block: rare enough to leave to the feed parser
    m = _END_OF_HEAD.search(raw)
    if m is None:
        raise _Irregular
    msg = _HEADS.parsebytes(raw[: m.end()], headersonly=True)
    body = raw[m.end() :]
    # a multipart head parsed alone has no parts yet: that defect is ours, not the sender's
    msg.defects[:] = [
        d for d in msg.defects if not isinstance(d, errors.MultipartInvariantViolationDefect)
    ]
    if msg.defects or msg.get_unixfrom():
        raise _Irregular
    maintype = msg.get_content_maintype()
    if maintype == "multipart":
        boundary = msg.get_boundary()
        if (
            not boundary
            or msg.get_content_subtype() == "digest"
            or any(b.startswith(boundary) or boundary.startswith(b) for b in outer)
            # the feed parser records a defect for any other encoding (RFC 2045 §6.4)
            or str(msg.get("content-transfer-encoding", "8bit")).lower()
            not in ("7bit", "8bit", "binary")
        ):
            raise _Irregular
        found = delimiters(body, boundary)
        if len(found) < 2 or not found[-1][2] or sum(close for *_, close in found) != 1:
            raise _Irregular  # no opening, no close, or delimiters after the close
        first = found[0][0]
        # the line break before a delimiter is the delimiter's, even the body's first
        opens_body = first == 0 and not body.startswith((b"\n", b"\r\n"))
        msg.preamble = None if opens_body else body[:first].decode("ascii", "surrogateescape")
        inner = (*outer, boundary)
        msg.set_payload(
            [
                _entity(body[_after_line_break(body, end) : following], inner, depth + 1)
                for (_, end, _), (following, _, _) in itertools.pairwise(found)
            ]
        )
        last_end = found[-1][1]
        msg.epilogue = body[_after_line_break(body, last_end) :].decode("ascii", "surrogateescape")
    elif maintype == "message":
        if msg.get_content_subtype() != "rfc822":
            raise _Irregular
        msg.set_payload([_entity(body, outer, depth + 1)])
    else:
        msg.set_payload(body.decode("ascii", "surrogateescape"))
    return msg
