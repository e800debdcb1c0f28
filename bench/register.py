"""Incoming register under concurrent deliveries: numbers gapless and unique, throughput.
Not a test.

    python bench/register.py [--workers 20] [--documents 200] [--pg postgresql://...]

Each worker is one delivery thread with its own session; it runs ``--documents``
acceptance transactions one after another, each like ``Acceptance._commit``: one
MessageRecord plus ``RegisterRecorder.on_accept`` for a message carrying a signed PDF
(typed signature and metadata payloads, as the pipeline produces them), so every
transaction parses the message, stores the attachment (fsynced blob), takes the next
incoming number and commits. Figures, from the same run and the same database:

- register:  the recorder path above (documents/s, p50/p99 ms per transaction);
- baseline:  the same transactions without the register: MessageRecord plus one plain
             register_document row with no number, no lock and no attachment;
and the check: numbers 1..N with no gap and no duplicate.

SQLite runs on a temporary file; with --pg, a fresh database is created under the given
admin URL, migrated and dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import Agency, Mailbox, MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker, migrate
from mailsvc.delivery import message_key
from mailsvc.documents.metadata import DocumentMetadata
from mailsvc.message import InboundMessage
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.recorder import RegisterRecorder
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    DocumentSignatureReport,
    Indication,
    SignatureFormat,
    SignatureResult,
)
from mailsvc.store.blobs import BlobStore
from mailsvc.verdict import Action, Finding, Status, Verdict

LOCAL = "stttt.daknong.gov.vn"
SENDER = "vanthu@stc.daknong.gov.vn"
PDF_SIZE = 20_000


@dataclass
class Delivery:
    msg: InboundMessage
    verdict: Verdict


def make_delivery(worker: int, n: int, run: str = "") -> Delivery:
    pdf = f"%PDF-1.7 {run} worker {worker} document {n}\n".encode() + b"0" * PDF_SIZE
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = f"vanthu@{LOCAL}"
    mail["Subject"] = f"Công văn {worker}-{n}/STC-VP V/v triển khai chữ ký số"
    mail["Message-ID"] = f"<{worker}.{n}.{uuid.uuid4().hex}@stc.daknong.gov.vn>"
    mail.set_content("Kính gửi Sở Thông tin và Truyền thông.\n")
    mail.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"CV-{n}.pdf")
    msg = InboundMessage(
        queue_id=f"W{worker:02d}N{n:05d}",
        mail_from=SENDER,
        rcpt_tos=(f"vanthu@{LOCAL}",),
        raw=mail.as_bytes(),
        received_at=datetime.now(UTC),
    )
    signature = SignatureResult(
        format=SignatureFormat.PDF,
        indication=Indication.TOTAL_PASSED,
        subindication=None,
        signer_name="Nguyễn Văn An",
        organisation="Sở Tài chính",
        kind=CertificateKind.PERSONAL,
    )
    report = DocumentSignatureReport(
        document=f"CV-{n}.pdf",
        sha256=hashlib.sha256(pdf).hexdigest(),
        outcome=DocumentOutcome.VALID,
        reason="signed",
        signatures=(signature,),
        sender_agency="000.00.32.H56",
    )
    metadata = DocumentMetadata(
        number_notation=f"{run}{worker}-{n}/STC-VP",
        issued_date=date(2026, 2, 27),
        doc_type="Công văn",
        abstract="V/v triển khai chữ ký số",
        agency_code="000.00.32.H56",
        agency_name="Sở Tài chính",
    )
    findings = (
        Finding("signatures", Status.PASS, "signed", payload=report),
        Finding("metadata", Status.PASS, "found", payload=metadata),
    )
    _ = msg.parsed, message_key(msg)  # parsed before acceptance, as in the server
    return Delivery(msg, Verdict(msg.queue_id, findings, Action.DELIVER))


def record_for(msg: InboundMessage) -> MessageRecord:
    return MessageRecord(
        queue_id=msg.queue_id,
        message_key=message_key(msg),
        message_id=msg.message_id,
        sha256=msg.sha256,
        size=len(msg.raw),
        mail_from=msg.mail_from,
        recipient=msg.rcpt_tos[0],
        direction=msg.direction.value,
        received_at=msg.received_at,
        action="deliver",
        verdict={},
        state="stored",
    )


def register_txn(recorder: RegisterRecorder) -> Callable[[Session, Delivery], None]:
    def run(session: Session, delivery: Delivery) -> None:
        record = record_for(delivery.msg)
        session.add(record)
        session.flush()
        recorder.on_accept(session, delivery.msg, delivery.verdict, [record])

    return run


def baseline_txn(register_id: int) -> Callable[[Session, Delivery], None]:
    def run(session: Session, delivery: Delivery) -> None:
        msg = delivery.msg
        session.add(record_for(msg))
        session.add(
            RegisterDocument(
                register_id=register_id,
                year=2026,
                received_at=msg.received_at,
                sender=msg.mail_from,
                signature_outcome="valid",
                status="arrived",
                message_key=message_key(msg),
            )
        )

    return run


def run_workers(
    sessions: sessionmaker[Session],
    work: Callable[[Session, Delivery], None],
    deliveries: list[list[Delivery]],
    before: Callable[[Delivery], None] | None = None,
) -> tuple[float, list[float], list[BaseException]]:
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(deliveries) + 1)

    def worker(items: list[Delivery]) -> None:
        mine: list[float] = []
        barrier.wait()
        try:
            for item in items:
                t0 = time.perf_counter()
                if before is not None:
                    before(item)
                with sessions.begin() as session:
                    work(session, item)
                mine.append(time.perf_counter() - t0)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(items,)) for items in deliveries]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, errors


def prepare(url: str) -> tuple[sessionmaker[Session], int]:
    migrate(url)
    engine = make_engine(url)
    if url.startswith("sqlite"):
        # make_engine's SQLite pool holds 5 + 10 connections: give every worker one, so a
        # worker waits on SQLite's lock (busy_timeout) and never on the pool.
        engine.pool._max_overflow = max(engine.pool._max_overflow, 64)  # type: ignore[attr-defined]
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        ours = Agency(code="000.00.31.H56", name="Sở Thông tin và Truyền thông", domains=[LOCAL])
        session.add(ours)
        session.add(
            Agency(code="000.00.32.H56", name="Sở Tài chính", domains=["stc.daknong.gov.vn"])
        )
        session.flush()
        session.add(Mailbox(address=f"vanthu@{LOCAL}", role="clerk", agency_id=ours.id))
        session.add(Register(code="baseline", name="baseline", domain="baseline"))
        session.flush()
        baseline_id = session.scalars(select(Register.id).where(Register.code == "baseline")).one()
    return sessions, baseline_id


def report_line(name: str, seconds: float, latencies: list[float], count: int) -> str:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000 if ordered else 0.0
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000 if ordered else 0.0
    return (
        f"  {name:<9} {count:>6} docs in {seconds:6.2f} s  {count / seconds:8.1f} docs/s  "
        f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
    )


def bench(label: str, url: str, workers: int, documents: int, blob_root: Path) -> bool:
    sessions, baseline_id = prepare(url)
    recorder = RegisterRecorder(BlobStore(blob_root))
    print(f"{label}: {workers} concurrent deliveries x {documents} documents")
    batches = [[make_delivery(w, n) for n in range(documents)] for w in range(workers)]
    seconds, latencies, base_errors = run_workers(sessions, baseline_txn(baseline_id), batches)
    print(report_line("baseline", seconds, latencies, workers * documents))
    errors: list[BaseException] = []
    for name, prepare_first in (("register", True), ("register*", False)):
        batches = [[make_delivery(w, n, name) for n in range(documents)] for w in range(workers)]
        before = (lambda d: recorder.prepare(d.msg, d.verdict)) if prepare_first else None
        seconds, latencies, failed = run_workers(sessions, register_txn(recorder), batches, before)
        errors += failed
        print(report_line(name, seconds, latencies, workers * documents))
    with sessions() as session:
        numbers = list(
            session.scalars(
                select(RegisterDocument.incoming_number)
                .where(RegisterDocument.register_id != baseline_id)
                .order_by(RegisterDocument.incoming_number)
            )
        )
        distinct = session.scalar(
            select(func.count(func.distinct(RegisterDocument.incoming_number))).where(
                RegisterDocument.register_id != baseline_id
            )
        )
    errors += base_errors
    expected = list(range(1, len(numbers) + 1))
    gapless = numbers == expected and distinct == len(numbers)
    print(
        f"  numbers: {len(numbers)} entries, 1..{numbers[-1] if numbers else 0}, "
        f"{distinct} distinct -> {'gapless and unique' if gapless else 'GAP OR DUPLICATE'}"
    )
    if errors:
        print(f"  {len(errors)} worker(s) stopped on an error: {errors[0]!r}")
    ok = gapless and not errors and len(numbers) == 2 * workers * documents
    sessions.kw["bind"].dispose()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument(
        "--pg", help="PostgreSQL admin URL, e.g. postgresql://postgres@127.0.0.1/test"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-register-") as tmp:
        root = Path(tmp)
        if not args.skip_sqlite:
            url = f"sqlite:///{root / 'register.sqlite3'}"
            ok &= bench("SQLite", url, args.workers, args.documents, root / "blobs-sqlite")
        if args.pg:
            name = f"mailsvc_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(
                args.pg.replace("postgresql://", "postgresql+psycopg://", 1),
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            try:
                url = f"{args.pg.rsplit('/', 1)[0]}/{name}"
                ok &= bench("PostgreSQL", url, args.workers, args.documents, root / "blobs-pg")
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
