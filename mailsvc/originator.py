"""The originator fields of a message (From, Sender, Reply-To), read once and bounded.

Mail clients and Dovecot read a header section differently from Python's ``email``
package where the syntax is loose: ``From : x`` (space before the colon) is dropped by
Python but shown by others; a bare CR ends a line for Python only; a line that is not a
field ends the header section for Python only. A second From: then passes our checks on
one address and shows the reader another. So the top-level header section is scanned
here byte by byte and any such ambiguity is a :class:`HeaderProblem` (the message is
refused), as is anything but exactly one From: naming exactly one mailbox.

Address parsing with ``email.headerregistry`` costs tens of microseconds per byte and
recurses on nested comments: each originator field is capped at
:data:`MAX_ADDRESS_FIELD_BYTES` before it is parsed, the parse runs once per message
(:attr:`mailsvc.message.InboundMessage.originator`, computed off the event loop) and any
parser failure is a definite refusal, never an internal error.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email import errors
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader, BaseHeader
from functools import lru_cache

# RFC 5322 allows 998 octets per line; one mailbox with a display name fits in far less.
MAX_ADDRESS_FIELD_BYTES = 2048
# Distinct originator fields whose parse is kept (at most 2 KB each: about 1 MB).
_PARSED_FIELDS = 512

ORIGINATOR_FIELDS = ("from", "sender", "reply-to", "resent-from", "resent-sender")
# Fields that may appear once per resent block, so several times in one header section
_RESENT_FIELDS = ("resent-from", "resent-sender")

_NAME = re.compile(rb"[!-9;-~]+")
# C0 controls except HT, and DEL; CR and LF are handled as line ends (bare CR refused).
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BARE_CR = re.compile(rb"\r(?!\n)")
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_ADDR_SPEC = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class Mailbox:
    display_name: str
    addr_spec: str  # as written (compare lower-cased)
    # The field's comments, decoded: Python's parser drops them, but IMAP's ENVELOPE
    # (Dovecot) and mail clients show "a@b (Name)" with the comment as the name.
    comments: str = ""
    # The address's domain as the parser read it ("" when it has none): DMARC's From
    # domain (a quoted local part may hold an "@", so addr_spec cannot be split for it)
    domain: str = ""

    @property
    def shown_name(self) -> str:
        """What a reader may be shown as this mailbox's name: display name and comments."""
        return f"{self.display_name} {self.comments}".strip()


@dataclass(frozen=True)
class HeaderProblem:
    """Why the header section is refused: ``reason`` is a stable code (findings, replies)."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Originator:
    from_: tuple[Mailbox, ...] = ()
    sender: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    problem: HeaderProblem | None = None
    # every Resent-From:/Resent-Sender: mailbox, all resent blocks together; a field that
    # cannot be read is ``resent_problem`` (refused on submission; incoming mail is not
    # judged by these fields, which readers seldom show)
    resent_from: tuple[Mailbox, ...] = ()
    resent_sender: tuple[Mailbox, ...] = ()
    resent_problem: HeaderProblem | None = None

    @property
    def from_address(self) -> str:
        """The From: mailbox's address, lower-cased ("" when there is none)."""
        return self.from_[0].addr_spec.lower() if self.from_ else ""


def read_originator(raw: bytes, max_field_bytes: int = MAX_ADDRESS_FIELD_BYTES) -> Originator:
    """Scan the top-level header section of ``raw`` and parse its originator fields.

    Linear in the size of the header section; the ``email`` parser only ever sees
    fields of at most ``max_field_bytes``.
    """
    match = _END_OF_HEAD.search(raw)
    head = raw[: match.start()] if match else raw
    fields, problem = _scan(head)
    if problem is not None:
        return Originator(problem=problem)
    found: dict[str, list[bytes]] = {}
    for name, value in fields:
        if name in ORIGINATOR_FIELDS:
            found.setdefault(name, []).append(value)
    froms = found.get("from", [])
    if len(froms) != 1:
        return Originator(
            problem=HeaderProblem("from-count", f"{len(froms)} From: fields, exactly one allowed")
        )
    for name in ("sender", "reply-to"):
        if len(found.get(name, [])) > 1:
            return Originator(
                problem=HeaderProblem("originator-repeated", f"{name} appears more than once")
            )
    parsed: dict[str, tuple[Mailbox, ...]] = {}
    resent_problem: HeaderProblem | None = None
    for name, values in found.items():
        if name in _RESENT_FIELDS:
            for value in values:
                mailboxes, problem = _parse_field(name, value, max_field_bytes)
                resent_problem = resent_problem or problem
                parsed[name] = parsed.get(name, ()) + mailboxes
            continue
        mailboxes, problem = _parse_field(name, values[0], max_field_bytes)
        if problem is not None:
            return Originator(problem=problem)
        parsed[name] = mailboxes
    result = Originator(
        from_=parsed.get("from", ()),
        sender=parsed.get("sender", ()),
        reply_to=parsed.get("reply-to", ()),
        resent_from=parsed.get("resent-from", ()),
        resent_sender=parsed.get("resent-sender", ()),
        resent_problem=resent_problem,
    )
    if len(result.from_) != 1:
        problem = HeaderProblem(
            "from-mailbox-count", f"From: names {len(result.from_)} mailboxes, exactly one allowed"
        )
    elif "sender" in parsed and len(result.sender) != 1:
        problem = HeaderProblem("from-mailbox-count", "Sender: must name exactly one mailbox")
    if problem is not None:
        return Originator(result.from_, result.sender, result.reply_to, problem)
    return result


def _scan(head: bytes) -> tuple[list[tuple[str, bytes]], HeaderProblem | None]:
    """The fields of a header section (lower-cased name, unfolded raw value), or the
    first construct that readers interpret differently."""
    bad = _CONTROL.search(head) or _BARE_CR.search(head)
    if bad is not None:
        return [], HeaderProblem(
            "header-control-character",
            f"control character 0x{head[bad.start()]:02x} at offset {bad.start()}",
        )
    fields: list[tuple[str, bytes]] = []
    for number, line in enumerate(head.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line:  # the end of a section that has no body
            continue
        if line[:1] in (b" ", b"\t"):
            if not fields:
                return [], HeaderProblem(
                    "header-field-malformed", "the header section starts with a continuation"
                )
            field, value = fields[-1]
            fields[-1] = (field, value + line)
            continue
        name = _NAME.match(line)
        rest = line[name.end() :] if name else line
        if name is None or not rest.startswith(b":"):
            if name is not None and rest.lstrip(b" \t").startswith(b":"):
                return [], HeaderProblem(
                    "header-name-whitespace",
                    f"line {number}: white space between a field name and its colon",
                )
            return [], HeaderProblem("header-field-malformed", f"line {number}: not a header field")
        fields.append((name.group().decode("ascii").lower(), rest[1:]))
    return fields, None


def _parse_field(
    name: str, value: bytes, max_bytes: int
) -> tuple[tuple[Mailbox, ...], HeaderProblem | None]:
    """The mailboxes of one originator field, or why it is refused."""
    if len(value) > max_bytes:
        return (), HeaderProblem(
            "address-header-too-large", f"{name}: {len(value)} bytes, at most {max_bytes}"
        )
    return _parse_capped(name, value)


@lru_cache(maxsize=_PARSED_FIELDS)
def _parse_capped(name: str, value: bytes) -> tuple[tuple[Mailbox, ...], HeaderProblem | None]:
    """:func:`_parse_field` of a field within the cap. A pure function of its arguments
    over immutable results: the last few distinct fields are kept (an agency's From:
    recurs from message to message), for the email package's address parser costs some
    100 µs a field; a sender varying the field only turns the cache over, and a field
    over the cap is refused before it could be kept (at most 512 × 2 KB)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return (), HeaderProblem("address-header-unparsable", f"{name}: not valid UTF-8")
    try:
        header = email.policy.default.header_factory(name, text.strip())
        assert isinstance(header, BaseHeader) and isinstance(header, AddressHeader)
        groups = header.groups
        invalid = [d for d in header.defects if isinstance(d, errors.InvalidHeaderDefect)]
        comments = _comments(text)
        mailboxes = tuple(
            Mailbox(str(a.display_name), str(a.addr_spec), comments, str(a.domain))
            for g in groups
            for a in g.addresses
        )
    # The email package's address parser raises whatever its recursion meets on
    # hostile input (nested comments, unterminated groups): all mean "cannot parse".
    except (RecursionError, AttributeError, IndexError, ValueError, TypeError, KeyError) as exc:
        return (), HeaderProblem("address-header-unparsable", f"{name}: {type(exc).__name__}")
    if invalid:  # "A <a@b", "A <a@b> trailing": each reader repairs it its own way
        return (), HeaderProblem("address-header-unparsable", f"{name}: {invalid[0]}")
    if name in ("from", "sender") and any(g.display_name is not None for g in groups):
        return (), HeaderProblem("address-header-unparsable", f"{name}: group syntax")
    if any(not _ADDR_SPEC.match(m.addr_spec) for m in mailboxes):
        return (), HeaderProblem("address-header-unparsable", f"{name}: not an address")
    return mailboxes, None


def _comments(value: str) -> str:
    """The text of every comment in an address field (RFC 5322 3.2.2: parenthesised,
    nested, outside quoted strings and angle brackets' addresses), encoded words decoded,
    joined by spaces. The field is already capped in size."""
    found: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth:
                current.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            continue
        if quoted:
            quoted = char != '"'
            continue
        if char == '"' and not depth:
            quoted = True
        elif char == "(":
            if depth:
                current.append(" ")
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if not depth:
                found.append("".join(current))
                current = []
            else:
                current.append(" ")
        elif depth:
            current.append(char)
    if current:  # unterminated: the parser has refused or repaired it; read it anyway
        found.append("".join(current))
    text = " ".join(" ".join(found).split())
    if "=?" in text:
        try:
            text = str(make_header(decode_header(text)))
        except (HeaderParseError, UnicodeDecodeError, LookupError, ValueError):
            pass  # shown as written
    return text
