"""Page previews are drawn apart from the mail checks, under a time limit: a PDF built to
be slow to draw (a few KB: one content stream of tens of thousands of transparent curves
shared by three pages) gets no preview, is not drawn again, and never holds the workers
that check incoming mail. Real server, real HTTPS client, real PDFium."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailsvc.register.models import RegisterDocument
from tests.e2e.conftest import RunningServer, prepare_home, running_server, seed, service_home
from tests.e2e.test_smtp_core import make_message, send
from tests.web.workspace_setup import CLERK, SENDER, client, seed_workspace, sign_in

__all__ = ["service_home"]  # fixture used here


def slow_pdf(curves: int, pages: int = 3) -> bytes:
    """A valid PDF whose pages share one content stream: a line of text, then ``curves``
    semi-transparent filled Bézier shapes (PDFium: about a millisecond each)."""
    ops = b"BT /F1 12 Tf 72 720 Td (CONG VAN so 15/UBND-VP ve ke hoach nam 2027) Tj ET\n"
    ops += b"/G1 gs\n" + b"0.5 g 10 10 m 600 780 300 10 10 780 c 600 10 l f\n" * curves
    stream = zlib.compress(ops, 9)
    kids = " ".join(f"{6 + i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /ExtGState << /G1 << /ca 0.5 >> >> /Font << /F1 5 0 R >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ] + [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources 3 0 R >>"
    ] * pages
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


@pytest.fixture
async def server(service_home: Path, db_url: str) -> AsyncIterator[RunningServer]:
    prepare_home(service_home, db_url, extra="\n[workspace]\npreview_timeout_seconds = 1\n")
    seed(db_url)
    async with running_server(service_home) as running:
        yield running


async def test_a_pdf_slow_to_draw_gets_no_preview_and_never_holds_the_mail_checks(
    server: RunningServer,
) -> None:
    seeded = await seed_workspace(server)
    hostile = make_message(SENDER, CLERK, subject="V/v kế hoạch chuyển đổi số năm 2027")
    data = slow_pdf(20_000)  # about 20 s a page here; the limit is 1 s
    assert len(data) < 10_000
    hostile.add_attachment(data, maintype="application", subtype="pdf", filename="15-UBND.pdf")
    assert await asyncio.to_thread(send, server, hostile, SENDER, [CLERK]) == {}
    with server.sessions() as session:
        doc_id = session.scalars(
            select(RegisterDocument.id).where(RegisterDocument.abstract.contains("2027"))
        ).one()

    async with client(server) as http:
        await sign_in(http, CLERK)
        page = await http.get(f"/w/incoming/{doc_id}")
        assert page.status_code == 200
        assert f"/w/incoming/{doc_id}/preview/1.png" in page.text

        # The clerk opens the pages while mail keeps arriving: the preview gives up at its
        # limit, the mail is checked and accepted meanwhile.
        async def mail() -> dict[str, tuple[int, bytes]]:
            plain = make_message(SENDER, CLERK, subject="Giấy mời họp")
            return await asyncio.to_thread(send, server, plain, SENDER, [CLERK])

        previews = [http.get(f"/w/incoming/{doc_id}/preview/{n}.png") for n in (1, 2, 3)]
        *answers, refused = await asyncio.gather(*previews, mail())
        assert [a.status_code for a in answers] == [404, 404, 404]
        assert refused == {}

        # Remembered: the page no longer offers previews; none is drawn again.
        marker = server.home / "cache" / "previews"
        assert [p.suffix for p in marker.iterdir() if p.name.endswith(".failed")] == [".failed"]
        again = await http.get(f"/w/incoming/{doc_id}")
        assert f"/w/incoming/{doc_id}/preview/1.png" not in again.text
        assert (await http.get(f"/w/incoming/{doc_id}/preview/1.png")).status_code == 404

        # Other documents' previews are drawn as before (a fresh drawing process).
        good = await http.get(f"/w/incoming/{seeded.document_id}/preview/1.png")
        assert good.status_code == 200 and good.content.startswith(b"\x89PNG\r\n\x1a\n")
