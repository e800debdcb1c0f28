"""A faster reader for PDF hex strings (``<…>``) under pyHanko: same result, whole string at once.

pyHanko 0.38 reads a hex string one byte at a time through Python calls
(``read_non_whitespace``, then a generator per digit). A signature dictionary's
``/Contents`` is a hex string of the whole CMS container, often 10 to 30 thousand digits,
and the validation reads each one several times (the signature fields, then each revision
the difference analysis looks at): on the register's signed 200 KB documents that loop
was two fifths of a validation's CPU time (24 → 14 ms per document with this reader).

:func:`read_hex_string` does the same work with the bytes' own methods on the reader's
in-memory buffer: find the first ``>``, drop PDF whitespace, check that only hex digits
are left, decode. Whenever the string is anything but that plain case (a comment inside,
which may hide a ``>``; a byte that is not a hex digit; no ``>``; a stream that is not a
``BytesIO``), it hands the stream back to pyHanko's own reader untouched, so every error
pyHanko raises for a malformed string is still raised by pyHanko, word for word.

:func:`install` puts it in place of ``pyhanko.pdf_utils.generic.read_hex_string_from_stream``
(the name ``read_object`` calls) only for the pyHanko releases it was checked against
(:data:`CHECKED_RELEASES`: the differential test in tests/signatures/test_pdfhex.py compares
the two readers there); any other release keeps its own reader.
"""

from __future__ import annotations

import binascii
import io
import logging
import re
from importlib.metadata import version
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PDF_WHITESPACE

log = logging.getLogger(__name__)

CHECKED_RELEASES = frozenset({"0.38.0"})

_PYHANKO_READER = generic.read_hex_string_from_stream
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


def install() -> bool:
    """Use :func:`read_hex_string` for pyHanko's hex strings; True when installed (the
    installed pyHanko is a checked release), False when pyHanko keeps its own."""
    if generic.read_hex_string_from_stream is read_hex_string:
        return True
    release = version("pyhanko")
    if release not in CHECKED_RELEASES:
        log.info("pyHanko %s: its own hex-string reader is used (not checked)", release)
        return False
    generic.read_hex_string_from_stream = read_hex_string
    return True
