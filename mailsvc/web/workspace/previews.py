"""Page previews of a PDF, drawn on the server with PDFium (pypdfium2) into PNG.

Run in the worker pool (PDFium is not thread-safe, and a hostile PDF must not take the
web server down with it); the workspace caches each page under HOME/cache/previews.
"""

from __future__ import annotations

import io

MAX_PREVIEW_PAGES = 3  # pages shown on a document's page
SCALE = 1.25  # 90 dpi: readable on a screen, ~100 KB a page
MAX_PIXELS = 4_000_000  # a page larger than this is drawn smaller


def page_count(data: bytes) -> int:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        return len(pdf)
    finally:
        pdf.close()


def render_page(data: bytes, page_number: int) -> bytes:
    """PNG of page ``page_number`` (1-based)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        if not 1 <= page_number <= len(pdf):
            raise ValueError(f"no page {page_number}")
        page = pdf[page_number - 1]
        width, height = page.get_size()
        scale = SCALE
        if width * height * scale * scale > MAX_PIXELS:
            scale = (MAX_PIXELS / (width * height)) ** 0.5
        bitmap = page.render(scale=scale)
        image = bitmap.to_pil()
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()
    finally:
        pdf.close()
