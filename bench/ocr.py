"""OCR cost per page, beside the text-layer extraction of the same pages in the same run.

    python bench/ocr.py [--pages 4]

Generated official documents (tests/documents/generator.py) are read twice, one after
another in this process (as a pool worker runs them):

- baseline: the PDF with its text layer, through ``formats.pdf_text`` (pypdfium2);
- the same page printed and scanned at 200 and 300 dpi (a PDF holding only a bitmap),
  through ``formats.pdf_text`` with OCR: rendering with PDFium, then the ``tesseract``
  binary (``-l vie``, one thread).

CPU is this process plus its children (the tesseract processes). The ratio says how many
text-layer pages cost as much as one OCR page.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailsvc.documents import formats
from mailsvc.documents.ocr import Ocr, OcrLimits
from tests.documents import generator


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def read(data: bytes, ocr: Ocr | None) -> str:
    return formats.pdf_text(
        data, max_pages=10, max_chars=1_000_000, max_embedded_bytes=0, ocr=ocr
    ).text


def measure(files: list[bytes], ocr: bool, repeat: int = 1) -> tuple[float, float]:
    """(wall ms, CPU ms) per page."""
    started_wall, started_cpu = time.perf_counter(), cpu()
    for _ in range(repeat):
        for data in files:
            read(data, Ocr(OcrLimits()) if ocr else None)
    pages = len(files) * repeat
    return (
        (time.perf_counter() - started_wall) * 1000 / pages,
        (cpu() - started_cpu) * 1000 / pages,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=4, help="documents (one page each)")
    args = parser.parse_args()
    docs = [d for d in generator.corpus() if d.fmt == "pdf" and d.position != "rotated-page"]
    docs = docs[: args.pages]
    text_files = [generator.build(d) for d in docs]
    baseline_wall, baseline_cpu = measure(text_files, ocr=False, repeat=20)
    print(f"{len(docs)} one-page documents; tesseract -l vie, 1 thread")
    print(f"{'reading':<28} {'wall ms/page':>13} {'CPU ms/page':>12} {'CPU ratio':>10}")
    print(f"{'text layer (baseline)':<28} {baseline_wall:>13.1f} {baseline_cpu:>12.1f} {1:>10.0f}")
    for dpi in (200, 300):
        scans = [generator.build(replace(d, scan_dpi=dpi)) for d in docs]
        wall, used = measure(scans, ocr=True)
        ratio = used / baseline_cpu if baseline_cpu else float("inf")
        print(f"{f'scan {dpi} dpi, OCR':<28} {wall:>13.1f} {used:>12.1f} {ratio:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
