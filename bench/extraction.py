"""Text extraction time per document, beside a baseline measured in the same run.

    python bench/extraction.py [--seconds 2]

Documents are generated from the regulations in tests/data/classification/seeds (Vietnamese,
DejaVu Sans embedded): a PDF of about 100 KB and a DOCX. Figures, per document, one after
another in this process (as a pool worker runs them):

- PDF: our reader (pypdfium2) vs pypdf's ``extract_text`` (the fallback) on the same bytes;
- DOCX: our reader (zipfile + ElementTree, headers and footers included) vs python-docx
  paragraphs;
- a whole message (subject, bodies, PDF + DOCX attachments, MIME decoding) through
  ``extract_message_bytes``, and the marking scan over its text;
- the same messages through ``TextExtractor`` on a 2-process ``WorkerPool`` (messages/s).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docx

from mailsvc.documents import formats
from mailsvc.documents.extract import (
    ExtractionLimits,
    TextExtractor,
    extract_message_bytes,
)
from mailsvc.documents.markings import MarkingDetector
from mailsvc.documents.pool import WorkerPool
from mailsvc.policy.classification import load_classification_policy
from tests.documents.samples import (
    DATA,
    DOCX_TYPE,
    PDF_TYPE,
    attach,
    make_docx,
    message,
)

ROOT = Path(__file__).resolve().parent.parent
LIMITS = ExtractionLimits()


def per_call_ms(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up (imports, caches)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return elapsed / count * 1000


def pdf_of_about(size: int, text: str) -> bytes:
    """Two pages of the seed's text plus a scanned-seal-like image: about ``size`` bytes,
    like the signed PDFs agencies exchange (text 1-2 pages, a seal or logo image)."""
    import os

    from fpdf import FPDF
    from PIL import Image

    from tests.documents.samples import FONT

    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.set_font("DejaVu", size=11)
    pdf.set_title("Quyết định 35/2018/QĐ-UBND")
    pdf.add_page()
    side = 160
    while True:
        seal = Image.frombytes("L", (side, side), os.urandom(side * side))
        probe = FPDF()
        probe.add_page()
        probe.image(seal, w=30)
        if len(bytes(probe.output())) >= size * 0.75:
            break
        side += 20
    pdf.image(seal, x=150, y=10, w=30)
    for line in text.split("\n")[:70]:
        if line.strip():
            pdf.multi_cell(0, 6, line, align="L", new_x="LMARGIN", new_y="NEXT")
        if pdf.page_no() >= 2 and pdf.get_y() > 250:
            break
    return bytes(pdf.output())


def python_docx_text(data: bytes) -> str:
    document = docx.Document(io.BytesIO(data))
    return "\n".join(p.text for p in document.paragraphs)


async def pool_rate(raws: list[bytes], workers: int) -> float:
    pool = WorkerPool(workers)
    try:
        warm = TextExtractor(pool, LIMITS)
        await asyncio.gather(*(warm.extract(r + b"\n") for r in raws[:workers]))
        extractor = TextExtractor(pool, LIMITS, cache_size=0)
        start = time.perf_counter()
        await asyncio.gather(*(extractor.extract(r) for r in raws))
        return len(raws) / (time.perf_counter() - start)
    finally:
        pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    seed = (DATA / "seeds" / "seed-001.txt").read_text(encoding="utf-8")

    pdf = pdf_of_about(100 * 1024, seed)
    pages = len(__import__("pypdfium2").PdfDocument(pdf))
    docx_bytes = make_docx(seed[:12000], header="ỦY BAN NHÂN DÂN TỈNH ĐẮK NÔNG")

    def ours_pdf() -> object:
        return formats.pdf_text(pdf, max_pages=300, max_chars=2_000_000, max_embedded_bytes=1)

    def pypdf_pdf() -> object:
        return formats._pypdf_text(pdf, 300, 2_000_000)

    def ours_docx() -> object:
        return formats.ooxml_text(
            docx_bytes, formats.DOCX, max_member_bytes=64 << 20, max_chars=2_000_000
        )

    msg = message("V/v triển khai Quy chế", "Kính gửi các đơn vị.\n", html="<p>Kính gửi</p>")
    attach(msg, pdf, "quyet-dinh.pdf", PDF_TYPE)
    attach(msg, docx_bytes, "quy-che.docx", DOCX_TYPE)
    raw = msg.as_bytes()
    extracted = extract_message_bytes(raw, LIMITS)
    detector = MarkingDetector(load_classification_policy(ROOT / "policies/classification.yaml"))

    rows = [
        (f"PDF {len(pdf) // 1024} KB, {pages} pages", ours_pdf, "pypdfium2", pypdf_pdf, "pypdf"),
        (
            f"DOCX {len(docx_bytes) // 1024} KB",
            ours_docx,
            "zipfile+ElementTree",
            lambda: python_docx_text(docx_bytes),
            "python-docx",
        ),
    ]
    print(f"{'document':<28} {'ours':>22} {'baseline':>22} {'ratio':>7}")
    for label, ours, ours_name, base, base_name in rows:
        a = per_call_ms(ours, args.seconds)
        b = per_call_ms(base, args.seconds)
        print(
            f"{label:<28} {a:>9.2f} ms {ours_name:>9.9} {b:>9.2f} ms {base_name:>9.9}"
            f" {b / a:>6.1f}x"
        )
    whole = per_call_ms(lambda: extract_message_bytes(raw, LIMITS), args.seconds)
    scan = per_call_ms(lambda: detector.scan(extracted), args.seconds)
    chars = sum(len(p.text) for p in extracted.parts)
    print(f"whole message ({len(raw) // 1024} KB, PDF + DOCX + bodies): {whole:.2f} ms")
    print(f"marking scan over {chars} characters:                {scan:.2f} ms")
    raws = [raw + f"\nX-Bench: {i}\n".encode() for i in range(200)]
    rate = asyncio.run(pool_rate(raws, 2))
    print(f"TextExtractor on a 2-process WorkerPool: {rate:.1f} messages/s ({len(raws)} messages)")


if __name__ == "__main__":
    main()
