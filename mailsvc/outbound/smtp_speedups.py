"""aiosmtplib's two passes over every message it sends, skipped when they would change
nothing, with the same results.

``SMTP.sendmail`` runs ``normalize_message_line_endings`` (a regular expression of three
alternatives tried at every byte: a lone CR or LF becomes CRLF) once to count the
message's size for the SIZE extension, then ``execute_data_command`` runs it again and
dot-stuffs with a second expression (``(?m)^\\.``). Our messages leave the queue with CRLF
line endings already, and a line starting with a dot is rare: in the outbound bench's
service process the passes were 8 % of the samples holding the GIL (0.4 ms of CPU for
a 35 KB message, 3.1 ms for a 300 KB one, measured alone).

**Line endings** (:func:`normalize_message_line_endings`): when every CR and every LF of
the message belongs to a CRLF (three counts, at C speed), the expression would change
nothing, so only the final CRLF is added if missing; anything else goes to aiosmtplib's
own function.

**Dot-stuffing** (:class:`PeriodStuffing`): ``(?m)^\\.`` matches a dot at the start of the
message or right after an LF; when the message neither starts with a dot nor holds
``\\n.``, there is nothing to double; otherwise aiosmtplib's own expression runs.

Installed only for the aiosmtplib release they were checked against
(:data:`CHECKED_RELEASES`; tests/outbound/test_smtp_speedups.py compares both with
aiosmtplib's own, and what a server receives either way).
"""

from __future__ import annotations

import logging
import re

import aiosmtplib.protocol as protocol
import aiosmtplib.smtp as smtp

from mailsvc.checked_releases import releases_checked

log = logging.getLogger(__name__)

CHECKED_RELEASES = {"aiosmtplib": frozenset({"5.1.3"})}

_OWN_NORMALIZE = protocol.normalize_message_line_endings
_OWN_PERIOD = protocol.PERIOD_REGEX


def normalize_message_line_endings(message: bytes) -> bytes:
    """aiosmtplib's: lone CR and LF made CRLF, a final CRLF added."""
    pairs = message.count(b"\r\n")
    if message.count(b"\r") == pairs and message.count(b"\n") == pairs:
        return message if message.endswith(b"\r\n") else message + b"\r\n"
    result: bytes = _OWN_NORMALIZE(message)
    return result


class PeriodStuffing:
    """Stands for aiosmtplib's ``PERIOD_REGEX`` (only its ``sub`` is used)."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern

    def sub(self, repl: bytes, message: bytes) -> bytes:
        if not message.startswith(b".") and b"\n." not in message:
            return message
        return self.pattern.sub(repl, message)


def install() -> bool:
    """Put them in aiosmtplib's place; True when installed (a checked release)."""
    if protocol.normalize_message_line_endings is normalize_message_line_endings:
        return True
    if not releases_checked(CHECKED_RELEASES, log):
        return False
    protocol.normalize_message_line_endings = normalize_message_line_endings
    smtp.normalize_message_line_endings = normalize_message_line_endings
    protocol.PERIOD_REGEX = PeriodStuffing(_OWN_PERIOD)  # type: ignore[assignment]
    return True


def uninstall() -> None:
    """aiosmtplib's own again (the tests compare the two)."""
    protocol.normalize_message_line_endings = _OWN_NORMALIZE
    smtp.normalize_message_line_endings = _OWN_NORMALIZE
    protocol.PERIOD_REGEX = _OWN_PERIOD
