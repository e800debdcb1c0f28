"""OCR (Tesseract) of scanned PDFs and image attachments, through the real extractor and
worker pool: markings and metadata on the scanned corpus, images, limits and the
``unreadable`` policy for scans OCR cannot read."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageDraw

from mailsvc.documents import formats
from mailsvc.documents.extract import ExtractionLimits, TextExtractor, extract_message_bytes
from mailsvc.documents.ocr import (
    ILLEGIBLE,
    OCR_UNAVAILABLE,
    OcrLimits,
    fix_ocr_text,
    tsv_text,
)
from mailsvc.documents.pool import WorkerPool
from mailsvc.message import InboundMessage
from mailsvc.pipeline.classification import ClassificationResult, ClassificationStage
from mailsvc.policy.classification import Unreadable, load_classification_policy
from mailsvc.verdict import Status
from tests.documents import generator
from tests.documents.accuracy import FIELDS, Report, measure

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "classification.yaml"
SERVICE = ExtractionLimits(timeout_s=10.0 + OcrLimits().timeout_s)  # as app.extraction_limits


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def scanned(pool: WorkerPool) -> Report:
    return asyncio.run(measure(generator.scanned_corpus(), pool))


@pytest.mark.long(30)  # its fixture reads the scanned corpus by OCR (~25 s)
def test_scanned_markings(scanned: Report) -> None:
    print("\n" + scanned.table())
    precision, _recall = scanned.precision_recall()
    assert precision == 1.0, scanned.wrong()
    assert scanned.recall_at(300) == 1.0, scanned.wrong()
    assert scanned.recall_at(200) >= 0.95, scanned.wrong()
    assert {o.doc.scan_dpi for o in scanned.outcomes} == {200, 300}


@pytest.mark.parametrize("name", FIELDS)
def test_scanned_metadata(scanned: Report, name: str) -> None:
    for dpi in (200, 300):
        accuracy = scanned.field_accuracy(name, dpi)
        assert accuracy >= 0.9, (name, dpi, accuracy, scanned.field_misses(name))


def stamp_doc(dpi: int = 200) -> generator.Doc:
    doc = next(
        d
        for d in generator.corpus()
        if d.fmt == "pdf" and d.position == "under-number" and d.form == "boxed"
    )
    return replace(doc, scan_dpi=dpi)


def inbound(raw: bytes) -> InboundMessage:
    return InboundMessage(
        queue_id="OCR1",
        mail_from="vanthu@ubnd.example.vn",
        rcpt_tos=("vanthu@stttt.example.vn",),
        raw=raw,
        received_at=datetime.now(UTC),
    )


def with_image(data: bytes, name: str, subtype: str) -> bytes:
    msg = generator.mail(stamp_doc())
    msg.clear_content()
    msg.set_content("Kính gửi Văn phòng. Gửi kèm bản chụp văn bản.\n")
    msg.add_attachment(data, maintype="image", subtype=subtype, filename=name)
    return msg.as_bytes()


pillow_heif.register_heif_opener()  # so that Pillow writes the HEIC test images


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("PNG", "png"),
        ("JPEG", "jpeg"),
        ("TIFF", "tiff"),
        # read since 7 December 2026: before, an unsupported file, delivered unread
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("WEBP", "webp"),
        ("AVIF", "avif"),
        ("HEIF", "heic"),  # an iPhone's photo of the page
    ],
)
async def test_image_attachment_with_a_stamp_is_refused(
    pool: WorkerPool, fmt: str, subtype: str
) -> None:
    doc = stamp_doc()
    image = generator.render_image(doc, fmt)
    raw = with_image(image, f"scan.{subtype}", subtype)
    stage = ClassificationStage(
        load_classification_policy(POLICY_FILE), TextExtractor(pool, SERVICE)
    )
    (finding,) = await stage.inspect(inbound(raw))
    assert finding.status is Status.FAIL and finding.reason == "classified-content"
    assert isinstance(finding.payload, ClassificationResult)
    assert finding.payload.level == doc.level
    text = await stage.extractor.extract(inbound(raw))
    [part] = text.attachments()
    assert part.content_type == f"image/{'jpeg' if fmt == 'JPEG' else subtype}"
    assert part.ocr_pages == (1,) and part.text_source == "OCR"


def scribble(size: tuple[int, int] = (1200, 1600)) -> bytes:
    """A page with ink but no words (a signature-like scrawl, a photo of a pattern)."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for k in range(0, size[0], 40):
        draw.line((k, 0, size[0] - k, size[1]), fill=0, width=6)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_small_images_are_not_read() -> None:
    logo = Image.new("L", (120, 60), 0)
    out = io.BytesIO()
    logo.save(out, format="PNG")
    text = extract_message_bytes(with_image(out.getvalue(), "logo.png", "png"), ExtractionLimits())
    assert text.failures == ()
    assert [s.kind for s in text.skipped] == ["unsupported"]


async def test_illegible_scan_follows_the_unreadable_policy(pool: WorkerPool) -> None:
    raw = with_image(scribble(), "scan.png", "png")
    policy = load_classification_policy(POLICY_FILE)
    assert policy.unreadable.for_kind(ILLEGIBLE) is Unreadable.REFUSE
    stage = ClassificationStage(policy, TextExtractor(pool, SERVICE))
    (finding,) = await stage.inspect(inbound(raw))
    assert finding.status is Status.FAIL and finding.reason == "unreadable-content"
    assert isinstance(finding.payload, ClassificationResult)
    assert finding.payload.kinds == [ILLEGIBLE]
    relaxed = policy.model_copy(
        update={"unreadable": policy.unreadable.model_copy(update={"illegible": "ignore"})}
    )
    (finding,) = await ClassificationStage(relaxed, TextExtractor(pool, SERVICE)).inspect(
        inbound(raw)
    )
    assert finding.status is Status.PASS


def test_ocr_limits_pages_time_and_a_missing_binary() -> None:
    doc = stamp_doc()
    two_pages = formats_two_page_scan(doc)
    msg = generator.mail(doc)
    msg.clear_content()
    msg.set_content("Bản chụp.\n")
    msg.add_attachment(two_pages, maintype="application", subtype="pdf", filename="scan.pdf")
    raw = msg.as_bytes()
    one_page = ExtractionLimits(ocr=OcrLimits(max_pages=1))
    text = extract_message_bytes(raw, one_page)
    assert [f.kind for f in text.failures] == ["too-large"]
    quick = ExtractionLimits(ocr=OcrLimits(page_timeout_s=0.05))
    text = extract_message_bytes(raw, quick)
    assert [f.kind for f in text.failures] == ["too-large"]
    missing = ExtractionLimits(ocr=OcrLimits(binary="/nonexistent/tesseract"))
    text = extract_message_bytes(raw, missing)
    assert [f.kind for f in text.failures] == [OCR_UNAVAILABLE]
    policy = load_classification_policy(POLICY_FILE)
    assert policy.unreadable.for_kind(OCR_UNAVAILABLE) is Unreadable.ERROR  # 451, fail closed
    off = ExtractionLimits(ocr=OcrLimits(enabled=False))
    text = extract_message_bytes(raw, off)
    assert text.failures == () and text.attachments()[0].ocr_pages == ()


def formats_two_page_scan(doc: generator.Doc) -> bytes:
    """The scan of ``doc`` twice: a two-page PDF without a text layer."""
    page = generator.render_scan(doc)
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(2):
        writer.add_page(pypdf.PdfReader(io.BytesIO(page)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    assert (
        formats.pdf_text(data, max_pages=5, max_chars=10_000, max_embedded_bytes=0).text.strip(
            "\n\f"
        )
        == ""
    )
    return data


def test_tsv_columns_are_separated_by_a_tab() -> None:
    head = "\t".join(
        "level page_num block_num par_num line_num word_num left top width height conf text".split()
    )
    rows = [
        "5\t1\t1\t1\t1\t1\t100\t50\t80\t40\t96\tMẬT",
        "5\t1\t1\t1\t1\t2\t900\t50\t120\t40\t95\tHà",
        "5\t1\t1\t1\t1\t3\t1040\t50\t100\t40\t95\tNội,",
        "5\t1\t2\t1\t1\t1\t100\t200\t50\t40\t20\tx",
    ]
    text, words, _conf = tsv_text("\n".join([head, *rows]))
    assert text == "MẬT\tHà Nội,\n\nx"
    assert words == 3


def test_ocr_confusions_are_undone_only_where_the_context_is_sure() -> None:
    assert fix_ocr_text("Thông tư số 12I2025ITT-BTC") == "Thông tư số 12/2025/TT-BTC"
    assert fix_ocr_text("Số: 12!2025/QĐ-UBND") == "Số: 12/2025/QĐ-UBND"
    assert fix_ocr_text("Số 287-QĐÐ/VPĐU") == "Số 287-QĐ/VPĐU"
    for kept in ("quý III năm 2026", "ngày 19 tháng 6 năm 2015", "Il y a 2026 ans", "ĐẮK NÔNG"):
        assert fix_ocr_text(kept) == kept


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "AVIF", "HEIF"])
def test_images_are_known_by_their_bytes_whatever_their_name(fmt: str) -> None:
    image = Image.new("L", (500, 500), 255)
    out = io.BytesIO()
    image.save(out, format=fmt)
    kind = formats.sniff(out.getvalue(), "scan.bin", "application/octet-stream")
    assert kind == {"HEIF": formats.HEIC}.get(fmt, f"image/{fmt.lower()}")


def test_a_text_that_starts_with_bm_is_a_text() -> None:
    text = "BMW X5 (2024) biển số 29A-123.45\r\nTỐI MẬT\r\n".encode()
    assert formats.sniff(text, "ghi-chu.txt", "text/plain") == "text/plain"
