"""dkimpy's slow parts done faster, with the same results: the RSA signature (OpenSSL
through ``cryptography`` instead of Python's ``pow``), the relaxed body canonicalization's
whitespace passes and the message split, when there is nothing for them to change.

Each replaces a function that dkimpy calls by its module-level name, and only for the
release it was checked against (:data:`CHECKED_RELEASES`; tests/outbound/test_dkim_speedups.py
compares each with dkimpy's own there); any other release keeps its own functions.
Measured on this machine: signing a 2 KB receipt took 7.3 ms of CPU (6 of them the two
``pow`` calls of the private-key operation), a 307 KB message with a signed 200 KB PDF
16.8 ms (6 more in the canonicalization's regular expressions over the body, 2.8 in
splitting the whole message into lines to find the header fields).

**The signature** (:func:`rsa_sign`). RSASSA-PKCS1-v1_5 is deterministic: OpenSSL's
signature of the same digest with the same key is the same bytes as dkimpy's. The key is
dkimpy's parsed form (a dict of the RSA numbers); the ``cryptography`` key made from it is
kept per set of numbers (a signer has one or a few). A digest other than SHA-256 or SHA-1 goes to
dkimpy's own function.

**The whitespace passes.** ``strip_trailing_whitespace`` replaces ``[\\t ]+\\r\\n``: it can
change the text only if a space or tab stands right before a CRLF; ``compress_whitespace``
replaces ``[\\t ]+`` by one space: only if the text has a tab or two spaces in a row. Body
text in base64 or quoted-printable (every document's attachment) has neither, so the
regular expression's walk over every byte is skipped; otherwise dkimpy's own runs.

**The split** (:func:`rfc822_parse`). dkimpy splits the whole message on ``\\r?\\n`` and
joins the body's lines again with CRLF. When the message has no bare LF (every LF is
part of a CRLF, which is what SMTP delivers) and has a blank line after at least one
header line, the body is exactly the bytes after that blank line, and only the header
block needs dkimpy's loop, which this gives it; anything else goes to dkimpy's own.
"""

from __future__ import annotations

import logging
from typing import Any

import dkim
import dkim.canonicalization as canonicalization
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from mailsvc.checked_releases import releases_checked

log = logging.getLogger(__name__)

CHECKED_RELEASES = {"dkimpy": frozenset({"1.1.8"})}

_DKIM_SIGN = dkim.RSASSA_PKCS1_v1_5_sign
_DKIM_PARSE = dkim.rfc822_parse
_DKIM_STRIP = canonicalization.strip_trailing_whitespace
_DKIM_COMPRESS = canonicalization.compress_whitespace

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_KEYS: dict[tuple[int, ...], rsa.RSAPrivateKey] = {}
_KEYS_KEPT = 16
_NUMBERS = (
    "modulus",
    "publicExponent",
    "privateExponent",
    "prime1",
    "prime2",
    "exponent1",
    "exponent2",
    "coefficient",
)


def _private_key(numbers: dict[str, int]) -> rsa.RSAPrivateKey:
    index = tuple(numbers[name] for name in _NUMBERS)  # every number: a key is all of them
    key = _KEYS.get(index)
    if key is None:
        key = rsa.RSAPrivateNumbers(
            p=numbers["prime1"],
            q=numbers["prime2"],
            d=numbers["privateExponent"],
            dmp1=numbers["exponent1"],
            dmq1=numbers["exponent2"],
            iqmp=numbers["coefficient"],
            public_numbers=rsa.RSAPublicNumbers(e=numbers["publicExponent"], n=numbers["modulus"]),
        ).private_key()
        if len(_KEYS) >= _KEYS_KEPT:
            _KEYS.clear()
        _KEYS[index] = key
    return key


def rsa_sign(hash: Any, private_key: dict[str, int]) -> bytes:
    """RSASSA-PKCS1-v1_5 over a finished hash object, as ``dkim.crypto``'s, by OpenSSL."""
    algorithm = _DIGESTS.get(str(hash.name).lower())
    if algorithm is None:
        result: bytes = _DKIM_SIGN(hash, private_key)
        return result
    try:
        key = _private_key(private_key)
    except (ValueError, KeyError, TypeError):
        # numbers OpenSSL will not take: dkimpy's own function says what is wrong with them
        result = _DKIM_SIGN(hash, private_key)
        return result
    return key.sign(hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm()))


def strip_trailing_whitespace(content: bytes) -> bytes:
    if b" \r\n" not in content and b"\t\r\n" not in content:
        return content
    result: bytes = _DKIM_STRIP(content)
    return result


def compress_whitespace(content: bytes) -> bytes:
    if b"\t" not in content and b"  " not in content:
        return content
    result: bytes = _DKIM_COMPRESS(content)
    return result


def rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse``: the header fields and the CRLF-separated body."""
    end = message.find(b"\r\n\r\n")
    if end <= 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
        parsed: tuple[list[list[bytes]], bytes] = _DKIM_PARSE(message)
        return parsed
    headers, _ = _DKIM_PARSE(message[: end + 4])
    return headers, message[end + 4 :]


def install() -> bool:
    """Put them in dkimpy's place; True when installed (a checked release), False when
    dkimpy keeps its own functions."""
    if dkim.RSASSA_PKCS1_v1_5_sign is rsa_sign:
        return True
    if not releases_checked(CHECKED_RELEASES, log):
        return False
    dkim.RSASSA_PKCS1_v1_5_sign = rsa_sign
    dkim.rfc822_parse = rfc822_parse
    canonicalization.strip_trailing_whitespace = strip_trailing_whitespace
    canonicalization.compress_whitespace = compress_whitespace
    return True


def uninstall() -> None:
    """dkimpy's own functions again (the tests compare the two)."""
    dkim.RSASSA_PKCS1_v1_5_sign = _DKIM_SIGN
    dkim.rfc822_parse = _DKIM_PARSE
    canonicalization.strip_trailing_whitespace = _DKIM_STRIP
    canonicalization.compress_whitespace = _DKIM_COMPRESS
