"""InboundMessage: the envelope, the raw bytes and a parsed view. Read-only."""

from __future__ import annotations

import binascii
import email
import email.policy
import hashlib
import quopri
import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from enum import Enum
from functools import cached_property

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
        value = self.headers.get("Message-ID", "")
        return str(value).strip()

    @property
    def sender_domain(self) -> str:
        return self.mail_from.rpartition("@")[2].lower()

    @cached_property
    def originator(self) -> Originator:
        """From/Sender/Reply-To parsed once, bounded (mailsvc.originator). The first
        access parses: make it off the event loop (the handler and the limits stage do)."""
        return read_originator(self.raw)

    @property
    def from_address(self) -> str:
        """The address in From:, lower-cased, or "" when missing or unparsable."""
        return self.originator.from_address


_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """An entity's header block and its body, byte-exact (no blank line: all head)."""
    m = _END_OF_HEAD.search(raw)
    return (raw[: m.start()], raw[m.end() :]) if m else (raw, b"")


def parse_head(raw: bytes) -> EmailMessage:
    """The header block of an entity as a message with an empty body.

    ``headersonly`` parsing still walks every body line; cutting the bytes first keeps a
    300 KB attachment out of the feed parser altogether.
    """
    head, _ = split_head(raw)
    msg = BytesParser(policy=email.policy.default).parsebytes(head, headersonly=True)
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
