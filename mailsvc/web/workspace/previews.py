"""Page previews of a PDF, drawn on the server with PDFium (pypdfium2) into PNG.

Drawn in a worker process of their own (:class:`PreviewDrawer`), never in the message
pipeline's pool: PDFium is not thread-safe, a hostile PDF must not take the web server down
with it, and a PDF built to be slow to draw (a page of tens of thousands of transparent
curves is a few KB) must not hold the workers that check incoming mail. One page is drawn
at a time, under a time limit; a PDF that overran it or could not be drawn is remembered
and not tried again. Pages are cached under HOME/cache/previews.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from mailsvc.documents.pool import WorkerPool

log = logging.getLogger(__name__)

MAX_PREVIEW_PAGES = 3  # pages shown on a document's page
SCALE = 1.25  # 90 dpi: readable on a screen, ~100 KB a page
MAX_PIXELS = 4_000_000  # a page larger than this is drawn smaller
PREVIEW_MEMORY = 1 << 30  # address space of the drawing process

T = TypeVar("T")


class NoSuchPage(ValueError):
    """The PDF has fewer pages than the one asked for (not a failure of the PDF)."""


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
            raise NoSuchPage(f"no page {page_number}")
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


class PreviewDrawer:
    """Previews of PDFs by SHA-256, drawn one at a time in a process of their own.

    ``timeout_s``: wall time for one page (or the page count); past it the drawing process
    is killed and the PDF marked as having no preview. The process starts on the first
    preview (from the same fork server as the pipeline's workers).
    """

    def __init__(
        self,
        cache_dir: Path,
        timeout_s: float = 10.0,
        pool_factory: Callable[[], Executor] = lambda: WorkerPool(1, memory_bytes=PREVIEW_MEMORY),
    ) -> None:
        self.cache_dir = cache_dir
        self.timeout_s = timeout_s
        self._pool_factory = pool_factory
        self._pool: Executor | None = None
        self._turn: asyncio.Lock | None = None

    def _failed_marker(self, sha: str) -> Path:
        return self.cache_dir / f"{sha}.failed"

    def has_failed(self, sha: str) -> bool:
        """True when this PDF overran the time limit or could not be drawn before."""
        return self._failed_marker(sha).exists()

    async def page_count(self, sha: str, data: bytes) -> int:
        """Pages of the PDF; 0 when it has no preview (unreadable, or failed before)."""
        if await asyncio.to_thread(self.has_failed, sha):
            return 0
        count = await self._run(sha, page_count, data)
        return 0 if count is None else count

    async def page(self, sha: str, number: int, load: Callable[[], bytes]) -> bytes | None:
        """PNG of page ``number`` (cached), or None when it cannot be drawn. ``load`` reads
        the PDF's bytes (in a thread), only when the page is not cached."""
        cached = self.cache_dir / f"{sha}-{number}.png"
        with contextlib.suppress(FileNotFoundError):
            return await asyncio.to_thread(cached.read_bytes)
        if await asyncio.to_thread(self.has_failed, sha):
            return None
        data = await asyncio.to_thread(load)
        png = await self._run(sha, render_page, data, number)
        if png is None:
            return None
        await asyncio.to_thread(self._store, cached, png)
        return png

    async def _run(self, sha: str, fn: Callable[..., T], *args: object) -> T | None:
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:  # one drawing at a time: a queue, not a pile of stuck work
            if await asyncio.to_thread(self.has_failed, sha):
                return None
            if self._pool is None:
                self._pool = self._pool_factory()
            loop = asyncio.get_running_loop()
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(self._pool, fn, *args), self.timeout_s
                )
            except NoSuchPage:
                return None
            except TimeoutError:
                log.warning(
                    "workspace: preview of %s overran %.1f s; not drawn again", sha, self.timeout_s
                )
                recycle = getattr(self._pool, "recycle", None)
                if callable(recycle):
                    recycle()
            except Exception:  # boundary: a PDF that cannot be opened or drawn
                log.info("workspace: no preview of %s", sha, exc_info=True)
            await asyncio.to_thread(self._store, self._failed_marker(sha), b"")
            return None

    def _store(self, path: Path, data: bytes) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        partial.write_bytes(data)
        partial.replace(path)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
