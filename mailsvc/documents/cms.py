"""What a CMS file encloses: opaque S/MIME (``application/pkcs7-mime``), ``x.pdf.p7m``;
whether an OpenPGP message is encrypted, and what a signed or compressed one encloses.

A signed CMS with its content inside (S/MIME ``smime-type=signed-data``, enveloping
``.p7m``) or a compressed one (RFC 3274) carries the document in a DER structure: neither
clamd nor the text checks see it in the message as sent, but every mail client and
``.p7m`` viewer opens it. The content checks therefore read what the CMS encloses
(:func:`open_cms`); an encrypted CMS (enveloped data), whose content nobody here can
read, is reported as such so that the checks fail closed.

Recognised by content, not by name or declared type: a ``.p7m`` renamed ``.bin`` and sent
as ``application/octet-stream`` is opened all the same.
"""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from asn1crypto import cms

from mailsvc.documents.formats import CORRUPT, TOO_LARGE, UnreadableDocument

# ContentInfo's content type, as DER near the start: the PKCS #7 arc 1.2.840.113549.1.7
# (data, signed, enveloped, digested, encrypted) and the S/MIME content types of
# 1.2.840.113549.1.9.16.1 (compressed data .9, authenticated-enveloped data .23).
_PKCS7_ARC = bytes.fromhex("06092a864886f70d0107")
_SMIME_ARC = bytes.fromhex("060b2a864886f70d01091001")
_PEM = re.compile(rb"^\s*-----BEGIN (?:PKCS7|CMS)-----\s*$(.*?)^-----END", re.M | re.S)

SIGNED = "signed"  # signed data with its content inside: ``content`` is that content
COMPRESSED = "compressed"  # compressed data: ``content`` is the decompressed content
ENCRYPTED = "encrypted"  # enveloped / encrypted data: the content cannot be read here
DETACHED = "detached"  # signed data without content (a .p7s signature): nothing inside
OTHER = "other"  # another CMS type (data, digested, authenticated data)

_ENCRYPTED_TYPES = frozenset(
    {"enveloped_data", "encrypted_data", "authenticated_enveloped_data", "authenticated_data"}
)


@dataclass(frozen=True)
class Enclosure:
    kind: str  # SIGNED, COMPRESSED, ENCRYPTED, DETACHED or OTHER
    content: bytes = b""
    content_type: str = ""  # the CMS content type's name (asn1crypto's), for reports


def _der(data: bytes) -> bytes | None:
    if data[:1] == b"\x30":
        return data
    head = data[:64].lstrip()
    if head.startswith((b"-----BEGIN PKCS7-----", b"-----BEGIN CMS-----")):
        m = _PEM.match(data)
        if m is not None:
            try:
                return base64.b64decode(b"".join(m.group(1).split()), validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


def is_cms(data: bytes) -> bool:
    """True when ``data`` starts like a CMS ContentInfo (DER, or PEM ``PKCS7``/``CMS``)."""
    der = _der(data)
    if der is None:
        return False
    head = der[:32]
    return _PKCS7_ARC in head or _SMIME_ARC in head


def open_cms(data: bytes, max_bytes: int) -> Enclosure:
    """What the CMS in ``data`` encloses. Raises :class:`UnreadableDocument` (``corrupt``)
    when it is not a CMS that can be parsed, (``too-large``) when its content or the
    decompressed content exceeds ``max_bytes``."""
    der = _der(data)
    if der is None:
        raise UnreadableDocument(CORRUPT, "not a CMS structure")
    try:
        info = cms.ContentInfo.load(der)
        kind = str(info["content_type"].native)
        if kind == "signed_data":
            content = info["content"]["encap_content_info"]["content"]
            value = content.native if content is not None else None
            if value is None:
                return Enclosure(DETACHED, content_type=kind)
            return Enclosure(SIGNED, _bounded(bytes(value), max_bytes), kind)
        if kind == "compressed_data":
            compressed = info["content"]["encap_content_info"]["content"].native
            if compressed is None:
                raise UnreadableDocument(CORRUPT, "compressed CMS without content")
            return Enclosure(COMPRESSED, _inflate(bytes(compressed), max_bytes), kind)
        if kind in _ENCRYPTED_TYPES:
            return Enclosure(ENCRYPTED, content_type=kind)
        return Enclosure(OTHER, content_type=kind)
    except UnreadableDocument:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        # asn1crypto's errors on hostile DER (lazy parsing: raised on first access)
        raise UnreadableDocument(CORRUPT, f"CMS structure cannot be parsed: {exc}") from exc


def _bounded(content: bytes, max_bytes: int) -> bytes:
    if len(content) > max_bytes:
        raise UnreadableDocument(TOO_LARGE, f"CMS content of {len(content)} bytes")
    return content


def _inflate(data: bytes, max_bytes: int) -> bytes:
    """zlib (RFC 3274's only algorithm), stopped past ``max_bytes``: no bomb gets through."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise UnreadableDocument(CORRUPT, f"compressed CMS content: {exc}") from exc
    if len(out) > max_bytes:
        raise UnreadableDocument(TOO_LARGE, f"compressed CMS content over {max_bytes} bytes")
    return out


_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def is_mime_entity(content: bytes) -> bool:
    """True when ``content`` starts with a header field (``Content-Type: ...``): the
    content of S/MIME is a MIME entity (RFC 8551 §3.1), a ``.p7m``'s is a file."""
    return _HEADER_LINE.match(content[:1000].lstrip(b"\r\n")) is not None


# OpenPGP packet tags (RFC 9580 §5) that start an encrypted message: public-key and
# symmetric-key encrypted session keys, symmetrically encrypted (integrity protected) data.
_PGP_ENCRYPTED_TAGS = frozenset({1, 3, 9, 18, 20})
_PGP_ARMOR = re.compile(
    rb"-----BEGIN PGP MESSAGE-----\r?\n(?:[^\r\n]+:[^\r\n]*\r?\n)*\r?\n([A-Za-z0-9+/=\r\n]*)"
)


def _pgp_first_tag(packets: bytes) -> int | None:
    if not packets or not packets[0] & 0x80:
        return None
    head = packets[0]
    return head & 0x3F if head & 0x40 else (head >> 2) & 0x0F


# Public-key algorithms that encrypt (RFC 9580 §9.1: RSA, RSA encrypt-only, Elgamal,
# ECDH, X25519, X448), symmetric ciphers (§9.3: IDEA to Camellia-256) and S2K specifier
# types (§3.7.1: simple, salted, iterated and salted, Argon2).
_PGP_PUBLIC_KEY_ENCRYPTION = frozenset({1, 2, 16, 18, 25, 26})
_PGP_CIPHERS = frozenset({1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13})
_PGP_S2K_TYPES = frozenset({0, 1, 3, 4})


def _starts_encrypted(data: bytes) -> bool:
    """Whether binary ``data`` starts with the first packet of an encrypted message, by
    the packet's own fields (what ``gpg --encrypt`` and ``gpg --symmetric`` write first:
    a public-key or symmetric-key encrypted session key, or encrypted data), so that an
    encrypted file is known without its ``.gpg`` name and another file is not taken for
    one (a header byte alone matches one file in 50)."""
    first = _pgp_first_packet(data, 12)
    if first is None:
        return False
    tag, body = first
    version = body[0]
    if tag == 1:  # §5.1: v3 with an 8-octet key ID then the algorithm; v6 with a length
        if version == 3:
            return len(body) >= 10 and body[9] in _PGP_PUBLIC_KEY_ENCRYPTION
        return version == 6 and len(body) >= 3 and (body[1] == 0 or body[2] in (4, 6))
    if tag == 3:  # §5.3: v4 cipher then S2K type; v5 cipher; v6 a count, then cipher
        if version == 4:
            return len(body) >= 3 and body[1] in _PGP_CIPHERS and body[2] in _PGP_S2K_TYPES
        if version == 5:
            return len(body) >= 2 and body[1] in _PGP_CIPHERS
        return version == 6 and len(body) >= 3 and body[2] in _PGP_CIPHERS
    if tag == 18:  # §5.13: integrity-protected data, version 1 or 2 (v2: a cipher next)
        return version == 1 or (version == 2 and len(body) >= 2 and body[1] in _PGP_CIPHERS)
    return tag == 20 and version == 1  # LibrePGP's OCB-encrypted data


def is_encrypted_pgp(data: bytes, filename: str | None) -> bool:
    """True for an OpenPGP message that is encrypted: ASCII-armoured (``BEGIN PGP
    MESSAGE``, found by content), binary with an OpenPGP file name (``.gpg``/``.pgp``)
    whose first packet is an encrypted session key or encrypted data, or binary under
    any name when that first packet's fields say so (``_starts_encrypted``). Signed-only
    and compressed messages are not (their content is not read here either)."""
    if b"-----BEGIN PGP MESSAGE-----" in data[:4096]:
        m = _PGP_ARMOR.search(data[:65536])
        if m is None:
            return False
        body = b"".join(line for line in m.group(1).split() if not line.startswith(b"="))
        chunk = body[:64]
        try:
            packets = base64.b64decode(chunk[: len(chunk) - len(chunk) % 4])
        except (binascii.Error, ValueError):
            return False
        return _pgp_first_tag(packets) in _PGP_ENCRYPTED_TAGS
    if filename and filename.lower().endswith((".gpg", ".pgp")):
        return _pgp_first_tag(data[:1]) in _PGP_ENCRYPTED_TAGS
    return _starts_encrypted(data)


# First packets of an OpenPGP message that is not encrypted: a signature, a one-pass
# signature, compressed data or literal data (RFC 9580 §5: tags 2, 4, 8, 11).
_PGP_PLAIN_TAGS = frozenset({2, 4, 8, 11})
_PGP_TIMEOUT = 20.0
# Batch mode with no terminal, no agent started and no key fetched: nothing but reading.
_GPG_OPTIONS = (
    *("--batch", "--no-tty", "--quiet", "--no-autostart", "--no-auto-key-retrieve"),
    *("--status-fd", "2"),
)
_PLAINTEXT = re.compile(rb"^\[GNUPG:\] PLAINTEXT [0-9a-f]+ \d+ ?([^\r\n]*)$", re.M)


def is_plain_pgp(data: bytes) -> bool:
    """True for an OpenPGP message that is signed or compressed but not encrypted: its
    content is inside, readable by anyone with gpg (``gpg --decrypt`` shows it without
    the signer's key, and mail clients show an inline one decoded), while the message
    as sent shows only packets. ASCII armour (``BEGIN PGP MESSAGE``) or binary packets,
    by content."""
    if b"-----BEGIN PGP MESSAGE-----" in data[:4096]:
        return not is_encrypted_pgp(data, None) and _PGP_ARMOR.search(data[:65536]) is not None
    first = _pgp_first_packet(data)
    if first is None:
        return False
    tag, body = first
    # The packet's first byte must be what the tag says (a PNG starts 0x89 like a
    # signature packet's header, but its "version" would be 'G').
    return body in _PGP_FIRST_BYTES.get(tag, b"")


# What the body of each such packet starts with: a signature's or a one-pass signature's
# version, a compression algorithm (none, ZIP, ZLIB, BZip2), a literal data format.
_PGP_FIRST_BYTES = {2: b"\x03\x04\x05\x06", 4: b"\x03\x06", 8: b"\x00\x01\x02\x03", 11: b"btu~lm1"}


def _pgp_first_packet(data: bytes, size: int = 1) -> tuple[int, bytes] | None:
    """The first packet's tag and the first ``size`` bytes of its body (RFC 9580 §4.2:
    old and new packet headers; fewer when the body is shorter), or None when ``data``
    does not start with a packet header whose definite length fits in ``data``."""
    if len(data) < 3 or not data[0] & 0x80:
        return None
    if data[0] & 0x40:  # new format: the tag in six bits, then one, two or five length octets
        tag, first = data[0] & 0x3F, data[1]
        if first < 192:
            start, length = 2, first
        elif first < 224:
            start, length = 3, ((first - 192) << 8) + data[2] + 192
        elif first == 255:
            start, length = 6, int.from_bytes(data[2:6], "big")
        else:  # a partial body length: at least 1 << (first & 0x1F) bytes follow
            start, length = 2, 1
    else:  # old format: four bits of tag, two of length type
        tag, kind = (data[0] >> 2) & 0x0F, data[0] & 0x03
        start = (2, 3, 5, 1)[kind]
        length = int.from_bytes(data[1:start], "big") if kind < 3 else 1
    if length < 1 or start + length > len(data):
        return None
    return tag, data[start : start + min(size, length)]


def open_pgp(data: bytes, max_bytes: int) -> tuple[bytes, str]:
    """The content an OpenPGP signed or compressed message encloses, and the file name
    its literal packet carries ("" if none), by gpg (a throw-away home, no keys, no agent:
    the signature is not checked here, the signature stage does that). Raises
    :class:`UnreadableDocument`: ``corrupt`` when gpg finds no content, ``too-large``
    past ``max_bytes`` (gpg stops writing there; a compression bomb is not inflated)."""
    with tempfile.TemporaryDirectory(prefix="mailsvc-pgp-") as home:
        try:
            limit = ("--max-output", str(max_bytes + 1))
            done = subprocess.run(
                ["gpg", "--homedir", home, *_GPG_OPTIONS, *limit, "--output", "-", "--decrypt"],
                input=data,
                capture_output=True,
                timeout=_PGP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise UnreadableDocument(TOO_LARGE, "OpenPGP content not read in time") from exc
    if b"[GNUPG:] DECRYPTION_FAILED" in done.stderr or b"BEGIN_DECRYPTION" in done.stderr:
        raise UnreadableDocument(ENCRYPTED, "encrypted OpenPGP message")  # formats.ENCRYPTED
    if len(done.stdout) > max_bytes or b"exceeded --max-output" in done.stderr:
        raise UnreadableDocument(TOO_LARGE, f"OpenPGP content over {max_bytes} bytes")
    found = _PLAINTEXT.search(done.stderr)
    if found is None:
        raise UnreadableDocument(CORRUPT, "no OpenPGP literal data")
    name = unquote_to_bytes(found.group(1).strip()).decode("utf-8", "replace")
    return done.stdout, name
