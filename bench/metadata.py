"""Metadata extraction time per document, beside a baseline from the same run. Not a test.

    python bench/metadata.py [--rounds 200]

Figures (median / p99 ms per document, and documents/s):

- metadata:   ``extract_metadata(text, subject, headers, attachments)`` over every text of the
              labelled corpus (tests/data/metadata, ~40 documents, State and Party layouts)
- baseline:   one pass of one compiled regex (the "Số: ..." number pattern plus the
              "ngày .. tháng .. năm" date pattern, as an alternation) over the same texts:
              what the cheapest conceivable reader would pay
- stage:      ``MetadataStage.inspect`` on messages carrying the generated layout PDFs and
              DOCX files (tests/documents/metadata_samples.py), the extractor's cache
              cleared each time, so PDFium/DOCX text extraction is included; run in-process
              (``executor=None``), as one worker of the process pool would
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsvc.documents.extract import TextExtractor  # noqa: E402
from mailsvc.documents.metadata import extract_metadata  # noqa: E402
from mailsvc.interfaces import AgencyInfo  # noqa: E402
from mailsvc.message import InboundMessage  # noqa: E402
from mailsvc.pipeline.metadata import MetadataStage  # noqa: E402
from tests.documents.metadata_samples import LAYOUTS, layout_docx, layout_pdf  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "metadata"
BASELINE = re.compile(
    r"Số\s*[:.]?\s*\d+[/-][\w/.-]+|ngày\s+\d{1,2}\s+tháng\s+\d{1,2}\s+năm\s+\d{4}", re.IGNORECASE
)


class StaticDirectory:
    """A fixed one-agency directory (the bench measures the stage, not the database)."""

    def __init__(self) -> None:
        self.info = AgencyInfo(code="000.12.31.H17", name="Sở Nội vụ", domains=("snv.example.vn",))

    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        return self.info if domain in self.info.domains else None

    def is_local_domain(self, domain: str) -> bool:
        return False


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def line(label: str, samples: list[float]) -> tuple[float, float]:
    median, p99 = percentiles(samples)
    rate = 1000 / median if median else float("inf")
    print(f"{label:44} median {median:8.3f} ms   p99 {p99:8.3f} ms   {rate:10.0f} docs/s")
    return median, p99


def inbound(data: bytes, kind: str) -> InboundMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "vanthu@snv.example.vn"
    msg["To"] = "vanthu@stttt.example.vn"
    msg["Subject"] = "Gửi văn bản"
    msg.set_content("Kính gửi văn thư.")
    subtype = (
        "pdf" if kind == "pdf" else ("vnd.openxmlformats-officedocument.wordprocessingml.document")
    )
    msg.add_attachment(data, "application", subtype, filename=f"vb.{kind}")
    return InboundMessage("B", "vanthu@snv.example.vn", ("x@y",), msg.as_bytes(), datetime.now(UTC))


async def stage_samples(rounds: int) -> dict[str, list[float]]:
    extractor = TextExtractor(executor=None)
    stage = MetadataStage(extractor, StaticDirectory())
    out: dict[str, list[float]] = {"pdf": [], "docx": []}
    messages = [
        (kind, inbound(layout_pdf(lay) if kind == "pdf" else layout_docx(lay), kind))
        for lay in LAYOUTS.values()
        for kind in ("pdf", "docx")
    ]
    for _ in range(max(1, rounds // len(messages))):
        for kind, msg in messages:
            extractor.clear()
            t0 = time.perf_counter()
            (finding,) = await stage.inspect(msg)
            out[kind].append((time.perf_counter() - t0) * 1000)
            assert finding.payload.number_notation, finding
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200, help="passes over the corpus")
    args = parser.parse_args()

    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    docs = [
        ((CORPUS / name).read_text(encoding="utf-8"), item["subject"], item["headers"],
         item["attachments"])
        for name, item in labels.items()
    ]  # fmt: skip
    chars = sum(len(d[0]) for d in docs)
    print(f"corpus: {len(docs)} documents, {chars / len(docs) / 1000:.1f} k characters on average")

    meta: list[float] = []
    base: list[float] = []
    for _ in range(args.rounds):
        for text, subject, headers, names in docs:
            t0 = time.perf_counter()
            extract_metadata(text, subject, headers, names)
            t1 = time.perf_counter()
            BASELINE.findall(text)
            t2 = time.perf_counter()
            meta.append((t1 - t0) * 1000)
            base.append((t2 - t1) * 1000)
    m_median, m_p99 = line("metadata: extract_metadata", meta)
    b_median, b_p99 = line("baseline: one regex pass (number|date)", base)
    print(f"{'ratio metadata / baseline':44} median {m_median / b_median:8.1f} x   "
          f"p99 {m_p99 / b_p99:8.1f} x")  # fmt: skip

    stage = asyncio.run(stage_samples(args.rounds))
    line("stage: PDF attachment (extract + metadata)", stage["pdf"])
    line("stage: DOCX attachment (extract + metadata)", stage["docx"])


if __name__ == "__main__":
    main()
