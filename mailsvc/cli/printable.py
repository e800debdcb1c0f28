"""What the CLI prints on standard output is printable: control characters in text that
came from mail never reach the administrator's terminal."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO

# C0 and C1 controls but tab and line feed, DEL, and the bidirectional overrides: text from
# mail (a Subject, a file name, an abstract) printed raw could clear the administrator's
# screen, retitle the window or write to the clipboard (ESC ] 52 ;), or reorder what is
# read.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character shown as U+FFFD."""
    return _UNPRINTABLE.sub("\ufffd", text)


class PrintableStream(io.TextIOBase):
    """Standard output for the CLI: text written through it is :func:`printable`; bytes
    (an export to ``-``) go to the underlying binary buffer unchanged."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(printable(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    @property
    def buffer(self) -> BinaryIO:
        return self._inner.buffer


@contextlib.contextmanager
def printable_stdout() -> Iterator[None]:
    """While a command runs, what it prints on standard output is :func:`printable`."""
    saved = sys.stdout
    sys.stdout = PrintableStream(saved)
    try:
        yield
    finally:
        sys.stdout = saved
