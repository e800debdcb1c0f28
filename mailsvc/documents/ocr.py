"""OCR of scanned pages and images with Tesseract (Debian ``tesseract-ocr`` + ``-vie``).

Runs inside a worker of :class:`mailsvc.documents.pool.WorkerPool`, never in the SMTP
process: :mod:`mailsvc.documents.formats` renders a PDF page that has no text layer (or
decodes an image attachment) and hands the bitmap to :meth:`Ocr.read`.

We drive the ``tesseract`` binary directly, one process per page, rather than through
pytesseract: pytesseract is only a wrapper around the same binary that writes temporary
files; the direct call pipes the bitmap over stdin (no files), gets TSV (words with boxes and
confidences) over stdout, and enforces the page's time limit by killing the child
(``subprocess.run(timeout=...)``). ``OMP_THREAD_LIMIT=1`` keeps each OCR to one core, so the
pool's worker count bounds the CPU that OCR can take.

Limits (:class:`OcrLimits`, part of ``ExtractionLimits``): pages per message, seconds per page
and per message. Past them the part is reported ``too-large``; a page with ink but no
legible words is reported ``illegible``; a missing binary is ``ocr-unavailable`` (fail closed).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailsvc.documents.formats import TOO_LARGE, UnreadableDocument

if TYPE_CHECKING:
    from PIL.Image import Image

ILLEGIBLE = "illegible"  # a scan or image with ink on it but no words OCR can read
OCR_UNAVAILABLE = "ocr-unavailable"  # the tesseract binary or its language data is missing

_MIN_WORDS = 3  # confident words for a page with ink to count as read
_MIN_CONFIDENCE = 50.0
_INK_RATIO = 0.004  # share of dark pixels above which a page is not blank
_COLUMN_GAP = 2.0  # a gap wider than this many word heights separates columns (TAB)
_SECOND_LOOKS = 6  # doubtful short lines re-read per page


def _mean(words: list[_Word]) -> float:
    return sum(max(w.conf, 0.0) for w in words) / len(words)


@dataclass(frozen=True)
class OcrLimits:
    """OCR settings and bounds. Picklable; part of ``ExtractionLimits``."""

    enabled: bool = True
    languages: str = "vie"
    dpi: int = 300  # PDF pages without text are rendered at this resolution
    max_pages: int = 20  # pages (and images) OCR'd per message
    page_timeout_s: float = 30.0
    timeout_s: float = 120.0  # all OCR of one message
    binary: str = "tesseract"
    cpu_per_page_s: float = 2.0  # added to the worker's CPU alarm per page (rendering)


@dataclass(frozen=True)
class OcrPage:
    text: str
    words: int  # confident words
    confidence: float  # mean confidence of the words, 0-100
    ink: bool  # the page is not blank
    seconds: float

    @property
    def legible(self) -> bool:
        return self.words >= _MIN_WORDS or not self.ink


class Ocr:
    """One message's OCR budget and the call to Tesseract."""

    def __init__(self, limits: OcrLimits) -> None:
        self.limits = limits
        self.pages = 0
        self.seconds = 0.0

    def available(self) -> bool:
        return shutil.which(self.limits.binary) is not None

    def take_page(self) -> None:
        """Count one page against the budget (before rendering it)."""
        if self.pages >= self.limits.max_pages:
            raise UnreadableDocument(TOO_LARGE, f"more than {self.limits.max_pages} pages need OCR")
        if self.seconds >= self.limits.timeout_s:
            raise UnreadableDocument(TOO_LARGE, f"OCR over {self.limits.timeout_s:.0f} s")
        self.pages += 1
        _extend_cpu_alarm(self.limits.cpu_per_page_s)

    def read(self, image: Image, dpi: int, *, drawn: bool = False) -> OcrPage:
        """Text of one bitmap, lines in reading order, columns separated by TAB. ``drawn``:
        the page is known to hold drawing (a PDF's outlines), so a little ink is not taken
        for a blank page's specks."""
        gray = image.convert("L")
        ink = drawn or _has_ink(gray)
        if not ink:
            return OcrPage("", 0, 0.0, False, 0.0)
        data = _pgm(gray)
        timeout = min(self.limits.page_timeout_s, max(1.0, self.limits.timeout_s - self.seconds))
        started = time.perf_counter()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OMP_THREAD_LIMIT": "1",
            "LC_ALL": "C",
        }
        if "TESSDATA_PREFIX" in os.environ:
            env["TESSDATA_PREFIX"] = os.environ["TESSDATA_PREFIX"]
        lines = parse_tsv(self._tesseract(data, dpi, "3", timeout, env))
        # a second look at short doubtful lines, each cut out and read as one raw line
        for line in [x for x in lines if x.doubtful][:_SECOND_LOOKS]:
            left, top, right, bottom = line.box()
            pad = max(4, (bottom - top) // 2)
            crop = gray.crop((max(0, left - pad), max(0, top - pad), right + pad, bottom + pad))
            budget = min(5.0, max(1.0, self.limits.timeout_s - self.seconds))
            again = parse_tsv(self._tesseract(_pgm(crop), dpi, "13", budget, env))
            words = [w for x in again for w in x.words]
            if words and _mean(words) > _mean(line.words):
                for w in words:
                    w.left += left - pad
                    w.top += top - pad
                line.words = words
        text, count, confidence = _render(lines)
        return OcrPage(text, count, confidence, True, time.perf_counter() - started)

    def _tesseract(
        self, data: bytes, dpi: int, psm: str, timeout: float, env: dict[str, str]
    ) -> str:
        command = [
            self.limits.binary,
            "stdin",
            "stdout",
            "-l",
            self.limits.languages,
            "--dpi",
            str(dpi),
            "--psm",
            psm,
            "tsv",
        ]
        started = time.perf_counter()
        try:
            done = subprocess.run(
                command, input=data, capture_output=True, timeout=timeout, env=env, check=False
            )
        except FileNotFoundError as exc:
            raise UnreadableDocument(OCR_UNAVAILABLE, "the tesseract binary is missing") from exc
        except subprocess.TimeoutExpired as exc:
            raise UnreadableDocument(TOO_LARGE, f"OCR of a page over {timeout:.0f} s") from exc
        finally:
            self.seconds += time.perf_counter() - started
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            kind = OCR_UNAVAILABLE if b"traineddata" in done.stderr else ILLEGIBLE
            raise UnreadableDocument(kind, f"tesseract failed: {detail[0][:200]}")
        return done.stdout.decode("utf-8", "replace")


@dataclass
class _Word:
    text: str
    left: int
    top: int
    width: int
    height: int
    conf: float


@dataclass
class _Line:
    block: str
    words: list[_Word]

    def box(self) -> tuple[int, int, int, int]:
        return (
            min(w.left for w in self.words),
            min(w.top for w in self.words),
            max(w.left + w.width for w in self.words),
            max(w.top + w.height for w in self.words),
        )

    def text(self) -> str:
        out: list[str] = []
        height = max(w.height for w in self.words)  # a dash or a comma is short
        right = 0
        for i, word in enumerate(self.words):
            if i:
                gap = word.left - right
                out.append("\t" if gap > _COLUMN_GAP * max(height, 1) else " ")
            out.append(word.text)
            right = word.left + word.width
        return "".join(out)

    @property
    def doubtful(self) -> bool:
        """A short line with a word Tesseract is unsure of: letter-spaced stamps
        ("T U Y Ệ T  M Ậ T") come out garbled from the page layout pass."""
        return len(self.words) <= 4 and any(w.conf < _MIN_CONFIDENCE for w in self.words)


def parse_tsv(tsv: str) -> list[_Line]:
    lines: list[_Line] = []
    key: tuple[str, str, str] | None = None
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        try:
            word = _Word(
                cols[11].strip(),
                int(cols[6]),
                int(cols[7]),
                int(cols[8]),
                int(cols[9]),
                float(cols[10]),
            )
        except ValueError:
            continue
        this = (cols[2], cols[3], cols[4])
        if this != key:
            lines.append(_Line(cols[2], []))
            key = this
        lines[-1].words.append(word)
    return lines


def tsv_text(tsv: str) -> tuple[str, int, float]:
    """Tesseract TSV → (text, confident words, mean confidence).

    Words of one Tesseract line are joined by a space, or a TAB across a wide gap (the two
    header columns, a stamp beside the date); blocks are separated by a blank line.
    """
    return _render(parse_tsv(tsv))


def _render(lines: list[_Line]) -> tuple[str, int, float]:
    out: list[str] = []
    block = ""
    confidences: list[float] = []
    words = 0
    for line in lines:
        if block and line.block != block:
            out.append("")
        block = line.block
        out.append(line.text())
        for w in line.words:
            if w.conf >= _MIN_CONFIDENCE:
                words += 1
            if w.conf >= 0:
                confidences.append(w.conf)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return fix_ocr_text("\n".join(out)), words, mean


# Confusions Tesseract makes on Vietnamese official documents, undone where the context
# leaves no doubt: the Icelandic eth for Đ (sometimes beside the Đ it doubles), and the
# slash of a number/notation read as "!", "|", "I" or "l" between digits ("12!2025",
# "12I2025ITT-BTC" → "12/2025/TT-BTC").
_ETH = re.compile("ĐÐ|ÐĐ|Ð")
_SLASH_YEAR = re.compile(r"(?<=\d)[!|Il](?=(?:19|20)\d\d(?:[!|Il/]|\b))")
_SLASH_AFTER_YEAR = re.compile(r"(?<=\b(?:19|20)\d\d)[!|Il](?=[A-ZĐ]{2,})")


def fix_ocr_text(text: str) -> str:
    text = _ETH.sub("Đ", text).replace("ð", "đ")
    text = _SLASH_YEAR.sub("/", text)
    return _SLASH_AFTER_YEAR.sub("/", text)


_RULE_GREY = 64  # mean grey of a row or column below which it is a rule (about 3/4 dark)


def without_rules(gray: Image) -> Image:
    """The picture with its long straight lines (a stamp's frame, table borders) whitened:
    Tesseract reads the letters of a boxed stamp as brackets and bars otherwise. A row or a
    column counts as a rule when about three quarters of it are dark: in a rubber stamp
    the letters often fill more than half the frame's height, and at half a column
    through a letter's stem was taken for a rule and whitened (a "TỐI MẬT" stamp read
    as nothing)."""
    from PIL import ImageDraw

    width, height = gray.size
    rows = gray.convert("L").resize((1, height), reducing_gap=None).tobytes()
    cols = gray.convert("L").resize((width, 1), reducing_gap=None).tobytes()
    dark_rows = [y for y, v in enumerate(rows) if v < _RULE_GREY]
    dark_cols = [x for x, v in enumerate(cols) if v < _RULE_GREY]
    if not dark_rows and not dark_cols:
        return gray
    clean = gray.copy()
    draw = ImageDraw.Draw(clean)
    for y in dark_rows:
        draw.line((0, y, width, y), fill=255)
    for x in dark_cols:
        draw.line((x, 0, x, height), fill=255)
    return clean


def _has_ink(gray: Image) -> bool:
    histogram = gray.histogram()
    dark = sum(histogram[:128])
    total = sum(histogram) or 1
    return dark / total >= _INK_RATIO


def _pgm(gray: Image) -> bytes:
    """Binary PGM: no compression to pay for, read by Tesseract's Leptonica."""
    header = f"P5\n{gray.width} {gray.height}\n255\n".encode("ascii")
    return header + gray.tobytes()


def _extend_cpu_alarm(seconds: float) -> None:
    """Give the worker's CPU alarm (set by extract_message_bytes) time for one more page."""
    if not hasattr(signal, "ITIMER_PROF"):
        return
    try:
        remaining, interval = signal.getitimer(signal.ITIMER_PROF)
        if remaining > 0:
            signal.setitimer(signal.ITIMER_PROF, remaining + seconds, interval)
    except (ValueError, OSError):  # not the main thread, or no timer
        return
