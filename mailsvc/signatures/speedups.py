"""Inner loops of signature validation done faster, with the same results: PDF hex strings
and the signer look-up (pyHanko), certificate names (asn1crypto).

Each replaces a function that its library calls by name, and only for the releases it was
checked against (:data:`CHECKED_RELEASES`: the differential tests in
tests/signatures/test_speedups.py compare each with the library's own there); any other
release keeps its own functions. Measured on the register's signed 200 KB documents (two
signatures each), a validation fell from 24.2 to 14.0 ms with the first, by about 1.2 ms
more with the second and 2 ms more with the name preparation, and by a tenth more with
the names' comparisons.

**Hex strings** (:func:`read_hex_string`). pyHanko 0.38 reads ``<…>`` one byte at a time
through Python calls (``read_non_whitespace``, then a generator per digit). A signature
dictionary's ``/Contents`` is a hex string of the whole CMS container, often 10 to 30
thousand digits, and a validation reads each one several times (the signature fields,
then each revision the difference analysis looks at). This reader does the same work with
the bytes' own methods on the reader's in-memory buffer: find the first ``>``, drop PDF
whitespace, check that only hex digits are left, decode. Whenever the string is anything
but that plain case (a comment inside, which may hide a ``>``; a byte that is not a hex
digit; no ``>``; a stream that is not a ``BytesIO``), it hands the stream back to pyHanko's
own reader untouched, so every error pyHanko raises for a malformed string is still raised
by pyHanko, word for word.

**Signer look-up** (:func:`match_issuer_serial`). To find the signer's certificate among
those a signature carries (and to check the ESS signing-certificate attribute), pyHanko
compares the expected issuer name with each certificate's, then the serial numbers. When
the two issuers are not encoded byte for byte alike, the name comparison runs RFC 5280's
string preparation over every attribute in Python: the most expensive part of the
look-up, and spent mostly on certificates whose serial number already says no. The result
is the conjunction of the two comparisons, so the serial numbers are compared first here
(two DER integers' bytes) and pyHanko's function decides whenever they are equal, or when
they cannot be read.

**Name preparation** (:func:`_cached_string_prep`). Comparing and indexing certificate
names (the signer look-up above when it runs, the ESS attribute's issuer, the path
builder's registry) passes every attribute value through asn1crypto's
``NameTypeAndValue._ldap_string_prep``: a dozen regular expressions, a character map,
NFKC and the stringprep tables, in Python, recomputed for each certificate parsed from
each signature. It is a function of the string alone, and the same few CA and agency names
come back on every document, so its results are kept (the last 4,096 strings; a value that
is not a string, and every error, goes to asn1crypto's own each time).

**Name comparison and hashing** (:func:`_name_equal`, :func:`_name_hashable`). Even with
the prepared strings kept, comparing two names (``Name.__eq__``: the CRL's issuer, the ESS
attribute's issuer, whose ``[4]`` tag keeps pyHanko's byte-for-byte shortcut from ever
applying) or turning one into a dictionary key (``Name.hashable``: the path builder's
registry) walks asn1crypto's objects attribute by attribute. Both are functions of the
names' DER encodings alone, so their results are kept by encoding (the last 4,096; an
error is raised again each time, by asn1crypto's own code).
"""

from __future__ import annotations

import binascii
import io
import logging
import re
from functools import lru_cache
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PDF_WHITESPACE
from pyhanko.sign import general

from mailsvc.checked_releases import releases_checked

log = logging.getLogger(__name__)

CHECKED_RELEASES = {"pyhanko": frozenset({"0.38.0"}), "asn1crypto": frozenset({"1.5.1"})}

_PYHANKO_READER = generic.read_hex_string_from_stream
_PYHANKO_MATCH = general.match_issuer_serial
_ASN1_STRING_PREP = asn1_x509.NameTypeAndValue._ldap_string_prep
_ASN1_NAME_EQ = asn1_x509.Name.__eq__
_ASN1_NAME_HASHABLE = asn1_x509.Name.hashable
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]*")


def read_hex_string(stream: Any) -> generic.ByteStringObject | generic.TextStringObject:
    """Read ``<hex digits>`` at the stream's position (as pyHanko's reader does: the
    first byte is taken to be ``<``); the stream is left just after ``>``."""
    if type(stream) is not io.BytesIO:
        return _PYHANKO_READER(stream)
    start = stream.tell()
    data = stream.getvalue()  # the buffer itself, not a copy, for a BytesIO made from bytes
    end = data.find(b">", start + 1)
    if end == -1:
        return _PYHANKO_READER(stream)
    digits = data[start + 1 : end].translate(None, PDF_WHITESPACE)
    if not _HEX_DIGITS.fullmatch(digits):  # a comment (%), a stray byte: pyHanko's turn
        return _PYHANKO_READER(stream)
    if len(digits) % 2:
        digits += b"0"  # PDF: a missing last digit is 0
    stream.seek(end + 1)
    return generic.pdf_string(binascii.unhexlify(digits))


def match_issuer_serial(expected_issuer_serial: Any, cert: Any) -> bool:
    """pyHanko's ``match_issuer_serial``, the serial numbers compared first."""
    try:
        differ = not (
            expected_issuer_serial["serial_number"] == cert["tbs_certificate"]["serial_number"]
        )
    except Exception:  # unreadable: pyHanko's function decides, as it would have
        differ = False
    if differ:
        return False
    return bool(_PYHANKO_MATCH(expected_issuer_serial, cert))


@lru_cache(maxsize=4096)
def _prepared(string: str) -> Any:
    return _ASN1_STRING_PREP(None, string)


def _cached_string_prep(self: Any, string: Any) -> Any:
    """asn1crypto's ``NameTypeAndValue._ldap_string_prep``, its results kept by string."""
    if type(string) is not str:
        return _ASN1_STRING_PREP(self, string)
    return _prepared(string)


@lru_cache(maxsize=4096)
def _sequences_equal(first: bytes, second: bytes) -> bool:
    return bool(asn1_x509.RDNSequence.load(first) == asn1_x509.RDNSequence.load(second))


@lru_cache(maxsize=4096)
def _sequence_hashable(encoded: bytes) -> Any:
    return asn1_x509.RDNSequence.load(encoded).hashable


def _name_equal(self: Any, other: Any) -> Any:
    """asn1crypto's ``Name.__eq__``, its answers kept by the two names' encodings."""
    if not isinstance(other, asn1_x509.Name):
        return False
    return _sequences_equal(self.chosen.dump(), other.chosen.dump())


def _name_hashable(self: Any) -> Any:
    """asn1crypto's ``Name.hashable``, kept by the name's encoding."""
    return _sequence_hashable(self.chosen.dump())


def install() -> bool:
    """Put them in their libraries' place; True when installed (both libraries are
    checked releases), False when the libraries keep their own functions."""
    if generic.read_hex_string_from_stream is read_hex_string:
        return True
    if not releases_checked(CHECKED_RELEASES, log):
        return False
    generic.read_hex_string_from_stream = read_hex_string
    general.match_issuer_serial = match_issuer_serial
    asn1_x509.NameTypeAndValue._ldap_string_prep = _cached_string_prep
    asn1_x509.Name.__eq__ = _name_equal
    asn1_x509.Name.hashable = property(_name_hashable)
    return True


def uninstall() -> None:
    """The libraries' own functions again (the tests compare the two)."""
    generic.read_hex_string_from_stream = _PYHANKO_READER
    general.match_issuer_serial = _PYHANKO_MATCH
    asn1_x509.NameTypeAndValue._ldap_string_prep = _ASN1_STRING_PREP
    asn1_x509.Name.__eq__ = _ASN1_NAME_EQ
    asn1_x509.Name.hashable = _ASN1_NAME_HASHABLE
