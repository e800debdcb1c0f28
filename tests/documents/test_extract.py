"""Text extraction: formats, the message walk, the cache, and hostile inputs in a worker pool."""

from __future__ import annotations

import asyncio
import io
import resource
import signal
import struct
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pypdfium2 as pdfium
import pytest
from fpdf import FPDF

from mailsvc.documents.extract import (
    ExtractionError,
    ExtractionLimits,
    RawDocument,
    Source,
    TextExtractor,
    _Budget,
    _text_parts,
    extract_message_bytes,
    iter_document_parts,
)
from mailsvc.documents.pool import WorkerPool
from tests.documents.samples import (
    DATA,
    DOCX_TYPE,
    ODT_TYPE,
    PDF_TYPE,
    attach,
    embed_in_docx,
    make_docx,
    make_odt,
    make_pdf,
    make_tar_gz,
    make_zip,
    message,
)
from tests.signatures.pki import pdf_from_objects

LIMITS = ExtractionLimits()


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2, memory_bytes=1 << 30)
    yield workers
    workers.shutdown(wait=True, cancel_futures=True)


def _extract(msg: Any, limits: ExtractionLimits = LIMITS) -> Any:
    return extract_message_bytes(msg.as_bytes(), limits)


# ---------------------------------------------------------------- formats


def test_pdf_text_is_nfc_with_diacritics_and_metadata() -> None:
    seed = (DATA / "seeds" / "seed-003.txt").read_text(encoding="utf-8")
    assert seed != unicodedata.normalize("NFC", seed)  # the source is not NFC on purpose
    msg = message()
    attach(msg, make_pdf(seed[:3000], title="Quyết định 464-QĐ/TU"), "qd.pdf", PDF_TYPE)
    text = _extract(msg)
    (part,) = text.attachments()
    assert part.text == unicodedata.normalize("NFC", part.text)
    assert "TỈNH UỶ QUẢNG TRỊ" in part.text
    assert "Đông Hà, ngày 07 tháng 3 năm 2017" in part.text
    (meta,) = text.by_source(Source.PDF_METADATA)
    assert dict(meta.properties)["title"] == "Quyết định 464-QĐ/TU"
    assert text.properties_of(part) == {"title": "Quyết định 464-QĐ/TU"}
    assert text.main_attachment() == part
    assert text.complete


def test_docx_header_table_and_properties() -> None:
    data = make_docx(
        "Kính gửi: Sở Nội vụ",
        header="ĐẦU TRANG",
        table=[["Ô một", "Ô hai"]],
        title="Tờ trình",
        keywords="tổ chức",
    )
    msg = message()
    attach(msg, data, "to-trinh.docx", ("application", "octet-stream"))  # sniffed
    text = _extract(msg)
    (part,) = text.attachments()
    assert part.content_type == DOCX_TYPE[0] + "/" + DOCX_TYPE[1]
    lines = part.lines()
    assert "ĐẦU TRANG" in lines and "Ô một" in lines and "Kính gửi: Sở Nội vụ" in lines
    assert text.properties_of(part) == {"title": "Tờ trình", "keywords": "tổ chức"}


def test_odt_body_and_page_header() -> None:
    msg = message()
    attach(msg, make_odt("Dòng một\nDòng hai", header="ĐẦU TRANG ODT"), "a.odt", ODT_TYPE)
    (part,) = _extract(msg).attachments()
    assert {"Dòng một", "Dòng hai", "ĐẦU TRANG ODT"} <= set(part.lines())


def test_html_body_drops_scripts_and_keeps_lines() -> None:
    html = (
        "<html><head><style>p{color:red}</style><title>T</title></head><body>"
        "<script>var mat = 'MẬT';</script><p>Kính&nbsp;gửi</p><div>Dòng&#160;hai &amp; ba</div>"
        "</body></html>"
    )
    text = _extract(message(body="văn bản", html=html))
    html_part = next(p for p in text.by_source(Source.BODY) if p.content_type == "text/html")
    assert "MẬT" not in html_part.text and "color" not in html_part.text
    assert "Kính gửi" in html_part.lines() and "Dòng hai & ba" in html_part.lines()
    assert text.body_text.strip() == "văn bản"


def test_walk_locations_archives_nested_mail_and_embedded_files() -> None:
    inner_docx = make_docx("Nội dung trong zip")
    inner_mail = message("Thư gốc", "Thân thư gốc\n")
    attach(inner_mail, make_pdf("PDF trong thư gốc"), "goc.pdf", PDF_TYPE)
    msg = message("Chủ đề", "Thân thư\n")
    attach(msg, make_zip({"thu-muc/a.docx": inner_docx}), "ho-so.zip", ("application", "zip"))
    attach(
        msg, make_tar_gz({"b.pdf": make_pdf("PDF trong tar")}), "b.tar.gz", ("application", "gzip")
    )
    msg.add_attachment(inner_mail)
    pdf_with_file = make_pdf("PDF ngoài", embed=("phu-luc.docx", make_docx("Phụ lục nhúng")))
    attach(msg, pdf_with_file, "ngoai.pdf", PDF_TYPE)
    attach(msg, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "anh.png", ("image", "png"))
    text = _extract(msg)
    where = {(p.source, p.location): p for p in text.parts}
    assert where[("subject", "subject")].text == "Chủ đề"
    assert where[("filename", "attachment 1 > member 1")].text == "thu-muc/a.docx"
    assert "Nội dung trong zip" in where[("attachment", "attachment 1 > member 1")].text
    assert where[("attachment", "attachment 1 > member 1")].depth == 1
    assert "PDF trong tar" in where[("attachment", "attachment 2 > member 1")].text
    assert where[("subject", "attachment 3 > message > subject")].text == "Thư gốc"
    assert (
        "PDF trong thư gốc" in where[("attachment", "attachment 3 > message > attachment 1")].text
    )
    assert "Phụ lục nhúng" in where[("attachment", "attachment 4 > embedded 1")].text
    assert [s.location for s in text.skipped] == ["attachment 5"]
    assert text.complete
    # the top-level helpers see only the message's own parts
    assert [p.filename for p in text.attachments()] == ["ngoai.pdf"]
    # the synchronous walk yields the same parts
    assert [p.location for p in iter_document_parts(msg, LIMITS)] == [
        p.location for p in text.parts
    ]


# ---------------------------------------------------------------- the async facade


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.calls = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


async def test_extractor_shares_one_extraction_per_message() -> None:
    executor = CountingExecutor()
    try:
        extractor = TextExtractor(executor)
        msg = message()
        attach(msg, make_pdf("Nội dung"), "a.pdf", PDF_TYPE)
        raw = msg.as_bytes()
        first, second = await asyncio.gather(extractor.extract(raw), extractor.extract(raw))
        third = await extractor.extract(raw)
        assert first is second is third
        assert executor.calls == 1
        other = await extractor.extract(message("Khác").as_bytes())
        assert other is not first and executor.calls == 2
    finally:
        executor.shutdown()


async def test_pool_workers_have_an_address_space_limit(pool: WorkerPool) -> None:
    loop = asyncio.get_running_loop()
    soft, _hard = await loop.run_in_executor(pool, resource.getrlimit, resource.RLIMIT_AS)
    assert soft == 1 << 30


async def test_timeout_recycles_the_pool_and_the_next_message_works(pool: WorkerPool) -> None:
    msg = message()
    seed = (DATA / "seeds" / "seed-001.txt").read_text(encoding="utf-8")
    pdf = make_pdf(seed)
    for n in range(8):  # far more work than the 1 ms allowed, even on a loaded machine
        attach(msg, pdf, f"a{n}.pdf", PDF_TYPE)
    slow = TextExtractor(pool, ExtractionLimits(timeout_s=0.001))
    before = pool.recycled
    with pytest.raises(ExtractionError, match="timed out"):
        await slow.extract(msg.as_bytes())
    assert pool.recycled == before + 1
    text = await TextExtractor(pool).extract(msg.as_bytes())
    assert all("ĐẮK NÔNG" in part.text for part in text.attachments())


async def test_cpu_deadline_inside_the_worker_reports_a_timeout(pool: WorkerPool) -> None:
    msg = message()
    seed = (DATA / "seeds" / "seed-001.txt").read_text(encoding="utf-8")
    pdf = make_pdf(seed)
    for n in range(5):
        attach(msg, pdf, f"a{n}.pdf", PDF_TYPE)
    text = await TextExtractor(pool, ExtractionLimits(cpu_s=0.001)).extract(msg.as_bytes())
    assert [f.kind for f in text.failures] == ["timeout"]


def _broken_pdf() -> RawDocument:
    return RawDocument(Source.ATTACHMENT, "a.pdf", 0, PDF_TYPE, "a.pdf", b"%PDF-1.7\n" + b"x" * 64)


def test_a_parser_error_after_the_cpu_alarm_is_the_alarm_not_a_corrupt_file() -> None:
    # ctypes turns the alarm's exception into ArgumentError when the signal lands inside an
    # argument's conversion (seen with pypdfium2, about once in 200 runs): once the alarm
    # has fired, the per-file boundary hands any error on as the deadline
    budget = _Budget(LIMITS)
    budget.cpu_deadline_hit = True
    with pytest.raises(BaseException) as raised:
        list(_text_parts(_broken_pdf(), budget))
    assert type(raised.value).__name__ == "_CpuDeadline"
    assert budget.failures == []
    calm = _Budget(LIMITS)
    assert list(_text_parts(_broken_pdf(), calm)) == []
    assert [f.kind for f in calm.failures] == ["corrupt"]


def test_the_cpu_alarm_is_disarmed_and_its_handler_restored_after_a_deadline() -> None:
    msg = message()
    pdf = make_pdf((DATA / "seeds" / "seed-001.txt").read_text(encoding="utf-8"))
    for n in range(5):
        attach(msg, pdf, f"a{n}.pdf", PDF_TYPE)
    before = signal.getsignal(signal.SIGPROF)
    for cpu_s in (0.001, 0.004, 0.016):
        text = extract_message_bytes(msg.as_bytes(), ExtractionLimits(cpu_s=cpu_s))
        assert [f.kind for f in text.failures] == ["timeout"]
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)  # the repeat stopped too
        assert signal.getsignal(signal.SIGPROF) is before


# ---------------------------------------------------------------- hostile inputs


def _timed(pool: WorkerPool, raw: bytes, limits: ExtractionLimits = LIMITS) -> tuple[Any, float]:
    async def run() -> Any:
        try:
            return await TextExtractor(pool, limits).extract(raw)
        except ExtractionError as exc:
            return exc

    started = time.perf_counter()
    result = asyncio.run(run())
    return result, time.perf_counter() - started


def _with(data: bytes, name: str, ctype: tuple[str, str]) -> bytes:
    msg = message()
    attach(msg, data, name, ctype)
    return msg.as_bytes()


def test_truncated_and_garbage_pdfs_are_reported_corrupt(pool: WorkerPool) -> None:
    good = make_pdf("Nội dung đầy đủ của văn bản\n" * 40)
    for data in (good[: len(good) // 3], b"%PDF-1.7\n" + bytes(range(256)) * 200):
        text, elapsed = _timed(pool, _with(data, "x.pdf", PDF_TYPE))
        assert elapsed < 5
        assert [f.kind for f in text.failures] == ["corrupt"], text.failures


def test_encrypted_pdf_is_reported_encrypted(pool: WorkerPool) -> None:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(make_pdf("Bí mật")))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    text, _ = _timed(pool, _with(out.getvalue(), "x.pdf", PDF_TYPE))
    assert [f.kind for f in text.failures] == ["encrypted"]


def test_huge_page_count_is_capped(pool: WorkerPool) -> None:
    pdf = pdfium.PdfDocument.new()
    for _ in range(3000):
        pdf.new_page(595, 842)
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    limits = ExtractionLimits(max_pdf_pages=50)
    text, elapsed = _timed(pool, _with(out.getvalue(), "many.pdf", PDF_TYPE), limits)
    assert elapsed < 10
    (part,) = text.attachments()
    assert part.truncated and text.complete


def _nested_pdf(depth: int) -> bytes:
    """A one-page PDF whose page dictionary holds an array nested ``depth`` levels deep."""
    nested = b"[" * depth + b"]" * depth
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Deep " + nested + b" >>",
    ]
    return pdf_from_objects(objects, header=b"%PDF-1.7\n")


def test_deeply_nested_pdf_is_bounded(pool: WorkerPool) -> None:
    text, elapsed = _timed(pool, _with(_nested_pdf(200_000), "deep.pdf", PDF_TYPE))
    assert elapsed < 12
    # either read (PDFium caps nesting) or reported; never a hang
    assert isinstance(text, ExtractionError) or text.failures or text.attachments()


def _bomb_docx(declared_size: int | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"<w:document>" + b" " * (80 << 20) + b"</w:document>")
    data = out.getvalue()
    if declared_size is None:
        return data
    # lie about the uncompressed size in both the local header and the central directory
    buf = bytearray(data)
    real = struct.pack("<I", 12 + (80 << 20) + 13)
    fake = struct.pack("<I", declared_size)
    index = buf.find(real)
    while index != -1:
        buf[index : index + 4] = fake
        index = buf.find(real, index + 4)
    return bytes(buf)


def test_docx_zip_bombs_are_refused_quickly(pool: WorkerPool) -> None:
    for bomb in (_bomb_docx(), _bomb_docx(declared_size=1000)):
        assert len(bomb) < 1 << 20
        text, elapsed = _timed(pool, _with(bomb, "bomb.docx", DOCX_TYPE))
        assert elapsed < 5
        assert len(text.failures) == 1 and text.failures[0].kind in ("too-large", "corrupt")


def test_nested_archives_stop_at_the_depth_limit() -> None:
    blob = make_docx("đáy")
    for level in range(8):
        blob = make_zip({f"lop-{level}.zip" if level else "a.docx": blob})
    msg = message()
    attach(msg, blob, "matryoshka.zip", ("application", "zip"))
    text = _extract(msg, ExtractionLimits(max_depth=4))
    assert [f.kind for f in text.failures] == ["too-large"]
    assert "nesting" in text.failures[0].detail


def test_xml_entities_are_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><w:document>&b;</w:document>'
    )
    data = make_zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": laughs})
    msg = message()
    attach(msg, data, "laughs.docx", DOCX_TYPE)
    text = _extract(msg)
    assert [f.kind for f in text.failures] == ["corrupt"]


def test_raw_8bit_and_encoded_headers_and_file_names() -> None:
    raw = (
        "From: a@ubnd.example.vn\r\nSubject: [MẬT] Báo cáo\r\n"
        "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
        "--x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Kính gửi\r\n"
        '--x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="Tối mật.txt"'
        "\r\n\r\nx\r\n"
        "--x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment;"
        " filename*=utf-8''T%E1%BB%9D%20tr%C3%ACnh.txt\r\n\r\ny\r\n"
        "--x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment;"
        ' filename="=?utf-8?b?QsOhbyBjw6FvLnR4dA==?="\r\n\r\nz\r\n--x--\r\n'
    ).encode()
    text = extract_message_bytes(raw, LIMITS)
    assert text.subject == "[MẬT] Báo cáo"
    names = [p.text for p in text.by_source(Source.FILENAME)]
    assert names == ["Tối mật.txt", "Tờ trình.txt", "Báo cáo.txt"]
    assert text.body_text.strip() == "Kính gửi"


def test_legacy_word_97_document() -> None:
    msg = message()
    data = (DATA / "legacy" / "cong-an-toi-mat.doc").read_bytes()
    attach(msg, data, "cong-an.doc", ("application", "octet-stream"))
    (part,) = _extract(msg).attachments()
    assert part.content_type == "application/msword"
    assert {"CÔNG AN TỈNH", "TỐI MẬT", "Số: 901/CAT-PV01"} <= set(part.lines())


def test_files_embedded_in_a_docx_are_walked() -> None:
    """Insert > Object > from file: the embedded DOCX is read like an attachment."""
    inner = make_docx("SỞ KẾ HOẠCH VÀ ĐẦU TƯ\nMẬT\nSố: 502/SKHĐT-TH")
    outer = embed_in_docx(make_docx("Kính gửi."), "Microsoft_Word_Document.docx", inner)
    msg = message()
    attach(msg, outer, "cong-van.docx", DOCX_TYPE)
    text = extract_message_bytes(msg.as_bytes(), ExtractionLimits())
    [_, embedded] = text.attachments(top_level=False)
    assert embedded.location == "attachment 1 > embedded 1"
    assert embedded.filename == "Microsoft_Word_Document.docx" and "MẬT" in embedded.text


def test_an_embedded_file_over_the_limit_makes_the_document_too_large() -> None:
    outer = embed_in_docx(make_docx("Kính gửi."), "big.docx", bytes(300_000))
    msg = message()
    attach(msg, outer, "cong-van.docx", DOCX_TYPE)
    text = extract_message_bytes(msg.as_bytes(), ExtractionLimits(max_file_bytes=200_000))
    assert [(f.location, f.kind) for f in text.failures] == [("attachment 1", "too-large")]


def _pdf_with_files(count: int, size: int) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    for i in range(count):
        pdf.embed_file(bytes=bytes([i % 256]) * size, basename=f"phu-luc-{i}.txt", compress=True)
    return bytes(pdf.output())


@pytest.mark.parametrize(
    ("count", "size", "limit"), [(51, 10, 1 << 20), (1, 300_000, 200_000)], ids=["51", "big"]
)
def test_embedded_files_that_would_go_unread_make_the_pdf_too_large(
    count: int, size: int, limit: int
) -> None:
    """Before, the 51st embedded file and one over the limit were skipped silently."""
    msg = message()
    attach(msg, _pdf_with_files(count, size), "bao-cao.pdf", PDF_TYPE)
    text = extract_message_bytes(msg.as_bytes(), ExtractionLimits(max_file_bytes=limit))
    assert [(f.location, f.kind) for f in text.failures] == [("attachment 1", "too-large")]


def test_fifty_embedded_files_are_all_read() -> None:
    msg = message()
    attach(msg, _pdf_with_files(50, 10), "bao-cao.pdf", PDF_TYPE)
    text = extract_message_bytes(msg.as_bytes(), ExtractionLimits())
    assert text.complete
    assert len([p for p in text.parts if " > embedded " in p.location]) >= 50
    # the PDF's own page count, not its number of embedded files
    [pdf] = [p for p in text.attachments() if p.content_type == "application/pdf"]
    assert pdf.pages == 1
