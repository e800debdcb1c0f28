"""Accuracy of what the service reads from documents, on the generated corpus.

Every document of :mod:`tests.documents.generator` goes, as a mail, through the real
``TextExtractor`` (worker pool, OCR for scans), ``ClassificationStage`` and
``MetadataStage``; the results are compared with the ground truth.

Run it (prints the tables the README shows)::

    PYTHONPATH=. python3 -m tests.documents.accuracy            # text corpus
    PYTHONPATH=. python3 -m tests.documents.accuracy --scanned  # scanned corpus (OCR)
    PYTHONPATH=. python3 -m tests.documents.accuracy --write /tmp/corpus   # the files too
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from mailsvc.documents.extract import ExtractionLimits, TextExtractor
from mailsvc.documents.metadata import DocumentMetadata
from mailsvc.documents.ocr import OcrLimits
from mailsvc.documents.pool import WorkerPool
from mailsvc.interfaces import AgencyInfo
from mailsvc.message import InboundMessage
from mailsvc.pipeline.classification import ClassificationResult, ClassificationStage
from mailsvc.pipeline.metadata import MetadataStage
from mailsvc.policy.classification import load_classification_policy
from mailsvc.verdict import Status
from tests.documents import generator
from tests.documents.generator import Doc

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "classification.yaml"
FIELDS = ("number_notation", "issued_date", "doc_type", "abstract", "urgency", "signer")


class NoDirectory:
    """The corpus' senders are in no directory (the agency code is not measured here)."""

    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        return None

    def is_local_domain(self, domain: str) -> bool:
        return False


@dataclass(frozen=True)
class Outcome:
    doc: Doc
    level: str  # the deciding level, or "clean"
    status: str  # the classification finding's status
    reason: str
    metadata: DocumentMetadata | None

    @property
    def correct(self) -> bool:
        return self.level == self.doc.expect

    def field_ok(self, name: str) -> bool:
        truth = self.doc.truth
        expected: str | date = {
            "number_notation": truth.number,
            "issued_date": truth.issued,
            "doc_type": truth.doc_type,
            "abstract": truth.abstract,
            "urgency": truth.urgency,
            "signer": truth.signer,
        }[name]
        return self.metadata is not None and getattr(self.metadata, name) == expected


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def positives(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.doc.level]

    @property
    def negatives(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.doc.level]

    def precision_recall(self) -> tuple[float, float]:
        tp = sum(1 for o in self.positives if o.level != "clean")
        fn = len(self.positives) - tp
        fp = sum(1 for o in self.negatives if o.level != "clean")
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        return precision, recall

    def recall_at(self, dpi: int) -> float:
        pos = [o for o in self.positives if o.doc.scan_dpi == dpi]
        return sum(1 for o in pos if o.level != "clean") / len(pos) if pos else 1.0

    def field_accuracy(self, name: str, dpi: int | None = None) -> float:
        pool = [o for o in self.outcomes if dpi is None or o.doc.scan_dpi == dpi]
        return sum(1 for o in pool if o.field_ok(name)) / len(pool) if pool else 1.0

    def wrong(self) -> list[str]:
        return [
            f"{o.doc.id} {o.doc.fmt} expect={o.doc.expect} got={o.level} "
            f"position={o.doc.position or '-'} form={o.doc.form or '-'} trap={o.doc.trap or '-'}"
            f" ({o.reason})"
            for o in self.outcomes
            if not o.correct
        ]

    def field_misses(self, name: str) -> list[str]:
        out = []
        for o in self.outcomes:
            if not o.field_ok(name):
                got = getattr(o.metadata, name) if o.metadata else None
                out.append(f"{o.doc.id} {o.doc.fmt}: got {got!r}")
        return out

    def table(self) -> str:
        lines: list[str] = []
        precision, recall = self.precision_recall()
        lines.append(
            f"{len(self.outcomes)} documents ({len(self.positives)} marked, "
            f"{len(self.negatives)} hard negatives) in {self.seconds:.1f} s"
        )
        lines.append(f"markings: precision {precision:.3f}, recall {recall:.3f}")
        lines.append("")
        lines.append("| marking position | formats | documents | detected | right level |")
        lines.append("| --- | --- | ---: | ---: | ---: |")
        by_position: dict[str, list[Outcome]] = defaultdict(list)
        for o in self.positives:
            by_position[o.doc.position].append(o)
        for position in generator.POSITIONS:
            group = by_position.get(position, [])
            if not group:
                continue
            fmts = ", ".join(sorted({o.doc.fmt for o in group}))
            found = sum(1 for o in group if o.level != "clean")
            right = sum(1 for o in group if o.correct)
            lines.append(f"| {position} | {fmts} | {len(group)} | {found} | {right} |")
        lines.append("")
        lines.append("| hard negative | documents | taken for a marking |")
        lines.append("| --- | ---: | ---: |")
        by_trap: dict[str, list[Outcome]] = defaultdict(list)
        for o in self.negatives:
            by_trap[o.doc.trap or "(plain document)"].append(o)
        for trap, group in by_trap.items():
            bad = sum(1 for o in group if o.level != "clean")
            lines.append(f"| {trap} | {len(group)} | {bad} |")
        lines.append("")
        dpis = sorted({o.doc.scan_dpi for o in self.outcomes})
        head = " | ".join("text" if d == 0 else f"scan {d} dpi" for d in dpis)
        lines.append(f"| metadata field | {head} |")
        lines.append("| --- |" + " ---: |" * len(dpis))
        for name in FIELDS:
            cells = []
            for d in dpis:
                pool = [o for o in self.outcomes if o.doc.scan_dpi == d]
                ok = sum(1 for o in pool if o.field_ok(name))
                cells.append(f"{ok}/{len(pool)} ({100 * ok / len(pool):.1f}%)")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if any(o.doc.scan_dpi for o in self.outcomes):
            lines.append("")
            lines.append("| scanned marking recall | documents | detected |")
            lines.append("| --- | ---: | ---: |")
            for d in dpis:
                pos = [o for o in self.positives if o.doc.scan_dpi == d]
                found = sum(1 for o in pos if o.level != "clean")
                lines.append(f"| {d} dpi | {len(pos)} | {found} |")
        return "\n".join(lines)


def mail_bytes(doc: Doc) -> bytes:
    return generator.mail(doc).as_bytes()


def inbound(raw: bytes, queue_id: str) -> InboundMessage:
    return InboundMessage(
        queue_id=queue_id,
        mail_from="vanthu@ubnd.example.vn",
        rcpt_tos=("vanthu@stttt.example.vn",),
        raw=raw,
        received_at=datetime.now(UTC),
    )


async def measure(
    docs: list[Doc], pool: WorkerPool, limits: ExtractionLimits | None = None
) -> Report:
    """Send every document through extraction, classification and metadata."""
    # the service's bounds (app.extraction_limits): 10 s for text plus the OCR budget
    limits = limits or ExtractionLimits(timeout_s=10.0 + OcrLimits().timeout_s)
    extractor = TextExtractor(pool, limits)
    policy = load_classification_policy(POLICY_FILE)
    classification = ClassificationStage(policy, extractor)
    metadata = MetadataStage(extractor, NoDirectory(), executor=None)
    started = time.perf_counter()
    semaphore = asyncio.Semaphore(max(2, pool.max_workers * 2))
    loop = asyncio.get_running_loop()

    async def one(doc: Doc) -> Outcome:
        async with semaphore:
            # rendering (scans especially) is CPU work: in the pool, beside the extraction
            raw = await loop.run_in_executor(pool, mail_bytes, doc)
            msg = inbound(raw, doc.id)
            (found,) = await classification.inspect(msg)
            (meta,) = await metadata.inspect(msg)
        level = "clean"
        if found.status is Status.FAIL and isinstance(found.payload, ClassificationResult):
            level = found.payload.level or found.reason
        elif found.status is not Status.PASS:
            level = f"{found.status.value}:{found.reason}"
        payload = meta.payload if isinstance(meta.payload, DocumentMetadata) else None
        return Outcome(doc, level, found.status.value, found.reason, payload)

    outcomes = await asyncio.gather(*(one(d) for d in docs))
    return Report(list(outcomes), time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scanned", action="store_true", help="the scanned (OCR) corpus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", type=Path, help="also write the files and truth.tsv here")
    args = parser.parse_args(argv)
    docs = generator.scanned_corpus() if args.scanned else generator.corpus()
    if args.write:
        generator.write_corpus(args.write, docs)
    pool = WorkerPool(args.workers)
    try:
        report = asyncio.run(measure(docs, pool))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    print(report.table())
    wrong = report.wrong()
    if wrong:
        print("\nwrong:", *wrong, sep="\n  ")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
