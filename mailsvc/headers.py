"""Trace headers added on delivery (Received:, Authentication-Results:, X-Mailsvc-*),
working on raw bytes so the message body is never re-encoded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, getaddresses
from functools import lru_cache

from mailsvc.errors import MailsvcError

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw message bytes into (header section incl. final line end, rest)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx != -1:
            cut = idx + len(sep) // 2
            return raw[:cut], raw[cut:]
    return raw, b""


def _fields(section: bytes) -> list[bytes]:
    """Header fields with their continuation lines, as raw bytes."""
    fields: list[bytes] = []
    for line in section.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def remove_forged_auth_results(raw: bytes, authserv_id: str) -> bytes:
    """Drop header fields that claim to come from us: Authentication-Results: with our
    authserv-id (RFC 8601 §5) and any X-Mailsvc-* field (register number, verdict...)."""
    section, rest = split_header(raw)
    kept: list[bytes] = []
    ours = authserv_id.lower().encode()
    for field in _fields(section):
        match = _FIELD_NAME.match(field)
        if match and match.group(1).lower().startswith(b"x-mailsvc-"):
            continue
        if match and match.group(1).lower() == b"authentication-results":
            value = field[match.end() :].strip()
            claimed = re.split(rb"[;\s]", value, maxsplit=1)[0].lower()
            if claimed == ours:
                continue
        kept.append(field)
    return b"".join(kept) + rest


class HeaderValueError(MailsvcError):
    """A header field we were about to write holds a control character."""


# Any C0 control (CR and LF included) or DEL: a field we write is one logical line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NAME_CHARS = re.compile(r"[!-9;-~]+")


def _fold(name: str, value: str) -> bytes:
    """Encode one header field, folding long lines; non-ASCII values are RFC 2047 encoded.

    Refuses (HeaderValueError) a control character in the value or an invalid name:
    whatever a peer sent (HELO name, addresses, subjects) can never add a field of its own.
    """
    if not _NAME_CHARS.fullmatch(name):
        raise HeaderValueError(f"invalid header field name {name!r}")
    bad = _CONTROL.search(value)
    if bad is not None:
        raise HeaderValueError(
            f"{name}: control character U+{ord(bad.group()):04X} in the value refused"
        )
    try:
        value.encode("ascii")
        text = f"{name}: {value}"
        # Fold at "; " boundaries to keep lines under 998 octets (and readable).
        text = text.replace(";\n\t", "; ").replace("; ", ";\r\n\t") if len(text) > 78 else text
    except UnicodeEncodeError:
        text = f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return text.encode("ascii") + b"\r\n"


def received(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    recipient: str,
    when: datetime,
) -> tuple[str, str]:
    value = (
        f"from {helo or 'unknown'} ([{client_ip}]) by {hostname} (mailsvc) with {protocol} "
        f"id {queue_id}{f' for <{recipient}>' if recipient else ''}; {format_datetime(when)}"
    )
    return ("Received", value)


def authentication_results(authserv_id: str, results: Sequence[str]) -> tuple[str, str]:
    if not results:
        return ("Authentication-Results", f"{authserv_id}; none")
    return ("Authentication-Results", f"{authserv_id}; " + "; ".join(results))


# Fields whose value is a list of addresses: only display names may be RFC 2047 encoded.
_ADDRESS_FIELDS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})


def encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """Header fields of a message we compose, as bytes with CRLF line ends: non-ASCII
    display names of address fields and non-ASCII unstructured values RFC 2047 encoded
    (UTF-8), long values folded; control characters refused as in :func:`prepend`.

    The ``email`` package's modern policy does the same by parsing every value into a
    tree and refolding it when the message is written: some 4 ms of CPU for a notice's
    eight fields and four MIME parts, against 0.5 ms this way."""
    return b"".join(
        _kept_field(name, value) if len(value) <= _KEPT_VALUE_MAX else _encoded_field(name, value)
        for name, value in fields
    )


_KEPT_VALUE_MAX = 1024  # longer values (a long To: list) are encoded every time


def _encoded_field(name: str, value: str) -> bytes:
    """One field of :func:`encode_fields`."""
    if name.lower() in _ADDRESS_FIELDS and not value.isascii():
        if _CONTROL.search(value):
            _fold(name, value)  # raises HeaderValueError with the reason
        pairs = getaddresses([value])
        if any(not addr.isascii() for _display, addr in pairs):
            raise HeaderValueError(f"{name}: a non-ASCII address needs SMTPUTF8")
        encoded = [
            formataddr((display, addr))
            if display.isascii()
            else Header(display, "utf-8", header_name=name).encode(linesep="\r\n")
            + f"\r\n <{addr}>"
            for display, addr in pairs
        ]
        line = f"{name}: " + ", ".join(encoded).replace("\r\n <", " <")
        if len(line) > 78:  # fold before each address and between entries
            line = f"{name}: " + ",\r\n ".join(encoded)
        return line.encode("ascii") + b"\r\n"
    return _fold(name, value)


# The last few short fields encoded, for the same From: heads every notice (an RFC 2047
# encoding by the email package costs some 50 µs): at most 256 × 1 KB.
_kept_field = lru_cache(maxsize=256)(_encoded_field)


def prepend(raw: bytes, fields: Iterable[tuple[str, str]]) -> bytes:
    """Prepend header fields (given top first) to the raw message."""
    return b"".join(_fold(name, value) for name, value in fields) + raw
