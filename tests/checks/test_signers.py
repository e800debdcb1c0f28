"""Signer fingerprints have their own indexed column (``message_signature``): the recorder
fills it from the verdict's typed signature reports at acceptance, and the mailbox checks
find priority messages by it (never by the stored verdict's text). SQLite, or PostgreSQL
with MAILSVC_TEST_DATABASE."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.checks.compliance import evaluate, is_priority_message
from mailsvc.checks.policy import CheckingPolicy, PriorityPolicy, load_checking_policy
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.message import InboundMessage
from mailsvc.signatures.models import MessageSignature
from mailsvc.signatures.records import SignatureRecorder
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    DocumentSignatureReport,
    Indication,
    SignatureFormat,
    SignatureResult,
)
from mailsvc.verdict import Action, Finding, Status, Verdict
from mailsvc.web.workspace.signatures import stored_signatures
from tests.checks.builders import CLERK, CLERK2, FINGERPRINT, add_mailbox, add_message, local

ROOT = Path(__file__).resolve().parents[2]
MONDAY = date(2026, 11, 23)
SENDER = "vanthu@sotc.example.gov.vn"
# The priority certificate as an operator may write it: colons, upper case.
LISTED = ":".join(FINGERPRINT[i : i + 2] for i in range(0, 64, 2)).upper()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def policy() -> CheckingPolicy:
    base = load_checking_policy(ROOT / "policies" / "checking.yaml")
    return base.model_copy(update={"priority": PriorityPolicy(certificates=(LISTED,))})


def report(document: str, *fingerprints: str) -> DocumentSignatureReport:
    return DocumentSignatureReport(
        document=document,
        sha256="0" * 64,
        outcome=DocumentOutcome.VALID,
        reason="signed",
        signatures=tuple(
            SignatureResult(
                format=SignatureFormat.PDF,
                indication=Indication.TOTAL_PASSED,
                subindication=None,
                signer_name="Nguyễn Văn An",
                organisation="Sở Tài chính",
                kind=CertificateKind.PERSONAL if n == 0 else CertificateKind.ORGANISATION,
                serial=f"4F2A{n}",
                fingerprint=f,
            )
            for n, f in enumerate(fingerprints)
        ),
    )


def verdict_with(*reports: DocumentSignatureReport) -> Verdict:
    findings = tuple(
        Finding("signatures", Status.PASS, "signed", payload=r) for r in reports
    )
    return Verdict("Q1", findings, Action.DELIVER)


def inbound() -> InboundMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = SENDER, CLERK, "Công văn"
    mail.set_content("Kính gửi.")
    return InboundMessage("Q1", SENDER, (CLERK, CLERK2), mail.as_bytes(), local(2026, 11, 23, 9))


def test_the_recorder_fills_the_column_and_the_checks_find_by_it(
    sessions: sessionmaker[Session], policy: CheckingPolicy
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_mailbox(sessions, CLERK2, "clerk")
    at = local(2026, 11, 23, 9)
    ids = [add_message(sessions, sender=SENDER, recipient=r, at=at) for r in (CLERK, CLERK2)]
    # Signed by the listed certificate, written as the engine gives it (upper case here).
    verdict = verdict_with(report("35-QD-UBND.pdf", "cd" * 32, FINGERPRINT.upper()))
    with sessions.begin() as session:
        records = session.scalars(select(MessageRecord).where(MessageRecord.id.in_(ids))).all()
        SignatureRecorder().on_accept(session, inbound(), verdict, records)
    # A message whose stored verdict merely mentions the fingerprint is not signed by it.
    mention = add_message(sessions, sender=SENDER, recipient=CLERK, at=local(2026, 11, 23, 10))
    with sessions.begin() as session:
        row = session.get(MessageRecord, mention)
        assert row is not None
        row.verdict = {"findings": [{"stage": "spam", "detail": FINGERPRINT}]}

    with sessions() as session:
        rows = session.scalars(
            select(MessageSignature).order_by(
                MessageSignature.message_record_id, MessageSignature.position
            )
        ).all()
        assert [(r.message_record_id, r.position, r.fingerprint) for r in rows] == [
            (ids[0], 0, "cd" * 32), (ids[0], 1, FINGERPRINT),
            (ids[1], 0, "cd" * 32), (ids[1], 1, FINGERPRINT),
        ]  # fmt: skip
        found = evaluate(session, policy, MONDAY, MONDAY, now=local(2026, 11, 23, 17))
        shown = stored_signatures(session, ids[0])
    assert sorted(p.record_id for day in found for p in day.priority) == ids
    assert [(s.document, s.kind, s.serial) for s in shown] == [
        ("35-QD-UBND.pdf", "personal", "4F2A0"),
        ("35-QD-UBND.pdf", "organisation", "4F2A1"),
    ]
    # The follower decides from the same typed reports.
    assert is_priority_message(policy, SENDER, verdict)
    assert not is_priority_message(policy, SENDER, verdict_with(report("x.pdf", "cd" * 32)))


def test_an_unsigned_message_writes_no_rows(sessions: sessionmaker[Session]) -> None:
    record_id = add_message(sessions, sender=SENDER, recipient=CLERK, at=local(2026, 11, 23, 9))
    unsigned = DocumentSignatureReport(
        "cv.pdf", "0" * 64, DocumentOutcome.REFERENCE_ONLY, "unsigned"
    )
    with sessions.begin() as session:
        record = session.get(MessageRecord, record_id)
        assert record is not None
        SignatureRecorder().on_accept(session, inbound(), verdict_with(unsigned), [record])
    with sessions() as session:
        assert session.scalars(select(MessageSignature)).all() == []
        assert stored_signatures(session, record_id) == []
        assert stored_signatures(session, None) == []
